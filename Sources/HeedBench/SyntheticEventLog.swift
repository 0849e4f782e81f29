import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A seeded, documented shop log in the generic schema, for measuring `heed prepare` at
/// sizes no public dataset here has (`heed bench prepare --scale`).
///
/// The file is `user,item,event,timestamp,category,price` with a header, ordered by time
/// as a shop's export is (users interleaved). For `events` rows:
/// - users: `events / 10` ids (at least 1), each row's user drawn uniformly, so a user has
///   about 10 events (Poisson);
/// - items: a catalogue of `events` ids; half the rows draw from a popular head (the first
///   `events / 100` ids, log-uniform, so popularity falls like 1/rank), half uniformly
///   from the whole catalogue (the long tail): about 0.4 distinct items per event;
/// - event: view 89 %, cart 5 %, fav 3 %, purchase 3 % (Taobao UserBehavior's mix);
/// - timestamp: Unix seconds, non-decreasing over 9 days from 2023-11-14;
/// - category (one of 5,000) and price (0.01 to 100.00) are fixed per item, from a hash.
/// The same `events` and `seed` give the same bytes on every machine.
public struct SyntheticEventLog: Sendable {
    /// Rows to write.
    public let events: Int
    /// Seed of every random draw.
    public let seed: UInt64

    /// The header line the file starts with.
    public static let header = "user,item,event,timestamp,category,price"
    /// First timestamp, Unix seconds (2023-11-14 22:13:20 UTC).
    public static let startTime: Int64 = 1_700_000_000
    /// Span of the timestamps, seconds.
    public static let span: Int64 = 9 * 86_400

    /// A log of `events` rows drawn from `seed`.
    public init(events: Int, seed: UInt64 = 1) {
        precondition(events >= 1, "a synthetic log needs at least one event")
        self.events = events
        self.seed = seed
    }

    /// User ids are 1...users.
    public var users: Int { max(1, events / 10) }
    /// Item ids are 1...catalogue.
    public var catalogue: Int { events }
    /// The popular head: item ids 1...head.
    public var head: Int { max(1, events / 100) }

    /// Writes the log to `path` (replacing it) and returns the bytes written.
    ///
    /// - Throws: `HeedError(.io)` naming the file when it cannot be written.
    @discardableResult
    public func write(to path: String) throws -> Int {
        let file = try PosixFile(creating: path)
        var rng = SeededGenerator(seed: seed)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        buffer.append(contentsOf: Array((Self.header + "\n").utf8))
        var offset = 0
        let logHead = log(Double(head))
        for i in 0..<events {
            let user = 1 + Int(rng.next() % UInt64(users))
            let item: Int
            if rng.next() & 1 == 0 {
                item = min(head, 1 + Int(exp(rng.nextUnitDouble() * logHead)))
            } else {
                item = 1 + Int(rng.next() % UInt64(catalogue))
            }
            let roll = rng.next() % 100
            let event = roll < 89 ? "view" : roll < 94 ? "cart" : roll < 97 ? "fav" : "purchase"
            let time = Self.startTime + Int64(i) * Self.span / Int64(events)
            let h = KeyHash.mix64(UInt64(item) ^ seed)
            let category = 1 + h % 5_000
            let cents = 1 + (h >> 20) % 10_000
            append("\(user),\(item),\(event),\(time),\(category),\(cents / 100).\(cents % 100 < 10 ? "0" : "")\(cents % 100)\n", to: &buffer)
            if buffer.count >= 1 << 20 {
                try file.write(buffer, at: offset)
                offset += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
        try file.write(buffer, at: offset)
        offset += buffer.count
        try file.syncAndClose()
        return offset
    }

    private func append(_ line: String, to buffer: inout [UInt8]) {
        var line = line
        line.withUTF8 { buffer.append(contentsOf: $0) }
    }
}
