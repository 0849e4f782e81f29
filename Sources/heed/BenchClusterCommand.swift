import ArgumentParser
import Foundation
import HeedBench
import HeedCore
import HeedData
import HeedOptim
import HeedServer
import HeedTransport
import HeedWorker

/// `heed bench cluster`: the cluster's throughput against its limits, measured in one run:
/// Heed's transport pull/push goodput and the parameter server's (through a real table)
/// against raw nng at the same message sizes, training samples/s of 1 server + 1 worker against the in-process run, and the
/// storage figures of `heed bench storage` (sparse Adam vs memory bandwidth, bytes/row).
struct BenchClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Pull/push goodput vs raw nng; samples/s of 1 server + 1 worker vs in-process; sparse Adam vs memory bandwidth.",
        discussion: "Targets: goodput/raw >= 0.80, cluster/in-process samples/s >= 0.85, sparse Adam/triad >= 0.60, resident/raw bytes per row <= 1.3.")

    @Option(help: "Seconds per throughput measurement.") var seconds = 2.0
    @Option(help: "Keys per pull/push request (dim 64 rows): 256 ≈ 64 KiB, 4096 ≈ 1 MiB.") var keys = [256, 1024, 4096]
    @Option(help: "Requests in flight.") var inFlight = 4
    @Flag(help: "Server section: acknowledge pushes after applying them (sync/bounded modes) instead of on receipt (async, the default mode).")
    var ackAfterApplying = false
    @Option(help: "Back-to-back raw/Heed pairs per measurement; the pair with the median ratio is reported.") var rounds = 5
    @Option(help: "Operations to measure in the transport and server sections, comma-separated: pull, push.") var ops = "pull,push"
    @Option(help: "Model for the training comparison.") var model = "din"
    @Option(help: "Prepared dataset for the training comparison (default: the bundled Amazon Beauty sample, prepared on the fly).") var data: String?
    @Option(help: "Training steps per run in the comparison.") var steps = 300
    @Option(help: "Rows for the storage measurement (0 skips it).") var storageRows = 10_000_000
    @Option(help: "Threads pushing in the storage measurement (default: every core, as a server applies pushes on all its transport threads).")
    var storageThreads: Int?
    @Option(help: "Sections to run, comma-separated: transport, server, training (storage follows --storage-rows).")
    var sections = "transport,server,training"

    func validate() throws {
        let unknown = sections.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !["transport", "server", "training"].contains($0) }
        guard unknown.isEmpty else { throw ValidationError("unknown --sections \(unknown.joined(separator: ", ")); use transport, server, training") }
        let unknownOps = ops.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { RowTransfer(rawValue: $0) == nil }
        guard unknownOps.isEmpty else { throw ValidationError("unknown --ops \(unknownOps.joined(separator: ", ")); use pull, push") }
    }

    func run() throws {
        setBLASThreadsForBench()
        let seconds = seconds, keys = keys, inFlight = inFlight, rounds = rounds
        let acknowledgement: ParameterServer.PushAcknowledgement = ackAfterApplying ? .afterApplying : .onReceipt
        let operations = ops.split(separator: ",").compactMap { RowTransfer(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        let wanted = Set(sections.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        try runRole("bench cluster") {
            let dir = NSTemporaryDirectory() + "heed-bench-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            if wanted.contains("transport") { try await Self.transportSection(operations, keys: keys, inFlight: inFlight, seconds: seconds, rounds: rounds, directory: dir) }
            if wanted.contains("server") { try await Self.serverSection(operations, keys: keys, inFlight: inFlight, seconds: seconds, rounds: rounds,
                                                                          acknowledgement: acknowledgement, directory: dir) }
        }
        if wanted.contains("training") { try compareTraining() }
        if storageRows > 0 {
            let threads = storageThreads ?? ProcessInfo.processInfo.activeProcessorCount
            print("\n== storage (heed bench storage --rows \(storageRows) --threads \(threads))")
            let storage = try BenchStorageCommand.parse(["--rows", "\(storageRows)", "--updates", "\(min(storageRows, 10_000_000))",
                                                         "--threads", "\(threads)"])
            try storage.run()
        }
    }

    /// Heed pull- and push-rows goodput against raw nng REQ/REP at the same message sizes.
    private static func transportSection(_ operations: [RowTransfer], keys: [Int], inFlight: Int, seconds: Double, rounds: Int,
                                         directory dir: String) async throws {
        print("== transport: Heed pull/push goodput vs raw nng REQ/REP at the same sizes (ipc, \(inFlight) in flight, dim 64)")
        print("op     keys   rows KiB   raw MB/s   heed MB/s   rows/s       ratio   rounds")
        for (i, k) in keys.enumerated() {
            for op in operations {
                let c = try await TransportBenchmark.compare(op, keysPerRequest: k, dim: 64, inFlight: inFlight, duration: .seconds(seconds),
                                                             rounds: rounds) { round, isRaw in
                    "ipc://\(dir)/\(isRaw ? "raw" : "heed")-\(op.rawValue)-\(i)-\(round).ipc"
                }
                print(String(format: "%-6@ %-6d %8d %10.0f %11.0f %12.0f %7.2f   ", op.rawValue, k, k * 64 * 4 / 1024,
                             c.rawBytesPerSecond / 1e6, c.goodput.valueBytesPerSecond / 1e6, c.goodput.rowsPerSecond, c.ratio)
                      + c.roundRatios.map { String(format: "%.2f", $0) }.joined(separator: " "))
            }
        }
    }

    /// Pulls and pushes through a real `ParameterServer` against raw nng at the same sizes.
    private static func serverSection(_ operations: [RowTransfer], keys: [Int], inFlight: Int, seconds: Double, rounds: Int,
                                      acknowledgement: ParameterServer.PushAcknowledgement, directory dir: String) async throws {
        print("\n== parameter server: pulls and pushes through a real table with lazy Adam vs raw nng at the same sizes (pushes acknowledged "
              + (acknowledgement == .onReceipt ? "on receipt, as in async mode)" : "after applying, as in sync/bounded modes)"))
        print("op     keys   raw MB/s   server MB/s   rows/s       ratio   table µs/msg   bound   rounds")
        for (i, k) in keys.enumerated() {
            for op in operations {
                let r = try await ServerGoodput.measure(op, keys: k, dim: 64, inFlight: inFlight, seconds: seconds, directory: dir, tag: "\(i)",
                                                       rounds: rounds, acknowledgement: acknowledgement)
                print(String(format: "%-6@ %-6d %10.0f %13.0f %12.0f %7.2f %14.0f %7.2f", op.rawValue, k, r.rawBytesPerSecond / 1e6,
                             r.valueBytesPerSecond / 1e6, r.rowsPerSecond, r.ratio, r.tableSecondsPerMessage * 1e6, r.tableBound)
                      + "   " + r.roundRatios.map { String(format: "%.2f", $0) }.joined(separator: " "))
            }
        }
        print("bound: the ratio left if the server added only the table's own time (run alone, one thread) to raw nng's CPU per message")
    }

    /// Samples/s of 1 server + 1 worker (separate processes over ipc) vs the in-process run.
    private func compareTraining() throws {
        let path: String
        if let data { path = data } else {
            path = NSTemporaryDirectory() + "heed-bench-beauty"
            var options = PrepareOptions(dataset: .amazonBeauty, input: bundledDataDirectory() + "/amazon-beauty-sample", output: path)
            options.shards = 1
            options.overwrite = true
            _ = try Preparer.prepare(options)
        }
        var config = RunConfig()
        config.model.name = model
        config.data.path = path
        config.data.maxSteps = steps
        config.data.epochs = 100
        config.cluster.servers = 1
        config.cluster.workers = 1
        print("\n== training: \(model), batch \(config.data.batchSize), \(steps) steps, 1 server + 1 worker (async, processes over ipc) vs in-process")
        let train = TrainCommand()
        let local = try train.trainInProcess(config)
        let cluster = try train.trainLocalCluster(config)
        print(String(format: "in-process %.0f samples/s   cluster %.0f samples/s   ratio %.2f",
                     local.samplesPerSecond, cluster.samplesPerSecond, cluster.samplesPerSecond / local.samplesPerSecond))
    }
}

/// Where the bundled samples are: `data/` beside the package (found from the binary's
/// location `.build/<config>/heed`, or the working directory).
func bundledDataDirectory() -> String {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).standardized
    let candidates = [binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/data",
                      binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/data",
                      FileManager.default.currentDirectoryPath + "/data"]
    return candidates.first { FileManager.default.fileExists(atPath: $0 + "/amazon-beauty-sample") } ?? candidates.last!
}

/// One OpenBLAS thread, as in training (PLATFORM.md).
func setBLASThreadsForBench() {
    setenv("OPENBLAS_NUM_THREADS", "1", 1)
}

/// Pull or push goodput through a `ParameterServer` holding a real embedding table.
enum ServerGoodput {

    struct Result {
        var rowsPerSecond: Double
        var valueBytesPerSecond: Double
        var rawBytesPerSecond: Double
        /// Raw nng messages per second.
        var rawMessagesPerSecond: Double
        /// The table's own time per message (pull or Adam push), on one thread, no transport.
        var tableSecondsPerMessage = 0.0
        /// Every round's ratio, in the order run.
        var roundRatios: [Double] = []
        var ratio: Double { valueBytesPerSecond / rawBytesPerSecond }
        /// The ratio if the server cost raw nng's CPU plus the table's and nothing else, with
        /// raw nng keeping every core busy: raw core-seconds per message ÷ (those + table's).
        var tableBound: Double {
            let rawCore = Double(ProcessInfo.processInfo.activeProcessorCount) / rawMessagesPerSecond
            return rawCore / (rawCore + tableSecondsPerMessage)
        }
    }

    /// `rounds` pairs of raw nng and the server, back to back so load from other
    /// processes hits both alike; returns the pair with the median ratio.
    static func measure(_ op: RowTransfer, keys: Int, dim: Int, inFlight: Int, seconds: Double, directory: String, tag: String,
                        rounds: Int, acknowledgement: ParameterServer.PushAcknowledgement = .onReceipt) async throws -> Result {
        let config = EmbeddingTableConfig(name: "bench", dim: dim, optimizer: .adam(AdamConfig(lr: 1e-3)))
        // Rank 0 of 2 servers, so every request passes the key-ownership check as it does
        // in a cluster; the keys below are all rank 0's.
        let shard = try ParameterShard(rank: 0, serverCount: 2, tableConfigs: [1: config], initialDense: [], denseOptimizer: .adam(AdamConfig()))
        let server = try ParameterServer(transport: NNGTransport(), address: "ipc://\(directory)/ps-\(op.rawValue)-\(tag).ipc",
                                         options: ServerOptions(concurrency: inFlight), shard: shard, pushAcknowledgement: acknowledgement)
        defer { server.close() }
        let client = try NNGTransport().connect(to: server.address, options: ClientOptions(maxInFlight: inFlight, retry: .none))
        defer { client.close() }
        // Distinct key sets per request, all pre-created, so the timed part is steady state.
        var owned: [UInt64] = []
        owned.reserveCapacity(16 * keys)
        var i: UInt64 = 0
        while owned.count < 16 * keys {
            let key = i &* 0x9E37_79B9_7F4A_7C15 >> 8
            if shard.plan.server(of: key) == shard.rank { owned.append(key) }
            i += 1
        }
        let sets = (0..<16).map { s in owned[s * keys ..< (s + 1) * keys].sorted() }
        for set in sets { _ = try await client.pullRows(PullRows(tableID: 1, keys: set), timeout: .seconds(30)) }
        let grads = [Float](repeating: 0.001, count: keys * dim)
        // Raw nng moving the same bytes: the row block travels in the reply (pull) or the request (push).
        let sizes = TransportBenchmark.sizes(keys: keys, dim: dim)
        var results: [Result] = []
        for round in 0..<rounds {
            let raw = try await TransportBenchmark.rawRequestReply(
                address: "ipc://\(directory)/raw-\(op.rawValue)-\(tag)-\(round).ipc",
                requestSize: op == .pull ? sizes.request : sizes.reply, replySize: op == .pull ? sizes.reply : 64,
                inFlight: inFlight, duration: .seconds(seconds))
            let rows = try await rowsPerSecond(op, client: client, sets: sets, grads: grads, dim: dim, inFlight: inFlight, seconds: seconds)
            results.append(Result(rowsPerSecond: rows, valueBytesPerSecond: rows * Double(dim * 4),
                                  rawBytesPerSecond: raw.messagesPerSecond * Double(sizes.reply), rawMessagesPerSecond: raw.messagesPerSecond))
        }
        var median = results.sorted { $0.ratio < $1.ratio }[results.count / 2]
        median.roundRatios = results.map(\.ratio)
        // Pushes acknowledged on receipt may still be applying; let them finish first.
        try server.waitForAcknowledgedPushes()
        median.tableSecondsPerMessage = try tableSecondsPerMessage(op, shard: shard, sets: sets, grads: grads, dim: dim)
        return median
    }

    /// The table's time per request for the same key sets, called directly on this thread
    /// (pulls into a reused buffer, as the server writes into the reply).
    private static func tableSecondsPerMessage(_ op: RowTransfer, shard: ParameterShard, sets: [[UInt64]], grads: [Float], dim: Int) throws -> Double {
        var out = [Float](repeating: 0, count: sets[0].count * dim)
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        while n < 2 * sets.count || start.duration(to: clock.now) < .milliseconds(300) {
            let set = sets[n % sets.count]
            switch op {
            case .pull:
                try set.withUnsafeBufferPointer { k in try out.withUnsafeMutableBufferPointer { try shard.pullRows(table: 1, keys: k, into: $0) } }
            case .push:
                try shard.pushRows(table: 1, keys: set, grads: grads, clock: 0)
            }
            n += 1
        }
        let elapsed = start.duration(to: clock.now)
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) / Double(n)
    }

    /// Rows/s of `inFlight` request loops over `seconds`, after a 300 ms warm-up (as the
    /// raw measurement has). The loops read pulled rows in place and prefer the client's
    /// completion executor, as the worker's fetch tasks do.
    private static func rowsPerSecond(_ op: RowTransfer, client: any RequestClient, sets: [[UInt64]], grads: [Float], dim: Int,
                                      inFlight: Int, seconds: Double) async throws -> Double {
        let done = LockedBox(0)
        let running = LockedBox(true)
        let keys = sets[0].count
        let loops = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<inFlight {
                    let loop: @Sendable () async throws -> Void = {
                        var i = lane
                        defer { running.set(false) }
                        while running.get() {
                            let set = sets[i % sets.count]
                            switch op {
                            case .pull:
                                let n = try await client.withPulledRows(PullRows(tableID: 1, keys: set), timeout: .seconds(30)) { $0.rowCount }
                                guard n == keys else { throw HeedError(.corrupt, "pulled \(n) rows for \(keys) keys") }
                            case .push:
                                _ = try await client.pushRows(PushRows(tableID: 1, dim: UInt32(dim), keys: set, grads: grads), timeout: .seconds(30))
                            }
                            done.update { $0 += 1 }
                            i += inFlight
                        }
                    }
                    if #available(macOS 15.0, *) {
                        group.addTask(executorPreference: client.completionExecutor, operation: loop)
                    } else {
                        group.addTask(operation: loop)
                    }
                }
                try await group.waitForAll()
            }
        }
        let clock = ContinuousClock()
        try await Task.sleep(for: .milliseconds(300))
        let c0 = done.get(), t0 = clock.now
        try await Task.sleep(for: .seconds(seconds))
        let c1 = done.get(), t1 = clock.now
        running.set(false)
        try await loops.value
        let elapsed = t0.duration(to: t1)
        return Double((c1 - c0) * keys) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}
