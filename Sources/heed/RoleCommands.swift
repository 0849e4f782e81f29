import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCoordinator
import HeedModels
import HeedObserve
import HeedCore
import HeedServer
import HeedTransport
import HeedWorker

/// The environment variable that may carry the cluster secret instead of a file.
let secretEnvironmentVariable = "HEED_CLUSTER_SECRET"

/// Reads the cluster secret: from `path` (raw bytes, surrounding whitespace trimmed; the
/// file must not be readable by group or others), else from `HEED_CLUSTER_SECRET`, else nil.
func readSecret(_ path: String?) throws -> [UInt8]? {
    guard let path else {
        guard let text = ProcessInfo.processInfo.environment[secretEnvironmentVariable]?.trimmingCharacters(in: .whitespacesAndNewlines),
              !text.isEmpty else { return nil }
        guard text.utf8.count >= 16 else { throw HeedError(.config, "\(secretEnvironmentVariable) holds fewer than 16 bytes") }
        return Array(text.utf8)
    }
    var info = stat()
    guard stat(path, &info) == 0 else { throw HeedError(.io, "cannot read secret file \(path): \(String(cString: strerror(errno)))") }
    guard info.st_mode & 0o077 == 0 else {
        throw HeedError(.config, "secret file \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
    }
    guard let data = FileManager.default.contents(atPath: path) else { throw HeedError(.io, "cannot read secret file \(path)") }
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard text.utf8.count >= 16 else { throw HeedError(.config, "secret file \(path) holds fewer than 16 bytes") }
    return Array(text.utf8)
}

/// True for addresses only this host can reach: `ipc://`, `inproc://`, and tcp on
/// 127.0.0.0/8, `localhost` or `[::1]`.
func isLoopback(_ address: String) -> Bool {
    if address.hasPrefix("ipc://") || address.hasPrefix("inproc://") { return true }
    for scheme in ["tcp://", "tcp4://", "tcp6://", "tls+tcp://"] where address.hasPrefix(scheme) {
        let rest = address.dropFirst(scheme.count)
        return rest.hasPrefix("127.") || rest.hasPrefix("localhost:") || rest.hasPrefix("[::1]:")
    }
    return false
}

/// Refuses to listen where other hosts can connect without a cluster secret: anyone who
/// reaches the port could read and change the model, or stop the run.
func checkListenAddress(_ address: String, secret: [UInt8]?, insecure: Bool) throws {
    guard secret == nil, !insecure, !isLoopback(address) else { return }
    throw HeedError(.config, "refusing to listen on \(address) without a cluster secret: any host that reaches it could read and change the model. "
                    + "Pass --secret-file FILE (mode 0600) or set \(secretEnvironmentVariable), or --insecure on a network you trust")
}

/// Runs an async body from a synchronous tool command (eval, checkpoint, bench) and maps
/// an error to exit status 1.
func runRole(_ name: String, _ body: @escaping @Sendable () async throws -> Void) throws {
    let failure = blocking { () -> Error? in
        do { try await body(); return nil } catch { return error }
    }
    if let failure {
        printError("\(name): \(failure)")
        throw ExitCode(1)
    }
}

/// Runs an async role body from a synchronous command, then ends the process's metrics
/// log and maps the outcome to the documented exit status: 0 when the body returned,
/// 128 + the signal when SIGINT or SIGTERM stopped it (the body saw the flag and finished
/// or abandoned its step), 1 on an error.
func runRole(_ observation: RoleObservation, signals: SignalWatcher, _ body: @escaping @Sendable () async throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let failure = LockedBox<Error?>(nil)
    Task.detached {
        do { try await body() } catch { failure.set(error) }
        done.signal()
    }
    done.wait()
    let status: Int32
    if signals.signal != 0 {
        status = ExitStatus.stopped(by: signals.signal)
        observation.logger.notice("stopped by \(ExitStatus.name(of: signals.signal))")
    } else if let error = failure.get() {
        status = ExitStatus.failed
        observation.logger.error("\(error)")
    } else {
        status = ExitStatus.completed
    }
    observation.finish(exit: status)
    if status != 0 { throw ExitCode(status) }
}

/// Runs `body` on the cooperative pool and waits for its value (commands are synchronous).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    let result = LockedBox<T?>(nil)
    Task.detached {
        result.set(await body())
        done.signal()
    }
    done.wait()
    return result.get()!
}

/// `heed coordinator`: membership, sharding plan, data assignment, barriers, failure detection.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinator", abstract: "Run the coordinator role (membership, plan, barriers, failure detection).")

    @Option(help: "Address to listen on (tcp://0.0.0.0:7070, ipc:///path).") var listen: String
    @Option(help: "A resolved run config as JSON (written by `heed train`); replaces --config and flags.") var resolvedConfig: String?
    @Option(help: "Cluster secret file (mode 0600; or set HEED_CLUSTER_SECRET): authenticate every message with HMAC-SHA256.") var secretFile: String?
    @Flag(help: "Allow a non-loopback --listen without a cluster secret.") var insecure = false
    @Option(help: "Seconds the cluster may take to assemble.") var joinTimeout: Int = 120
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var observe: ObserveOptions

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
        try checkListenAddress(listen, secret: secret, insecure: insecure)
        let settings = CoordinatorService.Settings(
            config: Array(try JSONEncoder().encode(config)), plan: ShardingPlan(serverCount: config.cluster.servers, slotCount: config.cluster.slots),
            workerCount: config.cluster.workers, dataShards: assignment, mode: config.cluster.mode, staleness: config.cluster.staleness,
            failureTimeout: .milliseconds(config.cluster.failureTimeoutMilliseconds), joinTimeout: .seconds(joinTimeout),
            checkpoint: config.checkpoint, resumedStep: try resumedStep(config))
        let observation = try RoleObservation(role: "coordinator", options: observe, runDirectory: try observe.runDirectory(creatingDefault: false))
        observation.telemetry.assign(rank: 0)
        let memory = observation.telemetry.sampleMemory()
        defer { memory.cancel() }
        let transport = NNGTransport()
        let service = CoordinatorService(settings: settings, telemetry: observation.telemetry,
                                         connectToServer: { try transport.connect(to: $0, options: ClientOptions(secret: secret)) })
        let listener = try NNGTransport().listen(on: listen, options: ServerOptions(concurrency: 16 + 4 * config.cluster.workers + config.cluster.servers, secret: secret)) {
            try service.handle($0)
        }
        defer { listener.close() }
        let signals = SignalWatcher { _ in service.interrupt() }
        let resuming = config.checkpoint.resumeFrom.isEmpty ? "" : ", resuming from \(config.checkpoint.resumeFrom)"
        observation.logger.info("listening at \(listener.address) for \(config.cluster.servers) servers and \(config.cluster.workers) workers (\(config.model.name), \(config.cluster.mode))\(resuming)")
        let outcome = blocking { await service.run() }
        let status: Int32
        switch outcome {
        case .completed:
            observation.logger.info("run completed")
            status = ExitStatus.completed
        case .failed(let reason):
            observation.logger.error("run failed: \(reason)")
            status = ExitStatus.runFailed
        case .interrupted:
            let signal = signals.signal == 0 ? SIGINT : signals.signal
            observation.logger.notice("stopped by \(ExitStatus.name(of: signal))")
            status = ExitStatus.stopped(by: signal)
        }
        observation.finish(exit: status)
        if status != 0 { throw ExitCode(status) }
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
    @Option(help: "Cluster secret file (mode 0600; or set HEED_CLUSTER_SECRET).") var secretFile: String?
    @Flag(help: "Allow a non-loopback --listen without a cluster secret.") var insecure = false
    @OptionGroup var observe: ObserveOptions

    func run() throws {
        let secret = try readSecret(secretFile)
        try checkListenAddress(listen, secret: secret, insecure: insecure)
        let options = ServerRole.Options(coordinator: coordinator, listen: listen, advertise: advertise, rankHint: rank, secret: secret)
        let signals = SignalWatcher()
        let observation = try RoleObservation(role: "server", options: observe, runDirectory: try observe.runDirectory(creatingDefault: false))
        let telemetry = observation.telemetry
        try runRole(observation, signals: signals) {
            try await ServerRole.run(options: options, transport: NNGTransport(), initialDense: { config in
                try ModelCatalog.make(config, schema: ModelCatalog.schema(of: config)).0.denseParameters()
            }, telemetry: telemetry, interrupted: { signals.isInterrupted })
        }
    }
}

/// `heed worker`: one worker.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one worker role.")

    @Option(help: "Coordinator address.") var coordinator: String
    @Option(help: "Preferred rank.") var rank: Int?
    @Option(help: "Cluster secret file (mode 0600; or set HEED_CLUSTER_SECRET).") var secretFile: String?
    @Option(help: "Where rank 0 writes the test metrics (JSON).") var metricsOut: String?
    @Option(help: "Where this worker writes its training figures (JSON: steps, samples, samples/s) when it finishes.") var figuresOut: String?
    @OptionGroup var observe: ObserveOptions

    func run() throws {
        let options = WorkerRole.Options(coordinator: coordinator, rankHint: rank, secret: try readSecret(secretFile), metricsOut: metricsOut,
                                         figuresOut: figuresOut)
        let signals = SignalWatcher()
        let observation = try RoleObservation(role: "worker", options: observe, runDirectory: try observe.runDirectory(creatingDefault: false))
        let telemetry = observation.telemetry
        try runRole(observation, signals: signals) {
            _ = try await WorkerRole.run(options: options, transport: NNGTransport(), makeModel: { config, schema in
                try ModelCatalog.make(config, schema: schema)
            }, telemetry: telemetry, interrupted: { signals.isInterrupted })
        }
    }
}
