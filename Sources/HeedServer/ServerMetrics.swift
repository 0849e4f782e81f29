import CoreMetrics
import HeedCore
import HeedObserve
import HeedTransport

/// A server's state as metrics, refreshed by `update()` once a second: rows and bytes per
/// table, messages rejected by reason (the transport's counters of malformed and
/// unauthenticated messages, and pulls or pushes of keys another server owns), and the
/// bytes received and sent.
final class ServerMetrics {
    private let telemetry: Telemetry
    private var tableRows: [UInt8: Gauge] = [:]
    private var tableBytes: [UInt8: Gauge] = [:]
    private let rejected: [String: Counter]
    private let received: Counter
    private let sent: Counter
    private let requests: Counter
    /// The counters' values at the last update: Prometheus counters only go up, so each
    /// update adds the difference.
    private var last = ServerCounters()
    private var lastForeign = 0

    init(telemetry: Telemetry) {
        self.telemetry = telemetry
        let d = telemetry.dimensions, f = telemetry.metrics
        rejected = Dictionary(uniqueKeysWithValues: ["malformed", "unauthenticated", "foreign_key"].map {
            ($0, Counter(label: "heed_rejected_messages_total", dimensions: d + [("reason", $0)], factory: f))
        })
        received = Counter(label: "heed_received_bytes_total", dimensions: d, factory: f)
        sent = Counter(label: "heed_sent_bytes_total", dimensions: d, factory: f)
        requests = Counter(label: "heed_requests_total", dimensions: d, factory: f)
    }

    /// Reads the shard's tables and the transport's counters into the metrics.
    func update(shard: ParameterShard, counters: ServerCounters) {
        for (table, stats) in shard.tableStats() {
            let d = telemetry.dimensions + [("table", "\(table)")]
            if tableRows[table] == nil {
                tableRows[table] = Gauge(label: "heed_table_rows", dimensions: d, factory: telemetry.metrics)
                tableBytes[table] = Gauge(label: "heed_table_resident_bytes", dimensions: d, factory: telemetry.metrics)
            }
            tableRows[table]!.record(stats.rows)
            tableBytes[table]!.record(stats.residentBytes)
        }
        rejected["malformed"]!.increment(by: max(0, counters.malformed - last.malformed))
        rejected["unauthenticated"]!.increment(by: max(0, counters.unauthenticated - last.unauthenticated))
        let foreign = shard.foreignKeyRejections
        rejected["foreign_key"]!.increment(by: max(0, foreign - lastForeign))
        received.increment(by: max(0, counters.bytesReceived - last.bytesReceived))
        sent.increment(by: max(0, counters.bytesSent - last.bytesSent))
        requests.increment(by: max(0, counters.received - last.received))
        last = counters
        lastForeign = foreign
    }
}
