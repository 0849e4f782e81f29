import Foundation

/// One line of a run's metrics log (docs/metrics-log.md): when, who, and what happened.
public struct MetricsRecord: Equatable, Sendable {
    /// Unix seconds.
    public var time: Double
    /// `coordinator`, `server`, `worker` or `launcher` (others are kept as written).
    public var role: String
    /// The role's rank.
    public var rank: Int
    /// What happened.
    public var event: Event

    /// The events the report reads; the log may hold others, which are skipped.
    public enum Event: Equatable, Sendable {
        /// The role started.
        case start
        /// A worker finished step `step`; pull/push latencies in milliseconds when measured.
        case step(step: Int, loss: Double?, samplesPerSecond: Double?, pullMilliseconds: Double?, pushMilliseconds: Double?)
        /// An evaluation after epoch `epoch` on `split` (`valid` or `test`).
        case epoch(epoch: Int, split: String, auc: Double, gauc: Double?, logLoss: Double?)
        /// A checkpoint at global step `step`, written to `directory` in `milliseconds`.
        case checkpoint(step: Int, directory: String?, milliseconds: Double?)
        /// Something failed.
        case failure(detail: String)
        /// The launcher restarted the cluster (attempt 1, 2, ...).
        case restart(attempt: Int)
        /// The role's resident set size.
        case memory(residentBytes: Int)
        /// The role ended, with its exit code if known.
        case end(exit: Int?)
    }

    /// Creates a record.
    public init(time: Double, role: String, rank: Int, event: Event) {
        self.time = time
        self.role = role
        self.rank = rank
        self.event = event
    }

    /// `worker 1`, `coordinator 0`: how the report names the writer.
    public var writer: String { "\(role) \(rank)" }

    /// What reading one line gave.
    public enum Parsed: Equatable, Sendable {
        /// A record the report uses.
        case record(MetricsRecord)
        /// A well-formed line of an event this reader does not know (forward compatible).
        case ignored
        /// Not a JSON object, or a known event without its required fields.
        case unreadable(reason: String)
    }

    /// Reads one JSON line. Unknown events and unknown fields are ignored; a known event
    /// lacking a required field, or a line that is not a JSON object, is unreadable.
    public static func parse(line: Substring) -> Parsed {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            return .unreadable(reason: "not a JSON object")
        }
        guard let time = number(object["t"]), let role = object["role"] as? String,
              let rank = integer(object["rank"]), let name = object["event"] as? String else {
            return .unreadable(reason: "missing t, role, rank or event")
        }
        func missing(_ field: String) -> Parsed { .unreadable(reason: "\(name) without \(field)") }
        let event: Event
        switch name {
        case "start":
            event = .start
        case "step":
            guard let step = integer(object["step"]) else { return missing("step") }
            event = .step(step: step, loss: number(object["loss"]), samplesPerSecond: number(object["samples_per_s"]),
                          pullMilliseconds: number(object["pull_ms"]), pushMilliseconds: number(object["push_ms"]))
        case "epoch":
            guard let epoch = integer(object["epoch"]) else { return missing("epoch") }
            guard let split = object["split"] as? String else { return missing("split") }
            guard let auc = number(object["auc"]) else {
                // Writers put null for a non-finite AUC (a split with one class): nothing to draw.
                return object["auc"] is NSNull ? .ignored : missing("auc")
            }
            event = .epoch(epoch: epoch, split: split, auc: auc, gauc: number(object["gauc"]), logLoss: number(object["logloss"]))
        case "checkpoint":
            guard let step = integer(object["step"]) else { return missing("step") }
            event = .checkpoint(step: step, directory: object["dir"] as? String, milliseconds: number(object["ms"]))
        case "failure":
            event = .failure(detail: object["detail"] as? String ?? "")
        case "restart":
            guard let attempt = integer(object["attempt"]) else { return missing("attempt") }
            event = .restart(attempt: attempt)
        case "memory":
            guard let bytes = integer(object["rss_bytes"]) else { return missing("rss_bytes") }
            event = .memory(residentBytes: bytes)
        case "end":
            event = .end(exit: integer(object["exit"]))
        default:
            return .ignored
        }
        return .record(MetricsRecord(time: time, role: role, rank: rank, event: event))
    }

    /// A finite JSON number (integers included).
    private static func number(_ value: Any?) -> Double? {
        guard let n = value as? NSNumber else { return nil }
        let d = n.doubleValue
        return d.isFinite ? d : nil
    }

    /// A JSON number with an integral value.
    private static func integer(_ value: Any?) -> Int? {
        guard let d = number(value), d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }
}
