import Foundation
import HeedCore

/// What a running `heed prepare` is doing, for a person watching: the phase, input bytes
/// read of the total, events read, records written of the total, and the rates and ETA
/// derived from them (`line(at:)`). `heed prepare` redraws it in place on a terminal.
///
/// Readers report through `PrepareProgress.active` (set by `Preparer.prepare` for the
/// duration of one preparation), so loaders need no extra parameter.
public final class PrepareProgress: @unchecked Sendable {
    // Sendable: every field is read and written under `lock`.
    /// The phases of an in-memory prepare, in order.
    public enum Phase: String, Sendable, CaseIterable {
        /// Parsing the input files into event columns.
        case read
        /// Sorting a full run of events by (user, time) and writing it to disk (`--memory-budget`).
        case spill
        /// Merging the spilled runs (the last run's sort; the merge itself streams in count and write).
        case merge
        /// Grouping events by user and ordering them by time; item and user tables.
        case sort
        /// The sizing pass over every record (counts per shard).
        case count
        /// Writing the catalog, the sequence file and the shards.
        case write
    }

    /// One reading of the meter.
    public struct Snapshot: Equatable, Sendable {
        /// Current phase.
        public var phase: Phase = .read
        /// Input bytes consumed (compressed bytes for gzip files).
        public var bytesRead = 0
        /// Total input bytes (sum of the input files' sizes), 0 if unknown.
        public var bytesTotal = 0
        /// Events kept so far (read phase) or in all (later).
        public var events = 0
        /// Records written so far (write phase).
        public var recordsWritten = 0
        /// Records to write (known after the count phase).
        public var recordsTotal = 0
        /// Seconds since the start of the preparation.
        public var elapsed = 0.0
        /// Seconds since the current phase started.
        public var phaseElapsed = 0.0
    }

    /// The meter of the preparation running in this process, if any.
    ///
    /// Task-local, so preparations running side by side (tests) each count only their own bytes.
    @TaskLocal static var active: PrepareProgress?

    private let lock = NSLock()
    private var state = Snapshot()
    private let start: Double
    private var phaseStart: Double
    /// Seconds spent reading before the current phase (reading pauses while a run spills).
    private var readSeconds = 0.0
    private let clock: @Sendable () -> Double
    /// Every phase change and reading, in order (for tests and the non-terminal log).
    private var phases: [Phase] = [.read]

    /// A meter for inputs totalling `bytesTotal` bytes; `clock` gives monotonic seconds.
    public init(bytesTotal: Int, clock: @escaping @Sendable () -> Double = PrepareProgress.monotonicSeconds) {
        self.clock = clock
        start = clock()
        phaseStart = start
        state.bytesTotal = bytesTotal
    }

    /// Monotonic seconds.
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Enters `phase`.
    ///
    /// Reading resumes after a spill: its clock continues, so its rate counts reading time only.
    func enter(_ phase: Phase) {
        lock.withLock {
            let now = clock()
            if state.phase == .read { readSeconds += now - phaseStart }
            state.phase = phase
            phaseStart = phase == .read ? now - readSeconds : now
            phases.append(phase)
        }
    }

    /// Counts `bytes` more input bytes consumed.
    func read(bytes: Int) { lock.withLock { state.bytesRead += bytes } }

    /// Sets the events kept so far.
    func events(_ n: Int) { lock.withLock { state.events = n } }

    /// Sets the records to write.
    func recordsTotal(_ n: Int) { lock.withLock { state.recordsTotal = n } }

    /// Counts `n` more records written.
    func wrote(records n: Int) { lock.withLock { state.recordsWritten += n } }

    /// The current reading.
    public func snapshot() -> Snapshot {
        lock.withLock {
            var s = state
            let now = clock()
            s.elapsed = now - start
            s.phaseElapsed = now - phaseStart
            return s
        }
    }

    /// The phases entered so far, in order.
    public var phaseLog: [Phase] { lock.withLock { phases } }

    /// One line for a person: phase, bytes read of the total, rate and ETA of the phase.
    ///
    /// `read 1.2 GB / 3.4 GB (35 %) · 2.10 M events/s · ETA 1m05s` while reading (ETA from the
    /// byte rate), `write 4.0 M / 18.0 M records (22 %) · 1.50 M records/s · ETA 9s` while
    /// writing, `sort 12.3 M events · 4s` otherwise.
    public static func line(_ s: Snapshot) -> String {
        func gb(_ b: Int) -> String { b >= 1_000_000_000 ? String(format: "%.2f GB", Double(b) / 1e9) : String(format: "%.1f MB", Double(b) / 1e6) }
        func millions(_ n: Int) -> String { String(format: "%.2f M", Double(n) / 1e6) }
        func eta(_ seconds: Double) -> String {
            guard seconds.isFinite, seconds >= 0 else { return "ETA ?" }
            let t = Int(seconds.rounded())
            return t >= 60 ? "ETA \(t / 60)m\(String(format: "%02d", t % 60))s" : "ETA \(t)s"
        }
        let dt = max(s.phaseElapsed, 1e-9)
        switch s.phase {
        case .read:
            let pct = s.bytesTotal > 0 ? Double(s.bytesRead) / Double(s.bytesTotal) : 0
            let rate = Double(s.bytesRead) / dt
            let remaining = rate > 0 && s.bytesTotal > 0 ? Double(max(0, s.bytesTotal - s.bytesRead)) / rate : .infinity
            return "read \(gb(s.bytesRead)) / \(gb(s.bytesTotal)) (\(Int(pct * 100)) %) · \(millions(Int(Double(s.events) / dt))) events/s · \(eta(remaining))"
        case .write:
            let pct = s.recordsTotal > 0 ? Double(s.recordsWritten) / Double(s.recordsTotal) : 0
            let rate = Double(s.recordsWritten) / dt
            let remaining = rate > 0 ? Double(max(0, s.recordsTotal - s.recordsWritten)) / rate : .infinity
            return "write \(millions(s.recordsWritten)) / \(millions(s.recordsTotal)) records (\(Int(pct * 100)) %) · \(millions(Int(rate))) records/s · \(eta(remaining))"
        case .sort, .count, .spill, .merge:
            return "\(s.phase.rawValue) \(millions(s.events)) events · \(Int(s.phaseElapsed))s"
        }
    }
}
