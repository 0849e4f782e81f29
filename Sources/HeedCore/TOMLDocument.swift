/// A parser for the subset of TOML that Heed's run configs use.
///
/// Supported: `# comments`, `[table]` and `[dotted.table]` headers, `key = value` with bare
/// or quoted keys, basic strings (`"…"` with `\" \\ \n \t` escapes), literal strings
/// (`'…'`), integers (with `_` separators), floats (incl. exponents), booleans, and
/// single-line arrays of those. Not supported (rejected with a line number): multi-line
/// strings and arrays, inline tables, arrays of tables, dates. A small own parser keeps
/// the build free of a C++ dependency; the subset is documented in docs/config.md.
public struct TOMLDocument: Sendable {
    /// A parsed value.
    public enum Value: Equatable, Sendable {
        case string(String), integer(Int), float(Double), bool(Bool), array([Value])
    }

    /// Every key as its full dotted path (`cluster.servers`) to its value.
    public private(set) var values: [String: Value] = [:]
    /// Where each key was defined, for error messages: path to 1-based line number.
    public private(set) var lines: [String: Int] = [:]
    /// The file name used in error messages.
    public let source: String

    /// Parses `text`; errors name `source` and the line.
    public init(text: String, source: String = "<config>") throws {
        self.source = source
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var scanner = Scanner(Array(rawLine.utf8), source: source, line: lineNumber)
            scanner.skipSpaces()
            if scanner.atEndOrComment { continue }
            if scanner.peek == UInt8(ascii: "[") {
                scanner.advance()
                if scanner.peek == UInt8(ascii: "[") { throw scanner.error("arrays of tables ([[…]]) are not supported") }
                table = try scanner.keyPath(until: UInt8(ascii: "]"))
                scanner.advance()
                scanner.skipSpaces()
                guard scanner.atEndOrComment else { throw scanner.error("unexpected text after table header") }
                continue
            }
            let key = try scanner.keyPath(until: UInt8(ascii: "="))
            scanner.advance()
            scanner.skipSpaces()
            let value = try scanner.value()
            scanner.skipSpaces()
            guard scanner.atEndOrComment else { throw scanner.error("unexpected text after value") }
            let path = table.isEmpty ? key : table + "." + key
            if values[path] != nil { throw scanner.error("duplicate key '\(path)' (first defined on line \(lines[path]!))") }
            values[path] = value
            lines[path] = lineNumber
        }
    }

    /// The value at a dotted path, if present.
    public subscript(path: String) -> Value? { values[path] }

    /// Keys present under `table` (one level of dotted path), for rejecting unknown keys.
    public func keys(in table: String) -> [String] {
        let prefix = table.isEmpty ? "" : table + "."
        return values.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }
}

/// Byte-level scanner over one line.
private struct Scanner {
    let bytes: [UInt8]
    let source: String
    let line: Int
    var pos = 0

    init(_ bytes: [UInt8], source: String, line: Int) {
        // Tolerate CRLF files.
        self.bytes = bytes.last == 13 ? Array(bytes.dropLast()) : bytes
        self.source = source
        self.line = line
    }

    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }
    var atEndOrComment: Bool { peek == nil || peek == UInt8(ascii: "#") }
    mutating func advance() { pos += 1 }
    mutating func skipSpaces() { while let c = peek, c == 32 || c == 9 { pos += 1 } }

    func error(_ message: String) -> HeedError {
        HeedError(.config, "\(source):\(line): \(message)")
    }

    /// Reads `a.b."c d"` up to `terminator`, leaving the scanner on it.
    mutating func keyPath(until terminator: UInt8) throws -> String {
        var parts: [String] = []
        while true {
            skipSpaces()
            if peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "'") {
                guard case .string(let s) = try value() else { throw error("bad quoted key") }
                parts.append(s)
            } else {
                let start = pos
                while let c = peek, isBareKeyByte(c) { pos += 1 }
                guard pos > start else { throw error("expected a key") }
                parts.append(String(decoding: bytes[start..<pos], as: UTF8.self))
            }
            skipSpaces()
            if peek == UInt8(ascii: ".") { advance(); continue }
            guard peek == terminator else { throw error("expected '\(Character(UnicodeScalar(terminator)))'") }
            return parts.joined(separator: ".")
        }
    }

    private func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45
    }

    mutating func value() throws -> TOMLDocument.Value {
        guard let c = peek else { throw error("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            advance()
            var out: [UInt8] = []
            while true {
                guard let ch = peek else { throw error("unterminated string") }
                advance()
                if ch == UInt8(ascii: "\"") { break }
                if ch == UInt8(ascii: "\\") {
                    guard let e = peek else { throw error("unterminated escape") }
                    advance()
                    switch e {
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "\""): out.append(34)
                    case UInt8(ascii: "\\"): out.append(92)
                    default: throw error("unsupported escape '\\\(Character(UnicodeScalar(e)))'")
                    }
                } else { out.append(ch) }
            }
            return .string(String(decoding: out, as: UTF8.self))
        case UInt8(ascii: "'"):
            advance()
            let start = pos
            while let ch = peek, ch != UInt8(ascii: "'") { pos += 1 }
            guard peek != nil else { throw error("unterminated literal string") }
            let s = String(decoding: bytes[start..<pos], as: UTF8.self)
            advance()
            return .string(s)
        case UInt8(ascii: "["):
            advance()
            var items: [TOMLDocument.Value] = []
            while true {
                skipSpaces()
                if peek == UInt8(ascii: "]") { advance(); return .array(items) }
                if peek == nil { throw error("unterminated array (multi-line arrays are not supported)") }
                items.append(try value())
                skipSpaces()
                if peek == UInt8(ascii: ",") { advance() } else if peek != UInt8(ascii: "]") { throw error("expected ',' or ']' in array") }
            }
        case UInt8(ascii: "{"):
            throw error("inline tables are not supported")
        default:
            let start = pos
            while let ch = peek, ch != 32, ch != 9, ch != UInt8(ascii: ","), ch != UInt8(ascii: "]"), ch != UInt8(ascii: "#") { pos += 1 }
            let word = String(decoding: bytes[start..<pos], as: UTF8.self)
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            let digits = word.replacingUnderscores()
            if let i = Int(digits) { return .integer(i) }
            if let d = Double(digits), digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" || $0 == "n" || $0 == "i" }) { return .float(d) }
            throw error("cannot read value '\(word)'")
        }
    }
}

private extension String {
    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
