import Foundation

/// A parser of the Prometheus text exposition format (version 0.0.4), written from the
/// format's description for the tests: `# TYPE name kind` comments and sample lines
/// `name{label="value",...} number`. Throws on anything else, so a malformed exposition
/// fails the test that scrapes it.
struct PrometheusText {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    enum ParseError: Error, CustomStringConvertible {
        case bad(line: Int, String)
        var description: String { if case .bad(let n, let s) = self { return "line \(n): \(s)" }; return "" }
    }

    private(set) var samples: [Sample] = []
    /// Metric family → type (counter, gauge, histogram, ...).
    private(set) var types: [String: String] = [:]

    init(_ text: String) throws {
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count >= 4, parts[1] == "TYPE" { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            samples.append(try Self.sample(line, number: n + 1))
        }
    }

    private static func sample(_ line: String, number: Int) throws -> Sample {
        var chars = Array(line)
        var i = 0
        func isNameChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == ":" }
        while i < chars.count, isNameChar(chars[i]) { i += 1 }
        let name = String(chars[0..<i])
        guard !name.isEmpty, !(name.first!.isNumber) else { throw ParseError.bad(line: number, "no metric name: \(line)") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                let start = i
                while i < chars.count, isNameChar(chars[i]) { i += 1 }
                let key = String(chars[start..<i])
                guard !key.isEmpty, i + 1 < chars.count, chars[i] == "=", chars[i + 1] == "\"" else {
                    throw ParseError.bad(line: number, "bad label at \(i): \(line)")
                }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        value.append(chars[i] == "n" ? "\n" : chars[i])
                    } else {
                        value.append(chars[i])
                    }
                    i += 1
                }
                guard i < chars.count else { throw ParseError.bad(line: number, "unterminated label value: \(line)") }
                i += 1
                labels[key] = value
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            guard i < chars.count else { throw ParseError.bad(line: number, "unterminated labels: \(line)") }
            i += 1
        }
        chars = Array(chars[i...])
        let fields = String(chars).split(separator: " ")
        guard (1...2).contains(fields.count) else { throw ParseError.bad(line: number, "expected a value: \(line)") }
        let text = String(fields[0])
        let value: Double? = text == "+Inf" ? .infinity : text == "-Inf" ? -.infinity : text == "NaN" ? .nan : Double(text)
        guard let value else { throw ParseError.bad(line: number, "not a number '\(text)': \(line)") }
        return Sample(name: name, labels: labels, value: value)
    }

    /// Samples named `name` whose labels include `labels`.
    func values(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        samples.filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }
    }
}
