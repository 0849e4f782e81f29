#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Writes log lines to standard error, each with the role and rank that the identity's
/// metadata carries. On a terminal, today's readable form:
/// `heed: [10:15:02] worker 0: epoch 1  step 40/80 ...`; otherwise a sortable, greppable
/// one with the UTC time to the millisecond and the level:
/// `heed: 2026-12-07T10:15:02.123Z info worker 0: epoch 1 ... key=value`.
/// Each line goes out in one `write(2)`, so the lines of threads do not interleave.
struct HeedLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level
    /// Terminal form (short local time, no level) or file form.
    let terminal: Bool

    init(level: Logger.Level, metadataProvider: Logger.MetadataProvider?, terminal: Bool = isatty(2) == 1) {
        logLevel = level
        self.metadataProvider = metadataProvider
        self.terminal = terminal
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadataProvider?.get() ?? [:]
        all.merge(metadata) { $1 }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let role = all.removeValue(forKey: "role").map { "\($0)" }
        let rank = all.removeValue(forKey: "rank").map { "\($0)" }
        let line = "heed: " + Self.render(level: event.level, message: "\(event.message)", role: role, rank: rank,
                                          extra: all, terminal: terminal, time: Self.now())
        var bytes = Array((line + "\n").utf8)
        // Safe: the buffer lives for the call; one write per line.
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// How a line reads (without the `heed: ` prefix).
    static func render(level: Logger.Level, message: String, role: String?, rank: String?, extra: Logger.Metadata,
                       terminal: Bool, time: timespec) -> String {
        let who: String
        switch role {
        case nil: who = ""
        case "launcher": who = "train: "
        case "coordinator": who = "coordinator: "
        case let r?: who = rank.map { "\(r) \($0): " } ?? "\(r): "
        }
        if terminal {
            return "[\(clock(time, utc: false, millis: false))] \(who)\(message)"
        }
        let tail = extra.keys.sorted().map { " \($0)=\(extra[$0]!)" }.joined()
        return "\(clock(time, utc: true, millis: true)) \(level) \(who)\(message)\(tail)"
    }

    static func now() -> timespec {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return t
    }

    /// `HH:MM:SS` local time, or `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
    static func clock(_ t: timespec, utc: Bool, millis: Bool) -> String {
        var seconds = t.tv_sec
        var parts = tm()
        if utc { gmtime_r(&seconds, &parts) } else { localtime_r(&seconds, &parts) }
        func two(_ x: Int32) -> String { x < 10 ? "0\(x)" : "\(x)" }
        let hms = "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        guard utc else { return hms }
        let ms = Int(t.tv_nsec / 1_000_000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(hms)" + (millis ? ".\(msText)" : "") + "Z"
    }
}
