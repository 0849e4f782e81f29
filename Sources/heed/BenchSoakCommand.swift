import ArgumentParser
import Foundation
import HeedCore
import HeedObserve
#if canImport(Glibc)
import Glibc
#endif

/// `heed bench soak`: many workers against a few servers on loopback for minutes, watching
/// for hangs, throughput and resident memory per role over time.
struct BenchSoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run many workers against 2 servers on loopback for minutes; report hangs, steps/s, resident memory per role over time.",
        discussion: """
            Starts `heed train` as a local cluster (--workers workers, --servers servers, one \
            process each) with a run directory, for --seconds seconds. It times the \
            registration storm (every worker registered, every worker training), samples \
            every role's resident memory from /proc every --sample-every seconds, and reads \
            the workers' step lines from the metrics log. Then it stops the run with SIGTERM \
            and checks that it ends cleanly (status 143) within a minute. A worker whose step \
            count stopped moving for --stall seconds, or a run that does not stop, is a hang: \
            exit status 1. Memory after the warm-up is compared with memory at its end \
            (flat: within 10%). The run directory keeps every role's metrics log for `heed report`.
            """
    )

    @Option(help: "Workers (processes).") var workers = 48
    @Option(help: "Servers.") var servers = 2
    @Option(help: "Seconds to run.") var seconds = 180.0
    @Option(help: "Seconds of warm-up before memory counts as settled.") var warmup = 30.0
    @Option(help: "Seconds between memory samples.") var sampleEvery = 2.0
    @Option(help: "A worker whose step count has not moved for this many seconds has hung.") var stall = 30.0
    @Option(help: "Prepared dataset with at least --workers train shards (default: the bundled Amazon Beauty sample, prepared).")
    var data: String?
    @Option(help: "Model.") var model = "lr"
    @Option(help: "Consistency mode.") var mode = "async"
    @Option(help: "Batch size.") var batchSize = 64
    @Option(help: "Transport: ipc or tcp.") var transport = "ipc"
    @Option(help: "Run directory (default runs/soak-<UTC time>).") var runDir: String?

    func run() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
                                         : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]).standardized.path
        let scratch = NSTemporaryDirectory() + "heed-soak-\(getpid())"
        try FileOps.makeDirectories(scratch)
        defer { FileOps.removeTree(scratch) }
        let prepared = try data ?? prepareSample(binary: binary, into: scratch + "/data")
        let runDirectory = runDir.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
            ?? FileManager.default.currentDirectoryPath + "/runs/soak-" + ObserveOptions.timestamp()
        try FileOps.makeDirectories(runDirectory)
        print("soak: \(workers) workers, \(servers) servers, \(mode) \(model) over \(transport), \(Int(seconds)) s; run directory \(runDirectory)")
        let launch = Date()
        let train = try Supervisee(binary: binary, arguments: [
            "train", "--model", model, "--data", prepared, "--servers", "\(servers)", "--workers", "\(workers)", "--mode", mode,
            "--epochs", "1000000", "--batch-size", "\(batchSize)", "--transport", transport, "--run-dir", runDirectory,
        ], log: runDirectory + "/train.log")
        defer { if train.isRunning { kill(train.process.processIdentifier, SIGKILL) } }

        var registered: Double?, training: Double?
        var samples: [(t: Double, rss: [String: Int])] = []
        var lastSteps: [Int: (step: Int, at: Double)] = [:]
        var hung: [String] = []
        let end = launch.addingTimeInterval(seconds)
        var nextSample = Date()
        while Date() < end && train.isRunning {
            let now = Date().timeIntervalSince(launch)
            let output = train.output
            if registered == nil, Self.count(output, "coordinator: worker [0-9]+ registered") >= workers { registered = now }
            if training == nil, Self.count(output, "worker [0-9]+: [^\n]*steps per epoch") >= workers { training = now }
            if Date() >= nextSample {
                nextSample = Date().addingTimeInterval(sampleEvery)
                var rss: [String: Int] = [:]
                for role in train.roles() { rss[role.role] = ResidentMemory.bytes(ofProcess: role.pid) }
                samples.append((now, rss))
                for rank in 0..<workers {
                    guard let step = Self.lastStep(runDirectory + "/metrics/worker-\(rank).jsonl") else { continue }
                    if lastSteps[rank]?.step != step { lastSteps[rank] = (step, now) }
                }
            }
            usleep(100_000)
        }
        let elapsed = Date().timeIntervalSince(launch)
        guard train.isRunning else {
            throw HeedError(.peerFailed, "the run ended on its own after \(Int(elapsed)) s (status \(train.wait(seconds: 1).map(String.init) ?? "?")): see \(runDirectory)/train.log")
        }
        for rank in 0..<workers {
            guard let last = lastSteps[rank] else { hung.append("worker \(rank) never stepped"); continue }
            if elapsed - last.at > stall { hung.append(String(format: "worker %d stuck at step %d for %.0f s", rank, last.step, elapsed - last.at)) }
        }
        let totalSteps = lastSteps.values.reduce(0) { $0 + $1.step }
        let stopAsked = Date()
        kill(train.process.processIdentifier, SIGTERM)
        let status = train.wait(seconds: 60)
        let stopSeconds = Date().timeIntervalSince(stopAsked)
        if status != 143 { hung.append("the run did not stop cleanly on SIGTERM (status \(status.map(String.init) ?? "none after 60 s"))") }

        print(String(format: "registration storm: %@ workers registered after %@, all training after %@", "\(workers)",
                     registered.map { String(format: "%.1f s", $0) } ?? "never", training.map { String(format: "%.1f s", $0) } ?? "never"))
        let trainingSeconds = elapsed - (training ?? elapsed)
        print(String(format: "throughput: %d steps in all, %.1f steps/s (%.0f samples/s) over the %.0f s after every worker trained",
                     totalSteps, Double(totalSteps) / max(trainingSeconds, 1), Double(totalSteps * batchSize) / max(trainingSeconds, 1), trainingSeconds))
        print(String(format: "stop: SIGTERM -> status %@ in %.1f s", status.map(String.init) ?? "none", stopSeconds))
        report(samples, elapsed: elapsed)
        if !hung.isEmpty {
            hung.forEach { print("HANG: \($0)") }
            throw ExitCode(1)
        }
        print("no hang")
    }

    /// Memory over time per role (coordinator, each server, workers' mean and max) and the
    /// growth after warm-up.
    private func report(_ samples: [(t: Double, rss: [String: Int])], elapsed: Double) {
        let mib = { (b: Int) in String(format: "%.1f", Double(b) / 1_048_576) }
        let columns = ["coordinator"] + (0..<servers).map { "server \($0)" }
        func workerStats(_ rss: [String: Int]) -> (mean: Int, max: Int)? {
            let w = rss.filter { $0.key.hasPrefix("worker") }.map(\.value)
            return w.isEmpty ? nil : (w.reduce(0, +) / w.count, w.max()!)
        }
        print("resident memory (MiB) over time:")
        print(("t (s)" + columns.map { "  \($0)" }.joined() + "  worker mean  worker max"))
        let step = max(1, samples.count / 12)
        for (i, s) in samples.enumerated() where i % step == 0 || i == samples.count - 1 {
            let w = workerStats(s.rss)
            print(String(format: "%5.0f", s.t) + columns.map { "  " + (s.rss[$0].map(mib) ?? "-") }.joined()
                  + "  " + (w.map { mib($0.mean) } ?? "-") + "  " + (w.map { mib($0.max) } ?? "-"))
        }
        guard let settled = samples.first(where: { $0.t >= warmup }), let last = samples.last, last.t > settled.t else {
            print("memory: the run was shorter than the warm-up; no growth figure")
            return
        }
        let after = samples.filter { $0.t >= warmup }
        var lines: [String] = []
        var flat = true
        for name in columns {
            guard let base = settled.rss[name], base > 0 else { continue }
            let peak = after.compactMap { $0.rss[name] }.max() ?? base
            let growth = Double(peak - base) / Double(base)
            flat = flat && growth <= 0.10
            lines.append(String(format: "%@ %+.1f%%", name, 100 * growth))
        }
        if let base = workerStats(settled.rss)?.mean, base > 0 {
            let peak = after.compactMap { workerStats($0.rss)?.mean }.max() ?? base
            let growth = Double(peak - base) / Double(base)
            flat = flat && growth <= 0.10
            lines.append(String(format: "workers (mean) %+.1f%%", 100 * growth))
        }
        print(String(format: "memory growth from %.0f s to the end (peak over settled): ", settled.t) + lines.joined(separator: ", ")
              + (flat ? " - flat within 10%" : " - NOT flat within 10%"))
    }

    /// Matches of `pattern` in `text`.
    static func count(_ text: String, _ pattern: String) -> Int {
        (try? NSRegularExpression(pattern: pattern))?.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text)) ?? 0
    }

    /// The last `step` a worker's metrics log holds.
    static func lastStep(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n").reversed() where line.contains("\"event\":\"step\"") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let step = object["step"] as? Int {
                return step
            }
        }
        return nil
    }

    /// Prepares the bundled Amazon Beauty sample in one train shard per worker.
    private func prepareSample(binary: String, into directory: String) throws -> String {
        let repository = URL(fileURLWithPath: binary).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let prepare = try Supervisee(binary: binary, arguments: ["prepare", "--dataset", "amazon-beauty", "--input", repository + "/data/amazon-beauty-sample",
                                                                 "--out", directory, "--shards", "\(workers)", "--overwrite"], log: directory + ".log")
        guard prepare.wait(seconds: 300) == 0 else { throw HeedError(.io, "preparing the bundled sample failed:\n\(prepare.output)") }
        return directory
    }
}
