import CoreMetrics
import Foundation
import HeedObserve
import Logging
import Prometheus

/// One process's telemetry as the executable sets it up: a logger writing role and rank
/// in every line, a Prometheus registry behind swift-metrics (served over HTTP when
/// `--metrics-port` is given), and the metrics log in the run directory.
final class RoleObservation {
    let telemetry: Telemetry
    let registry: PrometheusCollectorRegistry
    private(set) var listener: MetricsListener?

    /// Latency buckets (seconds) for pulls and pushes: a loopback round trip is ~0.15 ms,
    /// a step's concurrent fetch of every table a few ms.
    static let latencyBuckets: [Duration] = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                             .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                             .milliseconds(500), .seconds(1), .seconds(5)]

    /// Telemetry for `role`; starts the metrics listener if asked.
    init(role: String, options: ObserveOptions, runDirectory: String?) throws {
        let identity = RoleIdentity(role: role)
        let level = options.logLevel
        let logger = Logger(label: "heed") { _ in HeedLogHandler(level: level, metadataProvider: identity.metadataProvider) }
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = ["heed_pull_seconds": Self.latencyBuckets, "heed_push_seconds": Self.latencyBuckets]
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        telemetry = Telemetry(identity: identity, logger: logger, metrics: factory, runDirectory: runDirectory)
        if let port = options.metricsPort {
            let registry = registry
            let listener = try MetricsListener(host: options.metricsAddress, port: port) { registry.emitToString() }
            self.listener = listener
            logger.info("metrics at \(listener.url)")
        }
    }

    var logger: Logger { telemetry.logger }

    /// Writes the `end` event with the process's exit status, closes the metrics log and
    /// the listener.
    func finish(exit status: Int32) {
        telemetry.events.write("end", ["exit": .int(Int(status))])
        telemetry.events.close()
        listener?.close()
    }
}
