import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedObserve
import HeedTransport
import Logging

/// The worker process: register, open its data shards, train with the cluster's
/// consistency mode, evaluate (rank 0), say goodbye.
public enum WorkerRole {
    /// Command-line facts for one worker.
    public struct Options: Sendable {
        public var coordinator: String
        public var rankHint: Int?
        public var secret: [UInt8]?
        /// Where rank 0 writes the final metrics as JSON (nil = only print them).
        public var metricsOut: String?
        /// Where this worker writes its training figures (`WorkerFigures`, JSON) when it
        /// finishes; `heed train` sums every worker's into the cluster's totals.
        public var figuresOut: String?
        public init(coordinator: String, rankHint: Int?, secret: [UInt8]?, metricsOut: String?, figuresOut: String? = nil) {
            self.coordinator = coordinator
            self.rankHint = rankHint
            self.secret = secret
            self.metricsOut = metricsOut
            self.figuresOut = figuresOut
        }
    }

    /// Builds the model and the batch adapter from the run config and the data schema.
    public typealias ModelMaker = @Sendable (RunConfig, SampleSchema) throws -> (any RecommenderModel, @Sendable (SampleBatch) -> ModelBatch)

    /// Runs the role; returns rank 0's report with its test evaluation (nil on other ranks).
    /// `telemetry` gets the rank once the coordinator gives it; logs, metrics and the
    /// metrics log go through it.
    public static func run(options: Options, transport: any Transport, makeModel: ModelMaker,
                           telemetry: Telemetry,
                           interrupted: @escaping @Sendable () -> Bool) async throws -> TrainingReport? {
        // Unique per incarnation, stable across retries of this registration.
        let identity = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let link = CoordinatorClient(client: try transport.connect(to: options.coordinator, options: ClientOptions(secret: options.secret)), role: .worker)
        defer { link.client.close() }
        let reply = try await link.register(listenAddress: identity, rankHint: options.rankHint, timeout: .seconds(120))
        let rank = Int(reply.rank)
        telemetry.assign(rank: rank)
        let log = telemetry.logger
        let memory = telemetry.sampleMemory()
        defer { memory.cancel() }
        let config = try JSONDecoder().decode(RunConfig.self, from: Data(reply.config))
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let trainShards = try manifest.open(.train, directory: config.data.path)
        for s in reply.dataShards where Int(s) >= trainShards.count {
            throw HeedError(.config, "worker \(rank) was assigned train shard \(s), but \(config.data.path) has \(trainShards.count)")
        }
        let mine = reply.dataShards.map { trainShards[Int($0)] }
        let (model, makeBatch) = try makeModel(config, manifest.schema)

        let clients: [any RequestClient] = try reply.serverAddresses.map {
            try transport.connect(to: $0, options: ClientOptions(maxInFlight: config.cluster.inFlight, secret: options.secret))
        }
        defer { clients.forEach { $0.close() } }
        let params = RemoteParameterAccess(servers: clients, plan: reply.plan, tableDims: config.layout.tableDims,
                                           denseCount: config.layout.denseCount, pushToEveryServer: config.cluster.mode == .sync)
        let trainer = Trainer(model: model, params: params, pushEveryTable: config.cluster.mode == .sync)
        var start: WorkerPosition?
        if !config.checkpoint.resumeFrom.isEmpty {
            let saved = try SavedModel.load(directory: config.checkpoint.resumeFrom)
            guard saved.workers.count == config.cluster.workers, let p = saved.workers.first(where: { $0.rank == rank }) else {
                throw HeedError(.config, "\(config.checkpoint.resumeFrom) holds positions for \(saved.workers.count) workers; resume it with --workers \(saved.workers.count)")
            }
            if !p.statistics.isEmpty { try trainer.loadModelStatistics(p.statistics) }
            start = p
            log.info("resuming at epoch \(p.epoch + 1), batch \(p.batch), step \(p.clock)")
        }

        let state = RoleState()
        let mode = config.cluster.mode
        let waitTimeout = Duration.milliseconds(config.cluster.failureTimeoutMilliseconds * 6)
        let checkpoints = CheckpointRequests()
        // The worker's own position with its rank and model statistics, as JSON.
        let encodePosition: @Sendable (WorkerPosition) throws -> WorkerPosition = { p in
            var p = p
            p.rank = rank
            p.statistics = trainer.modelStatistics
            return p
        }
        let pauseForCheckpoint: @Sendable (Int, WorkerPosition) async throws -> Void = { generation, position in
            let arrival = CheckpointArrival(generation: generation, position: try encodePosition(position))
            let reply = try await link.checkpointArrive(Array(try JSONEncoder().encode(arrival)), timeout: CheckpointRequests.saveTimeout)
            checkpoints.done(generation)
            if reply.name == "checkpoint-failed" {
                log.warning("checkpoint \(generation) failed at the coordinator: \(String(decoding: reply.body, as: UTF8.self)); training goes on")
            }
        }
        var hooks = TrainingLoop.Hooks()
        hooks.afterStep = { position in
            switch mode {
            case .async: break
            case .bounded:
                while true {
                    let reply = try await link.advance(rank: rank, clock: position.clock, timeout: waitTimeout)
                    guard reply.name == "checkpoint", let generation = Int(String(decoding: reply.body, as: UTF8.self)) else { break }
                    checkpoints.request(generation)
                    try await pauseForCheckpoint(generation, position)
                }
            case .sync:
                let release = try await link.barrier("step", rank: rank, generation: position.clock, timeout: waitTimeout)
                if let generation = CheckpointRequests.generation(inRelease: release.name) { checkpoints.request(generation) }
            }
            if let generation = checkpoints.pending { try await pauseForCheckpoint(generation, position) }
        }
        // Before waiting at a barrier, say where this worker stands: a checkpoint the others
        // pause for can then be taken while it waits.
        let declareIdle: @Sendable (WorkerPosition) async throws -> Void = { position in
            guard config.checkpoint.isEnabled else { return }
            try await link.idle(position: Array(try JSONEncoder().encode(try encodePosition(position))), timeout: waitTimeout)
        }
        let positionNow = LockedBox<@Sendable () -> WorkerPosition>({ WorkerPosition(rank: rank, epoch: 0, batch: 0, clock: 0, samples: 0) })
        hooks.afterEpoch = { epoch in
            try await declareIdle(positionNow.get()())
            try await link.barrier("epoch", rank: rank, generation: epoch, timeout: waitTimeout)
        }
        // Rank 0's progress is the run's; the others' would repeat it, so they say it at debug level.
        hooks.progress = { line in log.log(level: rank == 0 ? .info : .debug, "\(line)") }
        let metrics = WorkerMetrics(telemetry: telemetry)
        metrics.attach(to: trainer, hooks: &hooks)
        hooks.shouldStop = { state.isStopped || interrupted() }
        let loop = TrainingLoop(
            trainer: trainer, plan: BatchPlan(shards: mine, batchSize: config.data.batchSize),
            settings: .init(epochs: config.data.epochs, maxSteps: config.data.maxSteps,
                            stepsPerEpoch: config.layout.stepsPerEpoch, pipelined: mode == .async, seed: config.seed &+ UInt64(rank),
                            miniBatchL2: config.model.miniBatchL2, start: start),
            hooks: hooks, makeBatch: makeBatch)
        positionNow.set { loop.progress.position }
        // The work runs in its own task so that a stop from the coordinator, or losing the
        // coordinator, cancels whatever it waits on (a barrier, a pull) at once.
        let work = LockedBox<Task<Double, Error>?>(nil)
        let stop: @Sendable (HeedError) -> Void = { error in
            state.stop(error)
            work.get()?.cancel()
        }
        let beats = link.heartbeats(rank: rank, interval: .milliseconds(config.cluster.heartbeatMilliseconds),
                                    giveUpAfter: .milliseconds(config.cluster.failureTimeoutMilliseconds),
                                    clock: { loop.progress.clock },
                                    stats: { let p = loop.progress; return ["samplesPerSecond": p.samplesPerSecond, "loss": p.recentLoss] },
                                    onStop: { stop(HeedError(.peerFailed, "the coordinator stopped the run")) },
                                    onLost: { stop($0) },
                                    onCommand: { command in
                                        // Only asynchronous workers take checkpoint requests from heartbeats.
                                        if mode == .async, command.name == "checkpoint",
                                           let generation = Int(String(decoding: command.body, as: UTF8.self)) {
                                            checkpoints.request(generation)
                                        }
                                    })
        defer { beats.cancel() }

        log.info("\(mine.count) shards, \(loop.plan.recordCount) samples, \(loop.stepsPerEpoch) steps per epoch, \(mode) mode")
        let task = Task {
            let loss = try await loop.run()
            // A stopped run ends here: its servers and coordinator may be gone already.
            if state.isStopped || interrupted() { throw state.error ?? HeedError(.cancelled, "worker \(rank) stopped") }
            // Once every worker has flushed, every push of the run is applied: the model
            // saved and evaluated below is the trained one.
            try await params.flush()
            try await declareIdle(loop.progress.position)
            // The final checkpoint (if any) is written while every worker waits here.
            try await link.barrier("train-end", rank: rank, generation: 0, timeout: max(waitTimeout, CheckpointRequests.saveTimeout))
            if rank == 0 && !config.output.modelDirectory.isEmpty {
                let saved = try await ModelSave.viaServers(clients, config: config, step: loop.progress.clock, statistics: trainer.modelStatistics)
                log.info("saved the model (\(saved.files.reduce(0) { $0 + $1.rows }) rows in \(saved.files.count) files) to \(config.output.modelDirectory)")
            }
            return loss
        }
        work.set(task)
        if state.isStopped { task.cancel() }
        // Stopped by a signal (not by the coordinator): say so, so the run ends now instead
        // of after the failure timeout.
        let leave: @Sendable () async -> Void = {
            guard !state.isStopped else { return }
            _ = try? await link.client.control(Control(name: "leaving", body: Array("\(rank) worker".utf8)), timeout: .seconds(2))
        }
        let trainLoss: Double
        do {
            trainLoss = try await task.value
        } catch {
            if interrupted() { await leave() }
            throw state.error ?? error
        }
        if let error = state.error { throw error }
        if interrupted() {
            await leave()
            throw HeedError(.cancelled, "worker \(rank) interrupted")
        }

        let figures = WorkerFigures(rank: rank, progress: loop.progress)
        if let path = options.figuresOut {
            try FileOps.writeAtomically(Array(try JSONEncoder().encode(figures)), to: path)
        }
        var report: TrainingReport?
        if rank == 0 {
            let test = try manifest.open(.test, directory: config.data.path)
            let result = TrainingReport(model: config.model.name, progress: loop.progress, trainLoss: trainLoss,
                                        test: try await loop.evaluate(BatchPlan(shards: test, batchSize: 1024)), rank: rank)
            log.info("test \(result.test.summary)")
            metrics.evaluated(epoch: min(config.data.epochs, loop.progress.position.epoch + 1), split: "test", result.test)
            if let path = options.metricsOut {
                try FileOps.writeAtomically(Array(try JSONEncoder().encode(result)), to: path)
            }
            report = result
        }
        // Goodbye with this worker's figures (JSON after the rank): the coordinator logs the
        // cluster's totals once every worker has finished.
        _ = try await link.client.control(Control(name: "finished", body: Array("\(rank) ".utf8) + (try JSONEncoder().encode(figures))),
                                          timeout: .seconds(10))
        return report
    }
}

/// Checkpoint generations a worker was asked to pause for and has paused for.
final class CheckpointRequests: @unchecked Sendable {
    /// How long a worker waits for the servers to write a checkpoint.
    static let saveTimeout = Duration.seconds(900)
    private let lock = NSLock()
    private var requested = 0
    private var completed = 0

    /// Records a request for `generation`.
    func request(_ generation: Int) { lock.withLock { requested = max(requested, generation) } }

    /// Records that this worker paused for `generation`.
    func done(_ generation: Int) { lock.withLock { completed = max(completed, generation) } }

    /// The generation to pause for now, if any.
    var pending: Int? { lock.withLock { requested > completed ? requested : nil } }

    /// The generation a sync step release asks for (`step/checkpoint/<g>`), if any.
    static func generation(inRelease name: String) -> Int? {
        let prefix = "step/checkpoint/"
        guard name.hasPrefix(prefix) else { return nil }
        return Int(name.dropFirst(prefix.count))
    }
}
