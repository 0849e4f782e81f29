import Foundation
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

    @Test func sbatchOnFiveNodesGivesTheLocalClustersMetricsInSyncMode() async throws {
        defer { FileOps.removeTree(scratch) }
        let up = try LauncherTests.Run(executable: SlurmBed.script, ["up", tag, "5"])
        defer { _ = try? LauncherTests.Run(executable: SlurmBed.script, ["down", tag]).wait(seconds: 60) }
        #expect(await up.exit(within: 120) == 0, "\(up.output)")
        #expect(up.output.contains("5 nodes up in"), "\(up.output)")

        let config = scratch + "/run.toml"
        try """
        seed = 5
        [model]
        name = "din"
        embedding_dim = 8
        hidden = [32, 16]
        attention_hidden = [16, 8]
        [data]
        path = "\(data)"
        batch_size = 256
        max_steps = 60
        [cluster]
        servers = 2
        workers = 2
        mode = "sync"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let binDir = URL(fileURLWithPath: LauncherTests.binary).deletingLastPathComponent().path
        let submit = try SlurmBed.slurm(tag: tag, ["sbatch", "--parsable", "--nodes=5", "--output=\(scratch)/job-%j.out", "--chdir=\(scratch)",
                                                   "--export=ALL,SERVERS=2", ClusterHarness.repository + "/cluster/slurm/heed.sbatch", config],
                                        extraPath: binDir)
        #expect(await submit.exit(within: 60) == 0, "\(submit.output)")
        let job = try #require(submit.output.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, "\(submit.output)")
        let deadline = Date().addingTimeInterval(180)
        var finished = false
        while !finished && Date() < deadline {
            let queue = try SlurmBed.slurm(tag: tag, ["squeue", "-h", "-j", "\(job)"])
            _ = await queue.exit(within: 30)
            finished = !queue.output.contains("\(job)")
            if !finished { try? await Task.sleep(nanoseconds: 200_000 * 1000) }
        }
        #expect(finished, "job \(job) still queued or running after 180 s")
        let output = (try? String(contentsOfFile: "\(scratch)/job-\(job).out", encoding: .utf8)) ?? ""
        #expect(output.contains("coordinator: run completed"), "\(output)")
        #expect(output.contains("server 1 registered (tcp://10.213."), "roles dial the nodes' own addresses: \(output)")

        let local = try LauncherTests.Run(["train", "--config", config])
        #expect(await local.exit(within: 180) == 0, "\(local.output)")
        let slurmLine = Self.testLine(output), localLine = Self.testLine(local.output)
        #expect(slurmLine != nil && slurmLine == localLine, "Slurm: \(slurmLine ?? "none"), local: \(localLine ?? "none")")
    }
}
