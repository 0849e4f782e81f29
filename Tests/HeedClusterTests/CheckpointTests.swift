import Foundation
import HeedCheckpoint
import HeedCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Checkpoints end to end with the `heed` binary: real processes over nng on the bundled
/// Amazon Beauty sample.
@Suite(.serialized) struct CheckpointTests {
    typealias Run = LauncherTests.Run
    let data: String
    let scratch: String

    init() throws {
        data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2)
        scratch = NSTemporaryDirectory() + "heed-ckpt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileOps.makeDirectories(scratch)
    }

    /// DIN, small sizes, one epoch of the sample (155 steps of 256), sync with one worker:
    /// the mode where a resumed run must equal an uninterrupted one bit for bit.
    func trainArguments(servers: Int, extra: [String]) -> [String] {
        ["train", "--model", "din", "--data", data, "--mode", "sync", "--workers", "1", "--servers", "\(servers)",
         "--epochs", "1", "--batch-size", "256", "--seed", "3", "--mini-batch-l2", "5", "--attention-weighting", "softmax"] + extra
    }

    /// Every row of a saved model or checkpoint, by table and key, with its step and
    /// values (w, m, v) as bit patterns; and the dense vector with its state.
    static func contents(_ directory: String) throws -> (rows: [UInt8: [UInt64: [UInt32]]], dense: [UInt32], denseState: [UInt32]) {
        let model = try SavedModel.load(directory: directory)
        var rows: [UInt8: [UInt64: [UInt32]]] = [:]
        var dense: [UInt32] = []
        var stateByFile: [[UInt32]] = []
        for file in try model.readFiles(directory: directory) {
            dense += file.dense.map(\.bitPattern)
            stateByFile.append(file.denseState.values.map(\.bitPattern) + [file.denseState.step])
            for t in file.tables {
                for (i, key) in t.keys.enumerated() {
                    rows[t.id, default: [:]][key] = [t.steps[i]] + t.values[i * t.width ..< (i + 1) * t.width].map(\.bitPattern)
                }
            }
        }
        return (rows, dense, stateByFile.flatMap { $0 })
    }

    func metrics(_ path: String) throws -> [String: Any] {
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        return report?["test"] as? [String: Any] ?? [:]
    }

    @Test func aRunInterruptedAndResumedOnAnotherServerCountEqualsAnUninterruptedOne() async throws {
        defer { FileOps.removeTree(scratch) }
        // The reference: one uninterrupted epoch on 2 servers.
        let whole = try Run(trainArguments(servers: 2, extra: ["--save-model", scratch + "/whole", "--metrics-out", scratch + "/whole.json"]))
        #expect(await whole.exit(within: 180) == 0, "\(whole.output)")

        // Interrupted: stops after 70 steps, having checkpointed at 30 and 60 and at the end (70).
        let checkpoints = scratch + "/checkpoints"
        let first = try Run(trainArguments(servers: 2, extra: ["--checkpoint-dir", checkpoints, "--checkpoint-every-steps", "30", "--max-steps", "70"]))
        #expect(await first.exit(within: 180) == 0, "\(first.output)")
        let store = CheckpointStore(directory: checkpoints)
        #expect(store.entries().map(\.step) == [70, 60, 30])

        // Damage the newest: resuming must say so, by file, and take the one before.
        let damaged = store.path(step: 70) + "/shard-1.bin"
        let fd = open(damaged, O_WRONLY)
        #expect(fd >= 0)
        var byte: UInt8 = 0x5A
        #expect(pwrite(fd, &byte, 1, 100) == 1)
        close(fd)

        // Resumed onto 3 servers: positions, rows, Adam state and Dice statistics carry over.
        let resumed = try Run(trainArguments(servers: 3, extra: ["--checkpoint-dir", checkpoints, "--checkpoint-every-steps", "30", "--resume", "latest",
                                                                 "--save-model", scratch + "/resumed", "--metrics-out", scratch + "/resumed.json"]))
        #expect(await resumed.exit(within: 180) == 0, "\(resumed.output)")
        #expect(resumed.output.contains("skipping checkpoint \(store.path(step: 70))"), "\(resumed.output)")
        #expect(resumed.output.contains("shard-1.bin"), "the damaged file is named")
        #expect(resumed.output.contains("resuming at epoch 1, batch 60, step 60"), "\(resumed.output)")

        let a = try Self.contents(scratch + "/whole"), b = try Self.contents(scratch + "/resumed")
        #expect(a.rows.mapValues(\.count) == b.rows.mapValues(\.count))
        #expect(a.rows == b.rows, "rows differ after resuming")
        #expect(a.dense == b.dense, "dense weights differ after resuming")
        let wholeMetrics = try metrics(scratch + "/whole.json"), resumedMetrics = try metrics(scratch + "/resumed.json")
        #expect(wholeMetrics["auc"] as? Double == resumedMetrics["auc"] as? Double)
        #expect(wholeMetrics["logLoss"] as? Double == resumedMetrics["logLoss"] as? Double)
        // The loss curve continues: the epoch's training loss is the uninterrupted one.
        // From "epoch 1 done" on: the line's time stamp differs between the runs.
        let lossLine = { (output: String) in output.split(separator: "\n").first { $0.contains("epoch 1 done") }.map { String($0[$0.range(of: "epoch 1 done")!.lowerBound...]) } }
        #expect(lossLine(whole.output) != nil && lossLine(whole.output) == lossLine(resumed.output))
    }

    @Test func asyncCheckpointsAreConsistentVerifiedAndPruned() async throws {
        defer { FileOps.removeTree(scratch) }
        let checkpoints = scratch + "/checkpoints"
        let run = try Run(["train", "--model", "din", "--data", data, "--servers", "2", "--workers", "2", "--epochs", "1",
                           "--checkpoint-dir", checkpoints, "--checkpoint-every-steps", "40", "--checkpoint-keep", "2",
                           "--metrics-out", scratch + "/run.json"])
        #expect(await run.exit(within: 180) == 0, "\(run.output)")
        let entries = CheckpointStore(directory: checkpoints).entries()
        #expect(entries.count == 2, "keep = 2: \(entries.map(\.path))")
        #expect(run.output.split(separator: "\n").filter { $0.contains("coordinator: checkpoint") && $0.contains("written") }.count >= 3)
        let verify = try Run(["checkpoint", "verify", checkpoints])
        #expect(await verify.exit(within: 60) == 0, "\(verify.output)")
        // The final checkpoint holds exactly the parameters worker 0 evaluated after training.
        let final = try #require(entries.first)
        let manifest = try SavedModel.load(directory: final.path)
        #expect(manifest.kind == .checkpoint && manifest.workers.count == 2 && manifest.workers.map(\.rank) == [0, 1])
        #expect(manifest.step == manifest.workers.reduce(0) { $0 + $1.clock })
        let eval = try Run(["eval", "--model", final.path, "--metrics-out", scratch + "/eval.json"])
        #expect(await eval.exit(within: 120) == 0, "\(eval.output)")
        // `heed eval --metrics-out` writes the evaluation itself, `heed train` a report holding it under "test".
        let evaluation = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch + "/eval.json"))) as? [String: Any]
        let evaluated = evaluation?["auc"] as? Double, trained = try metrics(scratch + "/run.json")["auc"] as? Double
        #expect(evaluated != nil && evaluated == trained, "\(run.output)\n\(eval.output)")
    }

    @Test func checkpointNowAsksARunningClusterAndWaitsForTheCheckpoint() async throws {
        defer { FileOps.removeTree(scratch) }
        let checkpoints = scratch + "/checkpoints"
        let run = try Run(["train", "--model", "din", "--data", data, "--servers", "2", "--workers", "2", "--epochs", "3",
                           "--checkpoint-dir", checkpoints])
        defer { _ = run.wait(seconds: 180) }
        var address: String?
        let deadline = Date().addingTimeInterval(60)
        while address == nil && Date() < deadline && run.process.isRunning {
            // The training must have started, so the checkpoint holds some steps.
            if run.output.contains("worker 0: epoch 1") || run.output.contains("samples/s"),
               let line = run.output.split(separator: "\n").first(where: { $0.contains("coordinator: listening at ") }) {
                address = line.components(separatedBy: "listening at ").last?.components(separatedBy: " ").first
            } else {
                try? await Task.sleep(nanoseconds: 50_000 * 1000)
            }
        }
        let coordinator = try #require(address, "\(run.output)")
        let now = try Run(["checkpoint", "now", "--coordinator", coordinator, "--timeout", "120"])
        #expect(await now.exit(within: 150) == 0, "\(now.output)")
        let path = now.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(path.hasPrefix(checkpoints + "/step-"), "\(now.output)")
        let saved = try CheckpointStore.verify(path)
        #expect(saved.step > 0 && saved.workers.count == 2)
        #expect(await run.exit(within: 180) == 0, "\(run.output)")
    }
}

/// The chaos test: a real-data run of the `lr` model (sync, 2 servers, 2 workers) whose
/// roles are killed with SIGKILL five times completes with the fault-free run's test AUC
/// (sync mode resumes exactly, so the delta is 0; the bound is 0.003), and every
/// checkpoint left on disk verifies.
@Suite(.serialized) struct ChaosTests {
    @Test func aRunSurvivesFiveKillsWithTheFaultFreeAUC() async throws {
        let data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2)
        let run = try LauncherTests.Run(["bench", "chaos", "--kills", "5", "--data", data, "--epochs", "1", "--batch-size", "128",
                                         "--every-steps", "60", "--timeout", "100"])
        #expect(await run.exit(within: 230) == 0, "\(run.output)")
        let out = run.output
        #expect(out.contains("kills survived 5 of 5"), "\(out)")
        let delta = out.split(separator: "\n").first { $0.contains("delta") }.flatMap { $0.components(separatedBy: "delta ").last }.flatMap { Double($0) }
        #expect(delta != nil && delta! <= 0.003, "\(out)")
        let verified = out.split(separator: "\n").first { $0.hasPrefix("checkpoints verified") }?.split(separator: " ").last?.split(separator: "/")
        #expect(verified?.count == 2 && verified?[0] == verified?[1] && (Int(verified?[0] ?? "") ?? 0) > 0, "\(out)")
    }
}
