import HeedCore

/// Reads a delimited text file (CSV/TSV, plain or gzip) row by row, checking the header,
/// column counts and repeated headers, and applying the bad-row policy.
struct DelimitedReader {
    /// What the first line must be.
    enum Header {
        /// No header line: every line is data.
        case none
        /// A header with exactly these names, in this order.
        case exact([String])
        /// A header naming columns in any order: all of `required`, any of `optional`.
        case named(required: [String], optional: [String])
    }

    /// The file.
    let path: String
    /// Field delimiter.
    let delimiter: UInt8
    /// Whether CSV quoting is honoured.
    let quoted: Bool
    /// Header rule.
    let header: Header
    /// Field count of headerless files.
    let fieldCount: Int
    /// Whether a first line `# heed-schema: N` is accepted (generic files) and `#` lines are comments.
    let allowSchemaLine: Bool
    /// What the file holds, for messages (e.g. "Taobao rows user,item,category,behavior,timestamp").
    let describe: String

    /// The schema version of generic files that this build reads.
    static let genericSchemaVersion = 1

    /// A reader for `path`.
    init(path: String, delimiter: UInt8, quoted: Bool = false, header: Header, fieldCount: Int = 0,
         allowSchemaLine: Bool = false, describe: String) {
        self.path = path
        self.delimiter = delimiter
        self.quoted = quoted
        self.header = header
        self.fieldCount = fieldCount
        self.allowSchemaLine = allowSchemaLine
        self.describe = describe
    }

    /// The delimiter for a generic file by extension: tab for `.tsv`/`.tsv.gz`, else comma.
    static func delimiter(forPath path: String) -> UInt8 {
        path.hasSuffix(".tsv") || path.hasSuffix(".tsv.gz") ? 0x09 : 0x2C
    }

    /// Reads all rows; `row(line, fields, lineNumber, log)` parses one data row.
    ///
    /// - Returns: the column index of each header name (empty for headerless files) and the number
    ///   of data lines (every non-empty line after the header, bad ones included).
    @discardableResult
    func read(log: inout BadRowLog, onHeader: ([String: Int]) throws -> Void = { _ in },
              row: (UnsafeBufferPointer<UInt8>, FieldSplitter, Int, inout BadRowLog) throws -> Void) throws -> (columns: [String: Int], rows: Int) {
        var splitter = FieldSplitter(delimiter: delimiter, quoted: quoted, capacity: 32)
        var headerBytes: [UInt8]? = nil
        var columns: [String: Int] = [:]
        var expectedFields = fieldCount
        var rows = 0
        var sawHeader: Bool = { if case .none = header { return true } else { return false } }()
        var expectedNames = ""
        try LineReader(path: path).forEachLine(expected: describe) { line, n in
            if line.isEmpty { return true }
            if allowSchemaLine && line[0] == UInt8(ascii: "#") {
                if n == 1 { try checkSchemaLine(line) }
                return true
            }
            if !sawHeader {
                sawHeader = true
                headerBytes = Array(line)
                splitter.split(line)
                var names: [String] = []
                for f in 0..<splitter.count {
                    var name = String(decoding: UnsafeBufferPointer(rebasing: line[splitter.starts[f]..<splitter.ends[f]]), as: UTF8.self)
                    if f == 0 && name.hasPrefix("\u{FEFF}") { name.removeFirst() }
                    name = name.trimmingSpaces()
                    if columns[name] != nil {
                        throw HeedError(.invalidInput, "\(path):\(n): duplicate column '\(name)' in header (expected \(describe)) [duplicateHeader]")
                    }
                    columns[name] = f
                    names.append(name)
                }
                switch header {
                case .none: break
                case .exact(let want):
                    guard names == want else {
                        throw HeedError(.invalidInput, "\(path):\(n): header is '\(names.joined(separator: ","))', expected '\(want.joined(separator: ","))'")
                    }
                    expectedNames = want.joined(separator: ",")
                case .named(let required, let optional):
                    for r in required where columns[r] == nil {
                        throw HeedError(.invalidInput, "\(path):\(n): header lacks required column '\(r)' (required: \(required.joined(separator: ",")); optional: \(optional.joined(separator: ",")))")
                    }
                    for name in names where !required.contains(name) && !optional.contains(name) {
                        throw HeedError(.invalidInput, "\(path):\(n): unknown column '\(name)' in header (required: \(required.joined(separator: ",")); optional: \(optional.joined(separator: ",")))")
                    }
                    expectedNames = names.joined(separator: ",")
                }
                expectedFields = names.count
                try onHeader(columns)
                return true
            }
            rows += 1
            splitter.split(line)
            if splitter.count != expectedFields || !splitter.wellFormed {
                if let h = headerBytes, h.count == line.count, h.elementsEqual(line) {
                    try log.report(.duplicateHeader, file: path, line: n, "header line repeated inside the data (first seen on line 1)")
                } else if !splitter.wellFormed {
                    try log.report(.malformed, file: path, line: n, "unterminated or misplaced quote in a quoted field")
                } else {
                    let names = expectedNames.isEmpty ? describe : expectedNames
                    try log.report(.wrongColumnCount, file: path, line: n, "wrong column count: expected \(expectedFields) fields (\(names)), found \(splitter.count)")
                }
                return true
            }
            if let h = headerBytes, h.count == line.count, h.elementsEqual(line) {
                try log.report(.duplicateHeader, file: path, line: n, "header line repeated inside the data (first seen on line 1)")
                return true
            }
            try row(line, splitter, n, &log)
            return true
        }
        if !sawHeader {
            throw HeedError(.invalidInput, "\(path): has no header line (expected \(describe))")
        }
        return (columns, rows)
    }

    /// Checks `# heed-schema: N`; other comment lines are allowed on line 1 too.
    private func checkSchemaLine(_ line: UnsafeBufferPointer<UInt8>) throws {
        let text = String(decoding: line, as: UTF8.self)
        let prefix = "# heed-schema:"
        guard text.hasPrefix(prefix) else { return }
        let value = String(text.dropFirst(prefix.count)).trimmingSpaces()
        guard let v = Int(value), v == Self.genericSchemaVersion else {
            throw HeedError(.unsupported, "\(path):1: unknown schema version '\(value)' (this build reads heed-schema \(Self.genericSchemaVersion))")
        }
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
