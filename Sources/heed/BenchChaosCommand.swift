import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
#if canImport(Glibc)
import Glibc
#endif

/// `heed bench chaos`: a supervised local cluster whose roles are killed with SIGKILL,
/// against the same run without faults.
struct BenchChaosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Kill random roles of a checkpointing local cluster; report kills survived, AUC delta, checkpoints verified, time lost.",
        discussion: """
            Runs `heed train` once without faults, then again while killing a random role \
            (coordinator, server or worker) with SIGKILL --kills times. Before each kill it waits \
            until the run has written a checkpoint newer than any seen, so every restart makes \
            progress. The launcher restarts the cluster from the newest valid checkpoint each time. \
            Prints the kills survived, both test AUCs and their difference, how many checkpoints on \
            disk verify, and the wall time lost to recovery (chaos run minus fault-free run).
            """
    )

    @Option(help: "Kills to inflict.") var kills = 20
    @Option(help: "Prepared dataset (default: the bundled Amazon Beauty sample, prepared into a temporary directory).") var data: String?
    @Option(help: "Model.") var model = "lr"
    @Option(help: "Consistency mode.") var mode = "sync"
    @Option(help: "Servers.") var servers = 2
    @Option(help: "Workers.") var workers = 2
    @Option(help: "Epochs.") var epochs = 4
    @Option(help: "Batch size.") var batchSize = 64
    @Option(help: "Checkpoint every this many global steps.") var everySteps = 40
    @Option(help: "Seed (of the run and of the choice of victims).") var seed: UInt64 = 1
    @Option(help: "Seconds to wait for each run.") var timeout = 600.0
    @Option(help: "After a new checkpoint appears, wait a random time up to this many seconds before killing.") var delayMax = 0.5

    func run() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
                                         : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]).standardized.path
        let scratch = NSTemporaryDirectory() + "heed-chaos-\(getpid())"
        try FileOps.makeDirectories(scratch)
        defer { FileOps.removeTree(scratch) }
        let prepared = try data ?? prepareSample(binary: binary, into: scratch + "/data")
        func arguments(_ name: String) -> [String] {
            ["train", "--model", model, "--data", prepared, "--mode", mode, "--servers", "\(servers)", "--workers", "\(workers)",
             "--epochs", "\(epochs)", "--batch-size", "\(batchSize)", "--seed", "\(seed)",
             "--checkpoint-dir", scratch + "/\(name)-checkpoints", "--checkpoint-every-steps", "\(everySteps)", "--checkpoint-keep", "3",
             "--metrics-out", scratch + "/\(name).json", "--max-restarts", "\(kills + 1)"]
        }

        print("fault-free run ...")
        let clean = try Supervisee(binary: binary, arguments: arguments("clean"), log: scratch + "/clean.log")
        guard clean.wait(seconds: timeout) == 0 else { throw HeedError(.peerFailed, "the fault-free run failed:\n\(clean.output)") }
        let cleanSeconds = clean.seconds

        print("chaos run: \(kills) kills ...")
        let chaos = try Supervisee(binary: binary, arguments: arguments("chaos"), log: scratch + "/chaos.log")
        let store = CheckpointStore(directory: scratch + "/chaos-checkpoints")
        var rng = SeededGenerator(seed: seed)
        var done = 0, newestSeen = -1
        let deadline = Date().addingTimeInterval(timeout)
        while done < kills && chaos.isRunning && Date() < deadline {
            // Progress first: a checkpoint newer than any seen, so the run moves forward.
            let newest = store.entries().first { if case .success = $0.manifest { return true } else { return false } }?.step ?? -1
            let roles = chaos.roles()
            guard newest > newestSeen, !roles.isEmpty else { usleep(20_000); continue }
            usleep(UInt32(Double(rng.next() % 1000) / 1000 * delayMax * 1e6))
            let victim = roles[Int(rng.next() % UInt64(roles.count))]
            guard kill(victim.pid, SIGKILL) == 0 else { continue }
            done += 1
            newestSeen = newest
            print("kill \(done): \(victim.role) (pid \(victim.pid)) after checkpoint step \(newest)")
        }
        let status = chaos.wait(seconds: max(1, deadline.timeIntervalSinceNow))
        guard status == 0 else { throw HeedError(.peerFailed, "the chaos run failed after \(done) kills (status \(status.map(String.init) ?? "timeout")):\n\(chaos.output)") }

        let entries = store.entries()
        var verified = 0
        for e in entries where (try? CheckpointStore.verify(e.path)) != nil { verified += 1 }
        let aucClean = try Self.auc(scratch + "/clean.json"), aucChaos = try Self.auc(scratch + "/chaos.json")
        let restarts = chaos.output.split(separator: "\n").filter { $0.contains("restarting the cluster") }.count
        print(String(format: "kills survived %d of %d (restarts %d)", done, kills, restarts))
        print(String(format: "test AUC fault-free %.6f  chaos %.6f  delta %.6f", aucClean, aucChaos, abs(aucChaos - aucClean)))
        print("checkpoints verified \(verified)/\(entries.count)")
        print(String(format: "wall time fault-free %.1f s  chaos %.1f s  lost to recovery %.1f s (%.2f s per kill)",
                     cleanSeconds, chaos.seconds, chaos.seconds - cleanSeconds, done > 0 ? (chaos.seconds - cleanSeconds) / Double(done) : 0))
    }

    /// Prepares the bundled Amazon Beauty sample (what the main job trains on).
    private func prepareSample(binary: String, into directory: String) throws -> String {
        let repository = URL(fileURLWithPath: binary).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let prepare = try Supervisee(binary: binary, arguments: ["prepare", "--dataset", "amazon-beauty", "--input", repository + "/data/amazon-beauty-sample",
                                                                 "--out", directory, "--shards", "4", "--overwrite"], log: directory + ".log")
        guard prepare.wait(seconds: 300) == 0 else { throw HeedError(.io, "preparing the bundled sample failed:\n\(prepare.output)") }
        return directory
    }

    static func auc(_ metrics: String) throws -> Double {
        guard let data = FileManager.default.contents(atPath: metrics),
              let report = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let auc = (report["test"] as? [String: Any])?["auc"] as? Double else {
            throw HeedError(.corrupt, "\(metrics): no test AUC")
        }
        return auc
    }
}

/// A `heed` process whose output goes to a log file and whose role children can be listed.
final class Supervisee {
    let process = Process()
    let log: String
    private let started = Date()
    private var ended: Date?

    init(binary: String, arguments: [String], log: String) throws {
        self.log = log
        FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    /// Seconds from start to exit (or to now).
    var seconds: Double { (ended ?? Date()).timeIntervalSince(started) }

    /// Waits up to `seconds`; returns the exit status, or nil (and kills it) on timeout.
    func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate(); return nil }
        ended = ended ?? Date()
        return process.terminationStatus
    }

    /// The role processes (`heed coordinator|server|worker`) the launcher runs now.
    func roles() -> [(pid: pid_t, role: String)] {
        let me = process.processIdentifier
        guard let list = try? String(contentsOfFile: "/proc/\(me)/task/\(me)/children", encoding: .utf8) else { return [] }
        return list.split(separator: " ").compactMap { pid_t($0) }.compactMap { pid in
            let words = ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").split(separator: "\0")
            guard words.count >= 2, ["coordinator", "server", "worker"].contains(words[1]) else { return nil }
            let rank = words.firstIndex(of: "--rank").map { words.count > $0 + 1 ? " " + words[$0 + 1] : "" } ?? ""
            return (pid, String(words[1]) + rank)
        }
    }
}
