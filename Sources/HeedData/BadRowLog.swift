import HeedCore

/// The classes of bad input rows that `--skip-bad-rows` may skip and count.
public enum BadRowKind: String, Codable, CaseIterable, Sendable {
    /// A row with more or fewer fields than the format has.
    case wrongColumnCount
    /// A user or item id that is empty or not an integer where the format says integer.
    case nonNumericID
    /// A timestamp that is neither Unix seconds nor `YYYY-MM-DD[ HH:MM:SS]`.
    case nonNumericTimestamp
    /// A price, quantity, rating or other number that does not parse.
    case badNumber
    /// A behaviour name outside `EventType.acceptedNames`.
    case unknownEventType
    /// The header line repeated inside the data (e.g. concatenated files).
    case duplicateHeader
    /// A malformed quoted field or JSON value.
    case malformed
}

/// Applies the bad-row policy: throw on the first bad row, or skip and count per class.
public struct BadRowLog: Sendable {
    /// Whether bad rows are skipped (`--skip-bad-rows`) instead of failing the run.
    public let skip: Bool
    /// Rows skipped so far, per class.
    public private(set) var counts: [BadRowKind: Int] = [:]
    /// The first message seen per class, for the summary.
    public private(set) var firstMessages: [BadRowKind: String] = [:]

    /// A log with the given policy.
    public init(skip: Bool) { self.skip = skip }

    /// Reports a bad row at `file:line`; throws `HeedError(.invalidInput)` unless skipping.
    public mutating func report(_ kind: BadRowKind, file: String, line: Int, _ message: String) throws {
        let text = "\(file):\(line): \(message)"
        guard skip else { throw HeedError(.invalidInput, text + " [\(kind.rawValue); use --skip-bad-rows to skip such rows]") }
        counts[kind, default: 0] += 1
        if firstMessages[kind] == nil { firstMessages[kind] = text }
    }

    /// Total rows skipped.
    public var total: Int { counts.values.reduce(0, +) }

    /// Counts keyed by class name, for manifests.
    public var countsByName: [String: Int] {
        Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
    }
}

/// Shows a field of a bad row in an error message (truncated, non-UTF-8 bytes replaced).
func quoteField(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> String {
    let e = min(end, start + 40)
    let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<e]), as: UTF8.self)
    return "'" + text + (e < end ? "…'" : "'")
}
