/// The line on which each key and table of a TOML text is defined.
///
/// TOMLKit gives positions of syntax errors only, not of keys, so config errors about a
/// key ("is not a known setting", "must be an integer") find the line here. This is not a
/// parser: it reads line starts (`[table]`, `[[array]]`, `key =`, dotted and quoted keys)
/// and, to know which line starts are real, skips over strings (multi-line ones too),
/// comments and arrays that span lines. It runs on text TOMLKit has accepted or is about to
/// reject; on malformed text it records what it can and never fails.
struct TOMLKeyLines {
    /// Dotted path of every key, table header and array-of-tables header to its 1-based line
    /// (the first, if a path appears twice). A dotted key also records its prefixes
    /// (`a.b.c = 1` records `a` and `a.b` if they are not yet known).
    private(set) var lines: [String: Int] = [:]

    private let bytes: [UInt8]
    private var pos = 0
    private var line = 1

    /// Scans `text`.
    init(text: String) {
        bytes = Array(text.utf8)
        var table = ""
        while pos < bytes.count {
            skipBlank()
            if peek == UInt8(ascii: "[") {
                pos += 1
                let isArray = peek == UInt8(ascii: "[")
                if isArray { pos += 1 }
                let header = keyPath()
                table = header.joined(separator: ".")
                record(header)
                if isArray { pos += 1 }
            } else if let c = peek, c != UInt8(ascii: "#"), c != 10, c != 13 {
                let key = keyPath()
                if peek == UInt8(ascii: "=") {
                    record((table.isEmpty ? [] : [table]) + key)
                    pos += 1
                    skipValue()
                }
            }
            skipToNextLine()
        }
    }

    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func record(_ parts: [String]) {
        guard !parts.isEmpty else { return }
        for n in 1...parts.count {
            let path = parts[..<n].joined(separator: ".")
            if lines[path] == nil { lines[path] = line }
        }
    }

    /// Spaces and tabs.
    private mutating func skipBlank() {
        while let c = peek, c == 32 || c == 9 { pos += 1 }
    }

    /// To the start of the next line (past a comment, if any).
    private mutating func skipToNextLine() {
        while let c = peek {
            pos += 1
            if c == 10 { line += 1; return }
        }
    }

    /// `a . "b c" . 'd'`, leaving the scanner after the last part and any blanks.
    private mutating func keyPath() -> [String] {
        var parts: [String] = []
        while true {
            skipBlank()
            guard let c = peek else { return parts }
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                parts.append(quoted(c))
            } else {
                let start = pos
                while let b = peek, isBareKeyByte(b) { pos += 1 }
                guard pos > start else { return parts }
                parts.append(String(decoding: bytes[start..<pos], as: UTF8.self))
            }
            skipBlank()
            guard peek == UInt8(ascii: ".") else { return parts }
            pos += 1
        }
    }

    private func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45
    }

    /// A one-line quoted key or string starting at `quote`; basic strings keep the common
    /// escapes (`\" \\ \n \t`) and any other escape as written.
    private mutating func quoted(_ quote: UInt8) -> String {
        pos += 1
        var out: [UInt8] = []
        while let c = peek, c != 10 {
            pos += 1
            if c == quote { break }
            if c == UInt8(ascii: "\\"), quote == UInt8(ascii: "\""), let e = peek, e != 10 {
                pos += 1
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(e)
                default: out += [c, e]
                }
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Past one value: strings (multi-line ones counted into `line`) and brackets, so the
    /// lines inside a multi-line string or array are not read as keys. Stops before the
    /// newline that ends the value.
    private mutating func skipValue() {
        var depth = 0
        while let c = peek {
            switch c {
            case 10:
                if depth == 0 { return }
                pos += 1; line += 1
            case UInt8(ascii: "#"):
                while let b = peek, b != 10 { pos += 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                if pos + 2 < bytes.count, bytes[pos + 1] == c, bytes[pos + 2] == c {
                    skipMultilineString(c)
                } else {
                    _ = quoted(c)
                }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1; pos += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1; pos += 1
            default:
                pos += 1
            }
        }
    }

    /// Past `"""…"""` or `'''…'''`, counting the newlines inside.
    private mutating func skipMultilineString(_ quote: UInt8) {
        pos += 3
        while let c = peek {
            if c == UInt8(ascii: "\\"), quote == UInt8(ascii: "\"") {
                // An escaped character, or a line-ending backslash (which joins lines).
                if pos + 1 < bytes.count, bytes[pos + 1] == 10 { line += 1 }
                pos += 2
                continue
            }
            if c == 10 { line += 1 }
            if c == quote, pos + 2 < bytes.count, bytes[pos + 1] == quote, bytes[pos + 2] == quote {
                pos += 3
                // Up to two more quotes may belong to the content (`""""a""""`).
                while peek == quote { pos += 1 }
                return
            }
            pos += 1
        }
    }
}
