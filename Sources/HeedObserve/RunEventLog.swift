#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HeedCore

/// One role's metrics log: JSON objects, one per line, appended to
/// `<run dir>/metrics/<role>-<rank>.jsonl` (the contract `heed report` reads; docs/metrics.md).
///
/// Every line has `t` (Unix seconds), `role`, `rank` and `event`, then the event's fields.
/// Each line goes to the file in one `write(2)` on a descriptor opened with `O_APPEND`,
/// so a reader never sees half of one line next to half of another; a process killed in
/// the middle can leave at most its last line short, which readers skip.
public final class RunEventLog: @unchecked Sendable {
    /// A value of an event field.
    public enum Value: Sendable, Equatable {
        case int(Int)
        case double(Double)
        case string(String)
        case null

        /// `double`, or `null` for NaN and infinities (JSON has neither).
        public static func number(_ x: Double?) -> Value {
            guard let x, x.isFinite else { return .null }
            return .double(x)
        }
    }

    /// The run directory (nil: the log is off and `write` does nothing).
    public let runDirectory: String?
    private let identity: RoleIdentity
    private let lock = NSLock()
    private var fd: Int32 = -1
    /// The file's path once opened.
    public private(set) var path: String?

    /// A log for `identity` under `runDirectory`; it opens its file once the rank is known
    /// (`open()`, called by `Telemetry.assign(rank:)`).
    public init(runDirectory: String?, identity: RoleIdentity) {
        self.runDirectory = runDirectory
        self.identity = identity
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Opens `metrics/<role>-<rank>.jsonl` for appending (creating the directories).
    public func open() throws {
        guard let runDirectory, let rank = identity.rank else { return }
        try lock.withLock {
            guard fd < 0 else { return }
            let directory = runDirectory + "/metrics"
            try FileOps.makeDirectories(directory)
            let file = directory + "/\(identity.role)-\(rank).jsonl"
            let opened = Glibc.open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard opened >= 0 else { throw HeedError(.io, "cannot open the metrics log \(file): \(String(cString: strerror(errno)))") }
            fd = opened
            path = file
        }
    }

    /// Appends one event line; errors are dropped (watching a run must not stop it).
    public func write(_ event: String, _ fields: KeyValuePairs<String, Value> = [:], at time: Date = Date()) {
        guard runDirectory != nil else { return }
        var line = "{\"t\":" + Self.format(time.timeIntervalSince1970) + ",\"role\":" + Self.quote(identity.role)
            + ",\"rank\":\(identity.rank ?? -1),\"event\":" + Self.quote(event)
        for (key, value) in fields {
            line += "," + Self.quote(key) + ":" + Self.encode(value)
        }
        line += "}\n"
        lock.withLock {
            guard fd >= 0 else { return }
            var bytes = Array(line.utf8)
            bytes.withUnsafeMutableBytes { buffer in
                // Safe: the buffer lives for the call. One write(2) per line; retried on EINTR only.
                while Glibc.write(fd, buffer.baseAddress, buffer.count) < 0 && errno == EINTR {}
            }
        }
    }

    /// Closes the file (later writes are dropped).
    public func close() {
        lock.withLock {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    static func encode(_ value: Value) -> String {
        switch value {
        case .int(let i): return "\(i)"
        case .double(let x): return x.isFinite ? format(x) : "null"
        case .string(let s): return quote(s)
        case .null: return "null"
        }
    }

    /// A Double as JSON: shortest round-trip form, integral values with ".0" kept short.
    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : "\(x)"
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
