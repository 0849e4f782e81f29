import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// End-to-end tests of the `heed` binary: real processes, real sockets, real data.
@Suite(.serialized) struct LauncherTests {
    /// `.build/<config>/heed`, beside the test bundle.
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("heed").path
    let data: String
    init() throws { data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2) }

    /// Starts `heed` with `arguments`; stdout and stderr go to files read by `output`.
    final class Run {
        let process = Process()
        let out = NSTemporaryDirectory() + "heed-launch-\(UUID().uuidString).log"
        convenience init(_ arguments: [String]) throws {
            try self.init(executable: LauncherTests.binary, arguments)
        }
        /// Starts `executable` (e.g. a script) with `arguments`.
        init(executable: String, _ arguments: [String]) throws {
            FileManager.default.createFile(atPath: out, contents: nil)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let handle = FileHandle(forWritingAtPath: out)!
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }
        var output: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        /// Waits up to `seconds` without holding a thread of the test pool (a blocked pool
        /// starves every async test of the suite); terminates the process on timeout.
        func exit(within seconds: Double) async -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { process.terminate(); return nil }
            return process.terminationStatus
        }

        /// Blocking form of `exit(within:)`, for `defer` blocks and synchronous helpers.
        func wait(seconds: Double) -> Int32? {
            _ = waitUntil(seconds: seconds) { !process.isRunning }
            if process.isRunning { process.terminate(); return nil }
            return process.terminationStatus
        }
        /// Pids of this process's children whose command line contains all of `words`.
        func child(containing words: [String]) -> pid_t? {
            guard let list = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children", encoding: .utf8) else { return nil }
            for p in list.split(separator: " ").compactMap({ pid_t($0) }) {
                let cmd = (try? String(contentsOfFile: "/proc/\(p)/cmdline", encoding: .utf8))?.replacingOccurrences(of: "\0", with: " ") ?? ""
                if words.allSatisfy({ cmd.contains($0) }) { return p }
            }
            return nil
        }
    }

    /// Whether worker `rank` has logged its shards and steps, which it does just before
    /// its first training step.
    static func isTraining(_ rank: Int, _ output: String) -> Bool {
        output.range(of: "worker \(rank): [^\n]*steps per epoch", options: .regularExpression) != nil
    }

    @Test func aLocalClusterOfProcessesTrainsAndWritesMetrics() async throws {
        let metrics = NSTemporaryDirectory() + "heed-metrics-\(getpid()).json"
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "2", "--max-steps", "40", "--metrics-out", metrics])
        #expect(await run.exit(within: 120) == 0, "\(run.output)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metrics))) as? [String: Any]
        let test = report?["test"] as? [String: Any]
        #expect((test?["samples"] as? Int) == 10_000)
        // Measured over 5 runs (async, 40 steps of logistic regression): 0.5605-0.5630. The
        // band is that ± about 5× its spread: below, the run did not learn what 40 steps
        // teach; above, it trained more than it was asked to.
        let auc = (test?["auc"] as? Double) ?? 0
        #expect(auc > 0.55 && auc < 0.575, "test AUC \(auc)")
        #expect(run.output.contains("coordinator: run completed"))

        // The totals are the whole cluster's: both workers ran their 40 steps, and the
        // run's samples and samples/s are the sums of the per-worker figures.
        let workers = try #require(report?["workers"] as? [[String: Any]], "\(report ?? [:])")
        #expect(workers.map { $0["rank"] as? Int } == [0, 1])
        #expect(workers.allSatisfy { ($0["steps"] as? Int) == 40 && ($0["samples"] as? Int ?? 0) > 0 })
        #expect((report?["steps"] as? Int) == 80)
        let samples = workers.compactMap { $0["samples"] as? Int }, rates = workers.compactMap { $0["samplesPerSecond"] as? Double }
        #expect((report?["samples"] as? Int) == samples.reduce(0, +))
        let total = (report?["samplesPerSecond"] as? Double) ?? 0
        #expect(abs(total - rates.reduce(0, +)) < 1e-6 * total && rates.allSatisfy { $0 > 0 && $0 < total }, "\(rates) vs \(total)")
        // The summary prints the totals and one line per worker.
        #expect(run.output.contains("2 workers, 80 steps"), "\(run.output)")
        #expect(run.output.contains("  worker 0: 40 steps") && run.output.contains("  worker 1: 40 steps"), "\(run.output)")
    }

    /// `heed bench cluster`'s training section drives the train command's in-process and
    /// local-cluster runs from code; a short run must complete and print its ratio.
    @Test func benchClusterTrainingSectionRuns() async throws {
        let run = try Run(["bench", "cluster", "--sections", "training", "--storage-rows", "0", "--steps", "20", "--data", data])
        #expect(await run.exit(within: 180) == 0, "\(run.output)")
        #expect(run.output.contains("in-process") && run.output.contains("ratio"), "\(run.output)")
    }

    @Test func aKilledWorkerFailsTheRunAndNamesIt() async throws {
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "1", "--workers", "2", "--epochs", "200", "--batch-size", "32"])
        var victim: pid_t?
        _ = await waitUntil(timeout: .seconds(30)) { victim = run.child(containing: ["worker", "--rank 1"]); return victim != nil }
        let pid = try #require(victim, "worker 1 never started: \(run.output)")
        // Killed once it trains (it logs its shards and steps just before its first step).
        let training = await waitUntil(timeout: .seconds(60)) { Self.isTraining(1, run.output) }
        #expect(training, "worker 1 never started training: \(run.output)")
        kill(pid, SIGKILL)
        let status = await run.exit(within: 60)
        #expect(status != nil && status != 0)
        #expect(run.output.contains("worker 1 exited with status 137"), "\(run.output)")
        // Every child is gone: the launcher stopped the rest.
        #expect(run.child(containing: ["heed"]) == nil)
    }

    @Test func theCoordinatorReportsASilentWorkerAndExitsNonZero() async throws {
        let dir = ClusterHarness.socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/run.toml"
        try """
        [model]
        name = "lr"
        [data]
        path = "\(data)"
        epochs = 200
        batch_size = 32
        [cluster]
        servers = 1
        workers = 2
        heartbeat_ms = 100
        failure_timeout_ms = 1500
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let coordinator = "ipc://\(dir)/coordinator.ipc"
        let roles = try [
            Run(["coordinator", "--listen", coordinator, "--config", config]),
            Run(["server", "--coordinator", coordinator, "--listen", "ipc://\(dir)/server.ipc"]),
            Run(["worker", "--coordinator", coordinator, "--rank", "0"]),
            Run(["worker", "--coordinator", coordinator, "--rank", "1"]),
        ]
        defer { roles.forEach { if $0.process.isRunning { kill($0.process.processIdentifier, SIGKILL) } } }
        // Frozen once it trains (it logs its shards and steps just before its first step).
        let training = await waitUntil(timeout: .seconds(60)) { Self.isTraining(1, roles[3].output) }
        #expect(training, "worker 1 never started training: \(roles[3].output)")
        // Freeze worker 1: it stops heartbeating without exiting, as a hung host would.
        kill(roles[3].process.processIdentifier, SIGSTOP)
        let status = await roles[0].exit(within: 30)
        #expect(status == 3, "\(roles[0].output)")
        #expect(roles[0].output.contains("worker 1 missed its heartbeats"), "\(roles[0].output)")
        // The other roles hear "stop" and exit on their own, non-zero for the worker.
        #expect(await roles[1].exit(within: 20) != nil)
        #expect(await roles[2].exit(within: 20).map { $0 != 0 } == true, "\(roles[2].output)")
        kill(roles[3].process.processIdentifier, SIGKILL)
    }

    /// `heed train --save-model` then `heed eval --model`: the same test metrics, printed
    /// and written; a damaged file makes eval fail naming it, and writes no metrics.
    @Test func evalOfASavedModelReproducesTheTrainingRunsMetrics() async throws {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let model = NSTemporaryDirectory() + "heed-saved-\(tag)", trainMetrics = model + "-train.json", evalMetrics = model + "-eval.json"
        let train = try Run(["train", "--in-process", "--model", "din", "--data", data, "--max-steps", "50", "--save-model", model, "--metrics-out", trainMetrics])
        #expect(await train.exit(within: 120) == 0, "\(train.output)")
        let eval = try Run(["eval", "--model", model, "--metrics-out", evalMetrics])
        #expect(await eval.exit(within: 120) == 0, "\(eval.output)")
        let trained = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trainMetrics))) as? [String: Any]
        let evaluated = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: evalMetrics))) as? [String: Any]
        let test = try #require(trained?["test"] as? [String: Any])
        #expect((evaluated?["auc"] as? Double) == (test["auc"] as? Double))
        #expect((evaluated?["logLoss"] as? Double) == (test["logLoss"] as? Double))
        #expect(eval.output.contains("din after 50 steps"))

        // Flip one byte in the middle of the parameter file.
        let path = model + "/shard-0.bin"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        unlink(evalMetrics)
        let broken = try Run(["eval", "--model", model, "--metrics-out", evalMetrics])
        #expect(await broken.exit(within: 60) == 1)
        #expect(broken.output.contains("shard-0.bin") && broken.output.contains("checksum"), "\(broken.output)")
        #expect(!FileManager.default.fileExists(atPath: evalMetrics))
    }

    /// Ctrl-C at the launcher (SIGINT to it alone, as a terminal sends to the foreground
    /// job's leader) stops the whole local cluster gracefully: exit status 130, every child
    /// gone, and the run's metrics file not written.
    @Test func ctrlCAtTheLauncherShutsTheClusterDown() async throws {
        let metrics = NSTemporaryDirectory() + "heed-ctrlc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        let run = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "2", "--epochs", "200", "--batch-size", "32", "--metrics-out", metrics])
        // Interrupted once both workers train (each logs its steps just before its first step).
        let started = await waitUntil(timeout: .seconds(60)) { Self.isTraining(0, run.output) && Self.isTraining(1, run.output) }
        #expect(started, "the workers never started: \(run.output)")
        let children = ["coordinator", "server", "worker"].compactMap { run.child(containing: ["heed", $0]) }
        #expect(children.count == 3)
        kill(run.process.processIdentifier, SIGINT)
        #expect(await run.exit(within: 60) == 130, "\(run.output)")
        #expect(run.child(containing: ["heed"]) == nil)
        for pid in children { #expect(kill(pid, 0) != 0, "child \(pid) outlived the launcher") }
        #expect(!FileManager.default.fileExists(atPath: metrics))
    }
}
