import HeedCore
import HeedData
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The measured pieces of `heed bench prepare`: line scanning (the bound), parsing, parse + write.
public enum PrepareBench {
    /// Result of one timed pass over an event file.
    public struct Pass: Sendable {
        /// Lines seen (scan) or events produced (parse).
        public var rows: Int
        /// Decompressed bytes read.
        public var bytes: Int
        /// Bytes written (parse + write only).
        public var written: Int
    }

    /// Reads every line and touches nothing else: the cost floor of reading the file.
    public static func scanLines(path: String) throws -> Pass {
        var lines = 0
        let bytes = try LineReader(path: path).forEachLine(expected: "text lines") { _, _ in
            lines += 1
            return true
        }
        return Pass(rows: lines, bytes: bytes, written: 0)
    }

    /// Parses the event file of `dataset` into the in-memory event columns (ids, types, times).
    public static func parse(dataset: PrepareOptions.Dataset, path: String) throws -> Pass {
        var o = PrepareOptions(dataset: dataset, input: nil, output: "")
        o.events = path
        var log = BadRowLog(skip: false)
        let d = try parseOnly(o, log: &log)
        return Pass(rows: d.eventCount, bytes: try FileOps.size(path), written: 0)
    }

    /// Parses as `parse` and writes the event columns (user, item, type, time: 21 bytes/row) to `output`.
    public static func parseAndWrite(dataset: PrepareOptions.Dataset, path: String, output: String) throws -> Pass {
        var o = PrepareOptions(dataset: dataset, input: nil, output: "")
        o.events = path
        var log = BadRowLog(skip: false)
        let d = try parseOnly(o, log: &log)
        let f = try PosixFile(creating: output)
        var at = 0
        func put<T>(_ a: [T]) throws {
            try a.withUnsafeBytes { try f.write($0, at: at) }
            at += a.count * MemoryLayout<T>.stride
        }
        let userIDs = d.eventUser.map { d.users.rawIDs[Int($0)] }
        let itemIDs = d.eventItem.map { d.items.rawIDs[Int($0)] }
        try put(userIDs)
        try put(itemIDs)
        try put(d.eventType)
        try put(d.eventTime)
        try f.syncAndClose()
        return Pass(rows: d.eventCount, bytes: try FileOps.size(path), written: at)
    }

    /// Only the event file of a dataset (no item, social or user files).
    private static func parseOnly(_ o: PrepareOptions, log: inout BadRowLog) throws -> RawDataset {
        switch o.dataset {
        case .amazonBeauty, .amazonSports, .amazonToys:
            var d = RawDataset(name: o.dataset.rawValue)
            try AmazonLoaders.readUserLines(path: o.events!, into: &d, log: &log, minItems: 1)
            return d
        default:
            var q = o
            q.input = nil
            return try Preparer.load(q, log: &log)
        }
    }

    /// Monotonic seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Writes the decompressed content of `path` to `output` (to time parsing without gunzip).
    public static func decompress(_ path: String, to output: String) throws {
        let f = try PosixFile(creating: output)
        var at = 0
        var buf: [UInt8] = []
        try LineReader(path: path).forEachLine(expected: "text lines") { line, _ in
            buf.append(contentsOf: line)
            buf.append(0x0A)
            if buf.count > 1 << 20 { try f.write(buf, at: at); at += buf.count; buf.removeAll(keepingCapacity: true) }
            return true
        }
        try f.write(buf, at: at)
        try f.syncAndClose()
    }
}
