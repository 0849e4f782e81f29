import Foundation
import HeedCore
import HeedData
import HeedModels
import HeedTransport

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
        public init(coordinator: String, rankHint: Int?, secret: [UInt8]?, metricsOut: String?) {
            self.coordinator = coordinator
            self.rankHint = rankHint
            self.secret = secret
            self.metricsOut = metricsOut
        }
    }

    /// Builds the model and the batch adapter from the run config and the data schema.
    public typealias ModelMaker = @Sendable (RunConfig, SampleSchema) throws -> (any RecommenderModel, @Sendable (SampleBatch) -> ModelBatch)

    /// Runs the role; returns rank 0's report with its test evaluation (nil on other ranks).
    public static func run(options: Options, transport: any Transport, makeModel: ModelMaker,
                           log: @escaping @Sendable (String) -> Void,
                           interrupted: @escaping @Sendable () -> Bool) async throws -> TrainingReport? {
        // Unique per incarnation, stable across retries of this registration.
        let identity = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let link = CoordinatorClient(client: try transport.connect(to: options.coordinator, options: ClientOptions(secret: options.secret)), role: .worker)
        defer { link.client.close() }
        let reply = try await link.register(listenAddress: identity, rankHint: options.rankHint, timeout: .seconds(120))
        let rank = Int(reply.rank)
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

        let state = RoleState()
        let mode = config.cluster.mode
        let waitTimeout = Duration.milliseconds(config.cluster.failureTimeoutMilliseconds * 6)
        var hooks = TrainingLoop.Hooks()
        hooks.afterStep = { clock in
            switch mode {
            case .async: break
            case .bounded: try await link.advance(rank: rank, clock: clock, timeout: waitTimeout)
            case .sync: try await link.barrier("step", rank: rank, generation: clock, timeout: waitTimeout)
            }
        }
        hooks.afterEpoch = { epoch in try await link.barrier("epoch", rank: rank, generation: epoch, timeout: waitTimeout) }
        hooks.progress = { line in if rank == 0 { log("worker 0: \(line)") } }
        hooks.shouldStop = { state.isStopped || interrupted() }
        let loop = TrainingLoop(
            trainer: trainer, plan: BatchPlan(shards: mine, batchSize: config.data.batchSize),
            settings: .init(epochs: config.data.epochs, maxSteps: config.data.maxSteps,
                            stepsPerEpoch: config.layout.stepsPerEpoch, pipelined: mode == .async, seed: config.seed &+ UInt64(rank),
                            miniBatchL2: config.model.miniBatchL2),
            hooks: hooks, makeBatch: makeBatch)
        // The work runs in its own task so that a stop from the coordinator, or losing the
        // coordinator, cancels whatever it waits on (a barrier, a pull) at once.
        let work = LockedBox<Task<Double, Error>?>(nil)
        let stop: @Sendable (HeedError) -> Void = { error in
            state.stop(error)
            work.get()?.cancel()
        }
        let beats = link.heartbeats(rank: rank, interval: .milliseconds(config.cluster.heartbeatMilliseconds),
                                    clock: { loop.progress.clock },
                                    stats: { let p = loop.progress; return ["samplesPerSecond": p.samplesPerSecond, "loss": p.recentLoss] },
                                    onStop: { stop(HeedError(.peerFailed, "the coordinator stopped the run")) },
                                    onLost: { stop($0) })
        defer { beats.cancel() }

        log("worker \(rank): \(mine.count) shards, \(loop.plan.recordCount) samples, \(loop.stepsPerEpoch) steps per epoch, \(mode) mode")
        let task = Task {
            let loss = try await loop.run()
            // A stopped run ends here: its servers and coordinator may be gone already.
            if state.isStopped || interrupted() { throw state.error ?? HeedError(.cancelled, "worker \(rank) stopped") }
            // Once every worker has flushed, every push of the run is applied: the model
            // saved and evaluated below is the trained one.
            try await params.flush()
            try await link.barrier("train-end", rank: rank, generation: 0, timeout: waitTimeout)
            if rank == 0 && !config.output.modelDirectory.isEmpty {
                let saved = try await ModelSave.viaServers(clients, config: config, step: loop.progress.clock, statistics: trainer.modelStatistics)
                log("worker 0: saved the model (\(saved.files.reduce(0) { $0 + $1.rows }) rows in \(saved.files.count) files) to \(config.output.modelDirectory)")
            }
            return loss
        }
        work.set(task)
        if state.isStopped { task.cancel() }
        let trainLoss: Double
        do {
            trainLoss = try await task.value
        } catch {
            throw state.error ?? error
        }
        if let error = state.error { throw error }
        if interrupted() { throw HeedError(.cancelled, "worker \(rank) interrupted") }

        var report: TrainingReport?
        if rank == 0 {
            let test = try manifest.open(.test, directory: config.data.path)
            let result = TrainingReport(model: config.model.name, progress: loop.progress, trainLoss: trainLoss,
                                        test: try await loop.evaluate(BatchPlan(shards: test, batchSize: 1024)))
            log("worker 0: test \(result.test.summary)")
            if let path = options.metricsOut {
                try FileOps.writeAtomically(Array(try JSONEncoder().encode(result)), to: path)
            }
            report = result
        }
        try await link.finished(rank: rank)
        return report
    }
}
