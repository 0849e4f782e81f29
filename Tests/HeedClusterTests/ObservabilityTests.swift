import Foundation
import HeedCheckpoint
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Watching and stopping a run: the metrics log of every role, Prometheus metrics over
/// HTTP, and SIGTERM to each role (documented exit statuses, nothing half-written left).
@Suite(.serialized) struct ObservabilityTests {
    typealias Run = LauncherTests.Run
    let data: String
    init() throws { data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2) }

    static func scratch(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "heed-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Every metrics log under `runDirectory`, by file name, each line parsed as a JSON
    /// object carrying the contract's fields (a line that does not parse fails the test).
    static func metricsLogs(_ runDirectory: String) throws -> [String: [[String: Any]]] {
        let dir = runDirectory + "/metrics"
        var logs: [String: [[String: Any]]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            let role = String(name.split(separator: "-").first ?? ""), rank = Int(name.dropFirst(role.count + 1).split(separator: ".").first ?? "")
            logs[name] = try text.split(separator: "\n").map { line in
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(name): \(line)")
                #expect(object["t"] is Double, "\(name): \(line)")
                #expect(object["role"] as? String == role && object["rank"] as? Int == rank, "\(name): \(line)")
                #expect(object["event"] is String, "\(name): \(line)")
                return object
            }
        }
        return logs
    }

    /// Paths under `directory` that a write in progress would leave (`name.tmp-<pid>`).
    static func partialFiles(under directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.contains(".tmp-") }
    }

    /// Every checkpoint directory holds a manifest whose files verify (none half-written).
    static func expectOnlyValidCheckpoints(_ directory: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for entry in entries where entry.hasPrefix("step-") {
            #expect(throws: Never.self, "\(entry) is not a complete checkpoint") { _ = try CheckpointStore.verify(directory + "/" + entry) }
        }
    }

    @Test func everyRoleOfALocalRunWritesItsMetricsLog() async throws {
        let dir = Self.scratch("runlog")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "2", "--max-steps", "40",
                           "--run-dir", dir + "/run", "--metrics-out", dir + "/report.json"])
        #expect(await run.exit(within: 120) == 0, "\(run.output)")
        let logs = try Self.metricsLogs(dir + "/run")
        #expect(Set(logs.keys) == ["launcher-0.jsonl", "coordinator-0.jsonl", "server-0.jsonl", "server-1.jsonl", "worker-0.jsonl", "worker-1.jsonl"])
        for (name, events) in logs {
            #expect(events.first?["event"] as? String == "start", "\(name)")
            #expect(events.last?["event"] as? String == "end" && events.last?["exit"] as? Int == 0, "\(name): \(events.last ?? [:])")
            let memory = events.first { $0["event"] as? String == "memory" }
            #expect((memory?["rss_bytes"] as? Int ?? 0) > 1 << 20, "\(name)")
            let times = events.compactMap { $0["t"] as? Double }
            #expect(times == times.sorted(), "\(name): lines in time order")
        }
        for rank in 0..<2 {
            let steps = try #require(logs["worker-\(rank).jsonl"]).filter { $0["event"] as? String == "step" }
            #expect(!steps.isEmpty)
            for s in steps {
                #expect((1...40).contains(s["step"] as? Int ?? 0) && s["loss"] is Double && (s["samples_per_s"] as? Double ?? 0) > 0, "\(s)")
                #expect((s["pull_ms"] as? Double ?? 0) > 0 && (s["push_ms"] as? Double ?? 0) > 0, "\(s)")
            }
        }
        // Worker 0's test evaluation is the one the report holds.
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/report.json"))) as? [String: Any]
        let epoch = try #require(logs["worker-0.jsonl"]?.first { $0["event"] as? String == "epoch" })
        #expect(epoch["split"] as? String == "test" && epoch["epoch"] as? Int == 1)
        #expect(epoch["auc"] as? Double == (report?["test"] as? [String: Any])?["auc"] as? Double)
    }

    /// The URL a role logged for its metrics listener (`<label>: metrics at http://...`).
    static func metricsURL(_ output: String, label: String) -> (host: String, port: Int)? {
        guard let range = output.range(of: "\(label): metrics at http://127\\.0\\.0\\.1:[0-9]+/metrics", options: .regularExpression) else { return nil }
        let url = output[range]
        let port = url.split(separator: ":").last?.split(separator: "/").first.flatMap { Int($0) }
        return port.map { ("127.0.0.1", $0) }
    }

    /// GET http://127.0.0.1:port/metrics over a plain socket; nil when nobody answers.
    static func scrape(port: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let body = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[body.upperBound...])
    }

    /// Scrapes until `ready` holds for the parsed text (with a deadline).
    static func scrape(port: Int, until ready: (PrometheusText) -> Bool) async throws -> PrometheusText {
        var last: PrometheusText?
        _ = await waitUntil(timeout: .seconds(60), interval: .milliseconds(200)) {
            guard let text = scrape(port: port), let parsed = try? PrometheusText(text) else { return false }
            last = parsed
            return ready(parsed)
        }
        return try #require(last, "nothing answered on port \(port)")
    }

    @Test func runningRolesServePrometheusMetricsOverHTTP() async throws {
        let dir = Self.scratch("scrape")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "2", "--epochs", "200", "--batch-size", "32",
                           "--metrics-port", "0", "--run-dir", "none", "--checkpoint-dir", dir + "/ckpt", "--checkpoint-every-seconds", "1"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGINT); _ = run.wait(seconds: 60) } }
        let started = await waitUntil(timeout: .seconds(60)) {
            LauncherTests.isTraining(0, run.output) && LauncherTests.isTraining(1, run.output)
                && Self.metricsURL(run.output, label: "coordinator") != nil && Self.metricsURL(run.output, label: "server") != nil
        }
        #expect(started, "\(run.output)")
        let worker = try #require(Self.metricsURL(run.output, label: "worker"))
        let server = try #require(Self.metricsURL(run.output, label: "server"))
        let coordinator = try #require(Self.metricsURL(run.output, label: "coordinator"))

        // Once a step has completed: its pull, push and samples are recorded.
        let w = try await Self.scrape(port: worker.port) {
            ($0.values("heed_samples_total").first?.value ?? 0) > 0 && ($0.values("heed_push_seconds_count").first?.value ?? 0) > 0
        }
        #expect(w.types["heed_pull_seconds"] == "histogram" && w.types["heed_push_seconds"] == "histogram", "\(w.types)")
        for family in ["heed_pull_seconds", "heed_push_seconds"] {
            // Cumulative buckets: non-decreasing in `le`, the +Inf bucket equal to the count.
            let buckets = w.values(family + "_bucket").sorted { Double($0.labels["le"]!.replacingOccurrences(of: "+Inf", with: "inf"))! < Double($1.labels["le"]!.replacingOccurrences(of: "+Inf", with: "inf"))! }
            #expect(buckets.count >= 5, "\(family)")
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value }, "\(buckets)")
            #expect(buckets.last?.labels["le"] == "+Inf" && buckets.last?.value == w.values(family + "_count").first?.value)
            #expect((w.values(family + "_count").first?.value ?? 0) > 0)
        }
        #expect((w.values("heed_samples_per_second", ["role": "worker"]).first?.value ?? 0) > 0)
        #expect((w.values("heed_samples_total").first?.value ?? 0) > 0)
        let rank = try #require(w.values("heed_samples_total").first?.labels["rank"])
        #expect(rank == "0" || rank == "1")

        let s = try await Self.scrape(port: server.port) { $0.values("heed_table_rows").contains { $0.value > 0 } }
        #expect(s.values("heed_table_rows").contains { $0.value > 0 && $0.labels["table"] != nil }, "\(s.samples)")
        #expect(s.values("heed_table_resident_bytes").contains { $0.value > 0 })
        for reason in ["malformed", "unauthenticated", "foreign_key"] {
            #expect(s.values("heed_rejected_messages_total", ["reason": reason]).first?.value == 0, "\(reason)")
        }
        #expect((s.values("heed_resident_memory_bytes").first?.value ?? 0) > 1_048_576)

        // Waits for the workers' rates too: the first heartbeats may precede the first step.
        let c = try await Self.scrape(port: coordinator.port) {
            !$0.values("heed_checkpoint_age_seconds").isEmpty && ($0.values("heed_cluster_samples_per_second").first?.value ?? 0) > 0
        }
        for (role, ranks) in [("worker", ["0", "1"]), ("server", ["0", "1"])] {
            for r in ranks {
                let age = c.values("heed_heartbeat_age_seconds", ["peer_role": role, "peer_rank": r]).first?.value
                #expect(age != nil && age! >= 0 && age! < 10, "\(role) \(r): \(String(describing: age))")
            }
        }
        let checkpointAge = try #require(c.values("heed_checkpoint_age_seconds").first?.value)
        #expect(checkpointAge >= 0 && checkpointAge < 30)
        #expect((c.values("heed_cluster_samples_per_second").first?.value ?? 0) > 0)

        kill(run.process.processIdentifier, SIGINT)
        #expect(await run.exit(within: 60) == 130, "\(run.output)")
    }
}

/// A tiny bounded `heed bench soak` (the real one runs for minutes, outside the suite):
/// 8 workers for a few seconds register, train, are sampled and stop cleanly.
@Suite(.serialized) struct SoakSmokeTests {
    @Test func aShortSoakReportsNoHangAndStopsCleanly() async throws {
        let data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 8)
        let dir = ObservabilityTests.scratch("soak")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try LauncherTests.Run(["bench", "soak", "--workers", "8", "--seconds", "8", "--warmup", "3", "--sample-every", "1",
                                         "--stall", "6", "--data", data, "--run-dir", dir + "/run"])
        #expect(await run.exit(within: 180) == 0, "\(run.output)")
        #expect(run.output.contains("8 workers registered after"), "\(run.output)")
        #expect(run.output.contains("stop: SIGTERM -> status 143"), "\(run.output)")
        #expect(run.output.contains("no hang"), "\(run.output)")
        let steps = run.output.range(of: "throughput: [0-9]+ steps", options: .regularExpression).map { run.output[$0].split(separator: " ")[1] }
        #expect((steps.flatMap { Int($0) } ?? 0) > 8, "\(run.output)")
    }
}
