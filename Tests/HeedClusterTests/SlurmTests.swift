import Foundation
import HeedCheckpoint
import HeedCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real Slurm cluster (Debian's slurm-wlm and munge) over the namespace hosts:
/// `scripts/slurm-bed.sh`.
enum SlurmBed {
    static let script = ClusterHarness.repository + "/scripts/slurm-bed.sh"

    static var available: Bool {
        MultiHostBed.available && ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/sbin/munged"]
            .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a command with `SLURM_CONF` set for the bed `tag`.
    static func slurm(tag: String, _ arguments: [String], extraPath: String? = nil) throws -> LauncherTests.Run {
        var env = ["SLURM_CONF=/tmp/heed-slurm-\(tag)/slurm.conf"]
        if let extraPath { env.append("PATH=\(extraPath):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")") }
        return try LauncherTests.Run(executable: "/usr/bin/env", env + arguments)
    }
}

@Suite(.serialized, .enabled(if: SlurmBed.available, "skipped: a Slurm bed needs root, network namespaces, slurm-wlm and munge (scripts/install-deps.sh --multi-host)"))
struct SlurmTests {
    let data: String
    let scratch: String
    let tag = "s\(getpid() % 100_000)"

    init() throws {
        data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 4)
        scratch = NSTemporaryDirectory() + "heed-slurm-test-\(getpid())"
        try FileOps.makeDirectories(scratch)
    }

    /// The last "test samples … AUC … GAUC … logloss …" line of a run's output.
    static func testLine(_ output: String) -> String? {
        guard let line = output.split(separator: "\n").last(where: { $0.contains("test samples") }),
              let start = line.range(of: "test samples") else { return nil }
        return String(line[start.lowerBound...])
    }

    /// The run config the multi-host recipe tests share: DIN on the Beauty sample, 2
    /// servers and 2 workers.
    static func writeRunConfig(in directory: String, data: String, mode: String, seed: Int = 5, maxSteps: Int = 60,
                               name: String = "run", extra: String = "") throws -> String {
        let path = "\(directory)/\(name).toml"
        try """
        seed = \(seed)
        [model]
        name = "din"
        embedding_dim = 8
        hidden = [32, 16]
        attention_hidden = [16, 8]
        [data]
        path = "\(data)"
        batch_size = 256
        max_steps = \(maxSteps)
        epochs = 50
        [cluster]
        servers = 2
        workers = 2
        mode = "\(mode)"
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The test AUC in a "test samples … AUC x …" line.
    static func auc(_ line: String?) -> Double? {
        guard let line, let r = line.range(of: "AUC ") else { return nil }
        return Double(line[r.upperBound...].prefix { $0 == "." || $0.isNumber })
    }

    /// Submits the recipe on 5 nodes (2 servers) and returns the job id.
    func submit(_ config: String, _ coordinatorFlags: [String] = []) async throws -> Int {
        let binDir = URL(fileURLWithPath: LauncherTests.binary).deletingLastPathComponent().path
        let submit = try SlurmBed.slurm(tag: tag, ["sbatch", "--parsable", "--nodes=5", "--output=\(scratch)/job-%j.out", "--chdir=\(scratch)",
                                                   "--export=ALL,SERVERS=2", ClusterHarness.repository + "/cluster/slurm/heed.sbatch", config]
                                                  + coordinatorFlags, extraPath: binDir)
        #expect(await submit.exit(within: 60) == 0, "\(submit.output)")
        return try #require(submit.output.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, "\(submit.output)")
    }

    /// Waits until `job` has left the queue; returns whether it did within `seconds`.
    func waitForJob(_ job: Int, seconds: Double = 180) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let queue = try SlurmBed.slurm(tag: tag, ["squeue", "-h", "-j", "\(job)"])
            _ = await queue.exit(within: 30)
            if !queue.output.contains("\(job)") { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    func jobOutput(_ job: Int) -> String {
        (try? String(contentsOfFile: "\(scratch)/job-\(job).out", encoding: .utf8)) ?? ""
    }

    func bringUp() async throws {
        let up = try LauncherTests.Run(executable: SlurmBed.script, ["up", tag, "5"])
        #expect(await up.exit(within: 120) == 0, "\(up.output)")
        #expect(up.output.contains("5 nodes up in"), "\(up.output)")
    }

    func tearDown() {
        _ = try? LauncherTests.Run(executable: SlurmBed.script, ["down", tag]).wait(seconds: 60)
        FileOps.removeTree(scratch)
    }

    @Test func sbatchOnFiveNodesGivesTheLocalClustersMetricsInSyncMode() async throws {
        defer { tearDown() }
        try await bringUp()
        let config = try Self.writeRunConfig(in: scratch, data: data, mode: "sync")
        let job = try await submit(config)
        #expect(try await waitForJob(job), "job \(job) still queued or running after 180 s")
        let output = jobOutput(job)
        #expect(output.contains("coordinator: run completed"), "\(output)")
        #expect(output.contains("server 1 registered (tcp://10.213."), "roles dial the nodes' own addresses: \(output)")

        let local = try LauncherTests.Run(["train", "--config", config])
        #expect(await local.exit(within: 180) == 0, "\(local.output)")
        let slurmLine = Self.testLine(output), localLine = Self.testLine(local.output)
        #expect(slurmLine != nil && slurmLine == localLine, "Slurm: \(slurmLine ?? "none"), local: \(localLine ?? "none")")
    }

    /// Asynchronous runs differ from run to run (the order pushes land in), so the Slurm
    /// run is compared with the spread of local runs over seeds: its test AUC must lie
    /// within the seeds' range widened by that range on each side, and by at least 0.02.
    /// The floor is the measured spread of these 120-step async runs (docs/RESULTS.md:
    /// local seeds 0.6232-0.6459, Slurm 0.6266-0.6389); three seeds can land within 0.006
    /// of each other, and a margin that narrow failed a clean CI run (Slurm 0.6267 against
    /// local 0.6405-0.6461) with nothing wrong. A broken run (no or lost updates) stays far
    /// outside: untrained, this model scores about 0.5.
    @Test func sbatchInAsyncModeCompletesWithinTheLocalSeedSpread() async throws {
        defer { tearDown() }
        try await bringUp()
        let config = try Self.writeRunConfig(in: scratch, data: data, mode: "async", maxSteps: 120)
        let job = try await submit(config)
        #expect(try await waitForJob(job), "job \(job) still queued or running after 180 s")
        let output = jobOutput(job)
        #expect(output.contains("coordinator: run completed"), "\(output)")
        let slurm = try #require(Self.auc(Self.testLine(output)), "no test AUC in \(output)")

        var local: [Double] = []
        for seed in [5, 6, 7] {
            let seeded = try Self.writeRunConfig(in: scratch, data: data, mode: "async", seed: seed, maxSteps: 120, name: "seed\(seed)")
            let run = try LauncherTests.Run(["train", "--config", seeded])
            #expect(await run.exit(within: 180) == 0, "\(run.output)")
            local.append(try #require(Self.auc(Self.testLine(run.output)), "no test AUC in \(run.output)"))
        }
        let low = local.min()!, high = local.max()!
        let margin = max(high - low, 0.02)
        print("async test AUC: Slurm \(slurm); local seeds 5, 6, 7: \(local)")
        #expect(slurm >= low - margin && slurm <= high + margin, "Slurm \(slurm) outside local seeds \(local) ± \(margin)")
    }

    /// A job cancelled after its first checkpoint and submitted again continues from the
    /// newest checkpoint (the recipe passes `--resume auto`), and in sync mode ends with
    /// exactly the metrics of an uninterrupted local run.
    @Test func aCancelledJobSubmittedAgainResumesFromTheNewestCheckpoint() async throws {
        defer { tearDown() }
        try await bringUp()
        let checkpoints = scratch + "/checkpoints"
        let config = try Self.writeRunConfig(in: scratch, data: data, mode: "sync", maxSteps: 600,
                                             extra: "[checkpoint]\ndir = \"\(checkpoints)\"\nevery_steps = 40\nkeep = 3")
        let first = try await submit(config)
        // Cancel as soon as a checkpoint is complete (its manifest is written last).
        let checkpointed = await waitUntil(timeout: .seconds(180), interval: .milliseconds(50)) {
            CheckpointStore(directory: checkpoints).entries().contains { (try? $0.manifest.get()) != nil }
        }
        #expect(checkpointed, "no checkpoint appeared: \(jobOutput(first))")
        let cancel = try SlurmBed.slurm(tag: tag, ["scancel", "\(first)"])
        #expect(await cancel.exit(within: 30) == 0, "\(cancel.output)")
        #expect(try await waitForJob(first, seconds: 60), "cancelled job \(first) did not leave the queue")
        #expect(!jobOutput(first).contains("coordinator: run completed"), "the first job finished before it was cancelled: \(jobOutput(first))")
        #expect(jobOutput(first).contains("starting fresh"), "\(jobOutput(first))")

        let second = try await submit(config)
        #expect(try await waitForJob(second, seconds: 240), "job \(second) still queued or running")
        let output = jobOutput(second)
        #expect(output.contains("resuming from \(checkpoints)/step-"), "\(output)")
        #expect(output.contains("coordinator: run completed"), "\(output)")

        let uninterrupted = try Self.writeRunConfig(in: scratch, data: data, mode: "sync", maxSteps: 600, name: "uninterrupted")
        let local = try LauncherTests.Run(["train", "--config", uninterrupted])
        #expect(await local.exit(within: 240) == 0, "\(local.output)")
        let slurmLine = Self.testLine(output), localLine = Self.testLine(local.output)
        #expect(slurmLine != nil && slurmLine == localLine, "resumed Slurm: \(slurmLine ?? "none"), uninterrupted local: \(localLine ?? "none")")
    }
}
