import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCoordinator
import HeedModels
import HeedCore
import HeedServer
import HeedTransport
import HeedWorker

/// Reads a cluster secret file (raw bytes, surrounding whitespace trimmed).
func readSecret(_ path: String?) throws -> [UInt8]? {
    guard let path else { return nil }
    guard let data = FileManager.default.contents(atPath: path) else { throw HeedError(.io, "cannot read secret file \(path)") }
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard text.utf8.count >= 16 else { throw HeedError(.config, "secret file \(path) holds fewer than 16 bytes") }
    return Array(text.utf8)
}

/// Runs an async role body from a synchronous command and maps errors to exit codes.
func runRole(_ name: String, _ body: @escaping @Sendable () async throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let failure = LockedBox<Error?>(nil)
    Task.detached {
        do { try await body() } catch { failure.set(error) }
        done.signal()
    }
    done.wait()
    if let error = failure.get() {
        printError("\(name): \(error)")
        throw ExitCode(1)
    }
}

/// Logs a line to standard error with a timestamp.
@Sendable func logLine(_ line: String) {
    let t = Date()
    let formatter = DateFormatter()
    formatter.dateFormat = "HH:mm:ss"
    printError("[\(formatter.string(from: t))] \(line)")
}

/// `heed coordinator`: membership, sharding plan, data assignment, barriers, failure detection.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinator", abstract: "Run the coordinator role (membership, plan, barriers, failure detection).")

    @Option(help: "Address to listen on (tcp://0.0.0.0:7070, ipc:///path).") var listen: String
    @Option(help: "A resolved run config as JSON (written by `heed train`); replaces --config and flags.") var resolvedConfig: String?
    @Option(help: "Cluster secret file: authenticate every message with HMAC-SHA256.") var secretFile: String?
    @Option(help: "Seconds the cluster may take to assemble.") var joinTimeout: Int = 120
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        var config: RunConfig
        if let path = resolvedConfig {
            guard let data = FileManager.default.contents(atPath: path) else { throw HeedError(.io, "cannot read \(path)") }
            config = try JSONDecoder().decode(RunConfig.self, from: data)
        } else {
            config = try runOptions.resolve()
        }
        let (derived, assignment) = try ModelCatalog.deriveLayout(config)
        config = derived
        let secret = try readSecret(secretFile)
        let settings = CoordinatorService.Settings(
            config: Array(try JSONEncoder().encode(config)), plan: ShardingPlan(serverCount: config.cluster.servers, slotCount: config.cluster.slots),
            workerCount: config.cluster.workers, dataShards: assignment, mode: config.cluster.mode, staleness: config.cluster.staleness,
            failureTimeout: .milliseconds(config.cluster.failureTimeoutMilliseconds), joinTimeout: .seconds(joinTimeout),
            checkpoint: config.checkpoint, resumedStep: try resumedStep(config))
        let transport = NNGTransport()
        let service = CoordinatorService(settings: settings, log: { logLine("coordinator: \($0)") },
                                         connectToServer: { try transport.connect(to: $0, options: ClientOptions(secret: secret)) })
        let listener = try NNGTransport().listen(on: listen, options: ServerOptions(concurrency: 16 + 4 * config.cluster.workers + config.cluster.servers, secret: secret)) {
            try service.handle($0)
        }
        defer { listener.close() }
        let signals = SignalWatcher { _ in service.interrupt() }
        logLine("coordinator: listening at \(listener.address) for \(config.cluster.servers) servers and \(config.cluster.workers) workers (\(config.model.name), \(config.cluster.mode))")
        let outcome = LockedBox<CoordinatorService.Outcome>(.interrupted)
        try runRole("coordinator") { outcome.set(await service.run()) }
        _ = signals
        switch outcome.get() {
        case .completed: logLine("coordinator: run completed")
        case .failed(let reason): printError("coordinator: run failed: \(reason)"); throw ExitCode(3)
        case .interrupted: printError("coordinator: interrupted"); throw ExitCode(130)
        }
    }
}

/// The global step of the checkpoint a run resumes from (0 for a fresh run).
private func resumedStep(_ config: RunConfig) throws -> Int {
    guard !config.checkpoint.resumeFrom.isEmpty else { return 0 }
    return try SavedModel.load(directory: config.checkpoint.resumeFrom).step
}

/// `heed server`: one parameter server.
struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "server", abstract: "Run one parameter-server role.")

    @Option(help: "Coordinator address.") var coordinator: String
    @Option(help: "Address to listen on.") var listen: String
    @Option(help: "Address workers dial, if different from --listen.") var advertise: String?
    @Option(help: "Preferred rank.") var rank: Int?
    @Option(help: "Cluster secret file.") var secretFile: String?

    func run() throws {
        let options = ServerRole.Options(coordinator: coordinator, listen: listen, advertise: advertise, rankHint: rank, secret: try readSecret(secretFile))
        let signals = SignalWatcher()
        try runRole("server") {
            try await ServerRole.run(options: options, transport: NNGTransport(), initialDense: { config in
                try ModelCatalog.make(config, schema: ModelCatalog.schema(of: config)).0.denseParameters()
            }, log: logLine, interrupted: { signals.isInterrupted })
        }
    }
}

/// `heed worker`: one worker.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one worker role.")

    @Option(help: "Coordinator address.") var coordinator: String
    @Option(help: "Preferred rank.") var rank: Int?
    @Option(help: "Cluster secret file.") var secretFile: String?
    @Option(help: "Where rank 0 writes the test metrics (JSON).") var metricsOut: String?

    func run() throws {
        let options = WorkerRole.Options(coordinator: coordinator, rankHint: rank, secret: try readSecret(secretFile), metricsOut: metricsOut)
        let signals = SignalWatcher()
        try runRole("worker") {
            _ = try await WorkerRole.run(options: options, transport: NNGTransport(), makeModel: { config, schema in
                try ModelCatalog.make(config, schema: schema)
            }, log: logLine, interrupted: { signals.isInterrupted })
        }
    }
}
