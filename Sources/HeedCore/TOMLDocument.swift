internal import TOMLKit

/// A TOML run config, parsed by TOMLKit (toml++, TOML 1.0) and flattened to dotted paths.
///
/// Tables, dotted keys and inline tables all become paths (`[cluster] servers = 2`,
/// `cluster.servers = 2` and `cluster = {servers = 2}` are the same key). Values are strings,
/// integers, floats, booleans and arrays of those (multi-line arrays included). Arrays of
/// tables (`[[…]]`) and dates/times have no setting that takes them and are rejected with
/// the line. TOMLKit reports where a *syntax* error is but not where a key was defined, so
/// `TOMLKeyLines` finds each key's line in the text for the errors of unknown keys and wrong
/// types (docs/config.md).
public struct TOMLDocument: Sendable {
    /// A parsed value.
    public enum Value: Equatable, Sendable {
        case string(String), integer(Int), float(Double), bool(Bool), array([Value])
    }

    /// Every key as its full dotted path (`cluster.servers`) to its value.
    public private(set) var values: [String: Value] = [:]
    /// Where each key was defined, for error messages: path to 1-based line number.
    public let lines: [String: Int]
    /// The file name used in error messages.
    public let source: String

    /// Parses `text`; syntax errors name `source`, the line and the column.
    public init(text: String, source: String = "<config>") throws {
        self.source = source
        lines = TOMLKeyLines(text: text).lines
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            let at = e.source.begin
            throw HeedError(.config, "\(source):\(at.line):\(at.column): \(Self.plain(e.description))")
        }
        try flatten(root, prefix: "")
    }

    /// The value at a dotted path, if present.
    public subscript(path: String) -> Value? { values[path] }

    /// Keys present under `table` (one level of dotted path), for rejecting unknown keys.
    public func keys(in table: String) -> [String] {
        let prefix = table.isEmpty ? "" : table + "."
        return values.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    /// The line that defines `path`, or else the line of its closest enclosing key or table
    /// (a key inside an inline table is reported at the table's line); nil if none is found.
    public func line(of path: String) -> Int? {
        var p = Substring(path)
        while true {
            if let l = lines[String(p)] { return l }
            guard let dot = p.lastIndex(of: ".") else { return nil }
            p = p[..<dot]
        }
    }

    /// `source:line: ` for `path`, or `source: ` when its line is unknown.
    public func location(of path: String) -> String {
        line(of: path).map { "\(source):\($0): " } ?? "\(source): "
    }

    private mutating func flatten(_ table: TOMLTable, prefix: String) throws {
        for key in table.keys {
            let path = prefix.isEmpty ? key : prefix + "." + key
            guard let node = table[key] else { continue }
            if let sub = node.table {
                try flatten(sub, prefix: path)
            } else {
                values[path] = try value(node, path: path)
            }
        }
    }

    private func value(_ node: any TOMLValueConvertible, path: String) throws -> Value {
        switch node.type {
        case .string: return .string(node.string!)
        case .int: return .integer(node.int!)
        case .double: return .float(node.double!)
        case .bool: return .bool(node.bool!)
        case .array:
            let items = Array(node.array!)
            if !items.isEmpty, items.allSatisfy({ $0.type == .table }) {
                throw HeedError(.config, "\(location(of: path))\(path): arrays of tables ([[…]]) are not supported")
            }
            return .array(try items.map { try value($0, path: path) })
        case .table:
            throw HeedError(.config, "\(location(of: path))\(path): a table is not allowed inside an array")
        case .date, .time, .dateTime:
            throw HeedError(.config, "\(location(of: path))\(path): dates and times are not supported")
        }
    }

    /// toml++'s message without its "Error while parsing " lead-in.
    private static func plain(_ description: String) -> String {
        let lead = "Error while parsing "
        return description.hasPrefix(lead) ? String(description.dropFirst(lead.count)) : description
    }
}
