import CoreMetrics
import Foundation
import HeedCore
import Logging

/// What a role reports through: its identity (role, rank), a logger whose lines carry
/// them, a metrics factory (Prometheus in the executable, a no-op in tests) and the
/// metrics log in the run directory. The executable builds one per process and passes it
/// down; library code reads no flags or environment.
public final class Telemetry: Sendable {
    public let identity: RoleIdentity
    public let logger: Logger
    public let metrics: any MetricsFactory
    public let events: RunEventLog

    /// Seconds between `memory` events and resident-memory gauge updates.
    public let memoryInterval: Double

    public init(identity: RoleIdentity, logger: Logger, metrics: any MetricsFactory, runDirectory: String?, memoryInterval: Double = 5) {
        self.identity = identity
        self.logger = logger
        self.metrics = metrics
        self.events = RunEventLog(runDirectory: runDirectory, identity: identity)
        self.memoryInterval = memoryInterval
    }

    /// Telemetry that says nothing and writes nothing (tests, benchmarks).
    public static func silent(role: String, rank: Int? = nil) -> Telemetry {
        let identity = RoleIdentity(role: role, rank: rank)
        return Telemetry(identity: identity, logger: Logger(label: "heed", factory: { _ in SwiftLogNoOpLogHandler() }),
                         metrics: NOOPMetricsHandler.instance, runDirectory: nil)
    }

    /// Metric dimensions naming this role: `role` and (once known) `rank`.
    public var dimensions: [(String, String)] {
        [("role", identity.role)] + (identity.rank.map { [("rank", "\($0)")] } ?? [])
    }

    /// Records the rank (log lines and metrics from now on carry it), opens the metrics log
    /// and writes its `start` event. Coordinators and launchers call it with rank 0.
    /// A metrics log that cannot be opened is reported and skipped: watching a run must not stop it.
    public func assign(rank: Int) {
        identity.assign(rank: rank)
        do {
            try events.open()
        } catch {
            logger.warning("no metrics log: \(error)")
        }
        events.write("start")
    }

    /// Samples resident memory every `memoryInterval` seconds into a gauge and `memory`
    /// events until the returned task is cancelled.
    public func sampleMemory() -> Task<Void, Never> {
        let gauge = Gauge(label: "heed_resident_memory_bytes", dimensions: dimensions, factory: metrics)
        let events = events, interval = memoryInterval
        return Task.detached {
            while !Task.isCancelled {
                if let bytes = ResidentMemory.bytes() {
                    gauge.record(bytes)
                    events.write("memory", ["rss_bytes": .int(bytes)])
                }
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
    }
}
