import Foundation
import HeedCheckpoint
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM to each role of a running, checkpointing cluster: the role stops cleanly with
/// the documented status (README, "Exit status"), the others end as documented, and
/// nothing half-written is left: no temporary file, only complete checkpoints, every
/// metrics-log line whole.
@Suite(.serialized) struct ShutdownTests {
    typealias Run = LauncherTests.Run
    let data: String
    init() throws { data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2) }

    /// Expected exit statuses when `victim` gets SIGTERM: the victim 143 (128 + 15); the
    /// coordinator 3 when another role left (the run failed); a server told to stop 0; a
    /// worker whose run was stopped 1.
    static func expected(victim: String) -> [String: Int32] {
        switch victim {
        case "coordinator": return ["coordinator": 143, "server": 0, "worker 0": 1, "worker 1": 1]
        case "server": return ["coordinator": 3, "server": 143, "worker 0": 1, "worker 1": 1]
        default: return ["coordinator": 3, "server": 0, "worker 0": 1, "worker 1": 143]
        }
    }

    @Test(arguments: ["coordinator", "server", "worker 1"])
    func sigtermStopsARoleCleanlyWithItsDocumentedStatus(victim: String) async throws {
        let dir = ObservabilityTests.scratch("sigterm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let coordinator = "ipc://\(dir)/coordinator.ipc"
        let observe = ["--run-dir", dir + "/run"]
        let roles: [String: Run] = try [
            "coordinator": Run(["coordinator", "--listen", coordinator, "--model", "lr", "--data", data, "--servers", "1", "--workers", "2",
                                "--epochs", "200", "--batch-size", "32", "--checkpoint-dir", dir + "/ckpt", "--checkpoint-every-steps", "40",
                                "--save-model", dir + "/model"] + observe),
            "server": Run(["server", "--coordinator", coordinator, "--listen", "ipc://\(dir)/server.ipc"] + observe),
            "worker 0": Run(["worker", "--coordinator", coordinator, "--rank", "0"] + observe),
            "worker 1": Run(["worker", "--coordinator", coordinator, "--rank", "1"] + observe),
        ]
        defer { roles.values.forEach { if $0.process.isRunning { kill($0.process.processIdentifier, SIGKILL) } } }
        // Stopped once both workers train and a checkpoint has been written.
        let ready = await waitUntil(timeout: .seconds(90)) {
            LauncherTests.isTraining(0, roles["worker 0"]!.output) && LauncherTests.isTraining(1, roles["worker 1"]!.output)
                && roles["coordinator"]!.output.contains("checkpoint 1 written")
        }
        #expect(ready, "\(roles["coordinator"]!.output)\n\(roles["worker 1"]!.output)")
        kill(roles[victim]!.process.processIdentifier, SIGTERM)
        for (label, status) in Self.expected(victim: victim) {
            let run = roles[label]!
            #expect(await run.exit(within: 60) == status, "\(label): \(run.output)")
        }
        #expect(roles[victim]!.output.contains("stopped by SIGTERM"), "\(roles[victim]!.output)")
        if victim != "coordinator" {
            // The role said it was leaving: the run ended at once, not after the failure timeout.
            let name = victim == "server" ? "server 0" : victim
            #expect(roles["coordinator"]!.output.contains("\(name) is leaving"), "\(roles["coordinator"]!.output)")
        }

        #expect(ObservabilityTests.partialFiles(under: dir) == [], "half-written files")
        ObservabilityTests.expectOnlyValidCheckpoints(dir + "/ckpt")
        #expect(!FileManager.default.fileExists(atPath: dir + "/model/manifest.json"), "the run did not finish: no saved model")
        let logs = try ObservabilityTests.metricsLogs(dir + "/run")
        #expect(logs.count == 4)
        let file = victim == "worker 1" ? "worker-1.jsonl" : "\(victim)-0.jsonl"
        let end = try #require(logs[file]?.last)
        #expect(end["event"] as? String == "end" && end["exit"] as? Int == 143, "\(end)")
    }

    /// SIGTERM to `heed train` stops the whole local cluster: status 143, every child gone,
    /// no temporary file, only complete checkpoints, and no report written.
    @Test func sigtermToTheLauncherStopsTheLocalClusterCleanly() async throws {
        let dir = ObservabilityTests.scratch("sigterm-train")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "2", "--epochs", "200", "--batch-size", "32",
                           "--checkpoint-dir", dir + "/ckpt", "--checkpoint-every-steps", "40", "--save-model", dir + "/model",
                           "--run-dir", dir + "/run", "--metrics-out", dir + "/report.json"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        let ready = await waitUntil(timeout: .seconds(90)) {
            LauncherTests.isTraining(0, run.output) && LauncherTests.isTraining(1, run.output) && run.output.contains("checkpoint 1 written")
        }
        #expect(ready, "\(run.output)")
        let children = ["coordinator", "server", "worker"].compactMap { run.child(containing: ["heed", $0]) }
        kill(run.process.processIdentifier, SIGTERM)
        #expect(await run.exit(within: 60) == 143, "\(run.output)")
        for pid in children { #expect(kill(pid, 0) != 0, "child \(pid) outlived the launcher") }
        #expect(ObservabilityTests.partialFiles(under: dir) == [], "half-written files")
        ObservabilityTests.expectOnlyValidCheckpoints(dir + "/ckpt")
        #expect(!FileManager.default.fileExists(atPath: dir + "/report.json"))
        let logs = try ObservabilityTests.metricsLogs(dir + "/run")
        let end = try #require(logs["launcher-0.jsonl"]?.last)
        #expect(end["event"] as? String == "end" && end["exit"] as? Int == 143, "\(end)")
    }
}
