import Foundation
import HeedCheckpoint
import HeedCore
import HeedObserve
import HeedOptim
import HeedTransport
import Logging

/// The server process: listen, register, build the shard, serve until told to stop.
public enum ServerRole {
    /// Command-line facts for one server.
    public struct Options: Sendable {
        public var coordinator: String
        public var listen: String
        /// Address clients dial, if different from `listen` (e.g. `tcp://0.0.0.0:…`).
        public var advertise: String?
        public var rankHint: Int?
        public var secret: [UInt8]?
        public init(coordinator: String, listen: String, advertise: String?, rankHint: Int?, secret: [UInt8]?) {
            self.coordinator = coordinator
            self.listen = listen
            self.advertise = advertise
            self.rankHint = rankHint
            self.secret = secret
        }
    }

    /// Runs the role until the coordinator says stop. `initialDense` builds the model's
    /// initial flat dense vector from the run config (the executable knows the models).
    public static func run(options: Options, transport: any Transport,
                           initialDense: @escaping (RunConfig) throws -> [Float],
                           telemetry: Telemetry,
                           interrupted: @escaping @Sendable () -> Bool,
                           onReady: @Sendable (ParameterShard) -> Void = { _ in }) async throws {
        let server = try ParameterServer(transport: transport, address: options.listen,
                                         options: ServerOptions(concurrency: 32, secret: options.secret))
        defer { server.close() }
        let advertised = options.advertise ?? server.address
        let link = CoordinatorClient(client: try transport.connect(to: options.coordinator, options: ClientOptions(secret: options.secret)), role: .server)
        defer { link.client.close() }
        let reply = try await link.register(listenAddress: advertised, rankHint: options.rankHint, timeout: .seconds(30))
        let rank = Int(reply.rank)
        telemetry.assign(rank: rank)
        let log = telemetry.logger
        let memory = telemetry.sampleMemory()
        defer { memory.cancel() }
        let config = try JSONDecoder().decode(RunConfig.self, from: Data(reply.config))
        let shard = try makeShard(rank: rank, config: config, initialDense: try initialDense(config))
        if !config.checkpoint.resumeFrom.isEmpty {
            let rows = try restore(shard, from: config.checkpoint.resumeFrom, slots: config.cluster.slots)
            log.info("restored \(rows) rows and the dense chunk from \(config.checkpoint.resumeFrom)")
        } else if !config.layout.initialRows.isEmpty {
            let rows = try shard.loadInitialRows(config.layout.initialRows)
            log.info("loaded \(rows) pre-trained rows from \(config.layout.initialRows.values.sorted().joined(separator: ", "))")
        }
        // Asynchronous workers need not see their own pushes on the next pull, so they are
        // acknowledged on receipt; sync and bounded runs get acks after applying.
        server.attach(shard, saveTo: config.output.modelDirectory.isEmpty && !config.checkpoint.isEnabled ? nil
                      : .init(directory: config.output.modelDirectory, slotCount: config.cluster.slots,
                              checkpointDirectory: config.checkpoint.directory),
                      pushAcknowledgement: config.cluster.mode == .async ? .onReceipt : .afterApplying)
        log.info("serving \(shard.tables.count) tables and \(shard.denseRange.count) dense values at \(advertised)")
        try await link.serverReady(rank: rank)
        onReady(shard)

        let state = RoleState()
        let beats = link.heartbeats(rank: rank, interval: .milliseconds(config.cluster.heartbeatMilliseconds),
                                    giveUpAfter: .milliseconds(config.cluster.failureTimeoutMilliseconds),
                                    clock: { 0 }, stats: { Self.stats(shard) },
                                    onStop: { state.stop(nil) }, onLost: { state.stop($0) })
        defer { beats.cancel() }
        let metrics = ServerMetrics(telemetry: telemetry)
        var tick = 0
        while !state.isStopped && !server.isShutdownRequested && !interrupted() {
            if tick % 20 == 0 { metrics.update(shard: shard, counters: server.listener.counters) }
            tick += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        metrics.update(shard: shard, counters: server.listener.counters)
        // Told to stop or interrupted while writing a checkpoint: finish the file first.
        if !server.waitForSaves(limit: .seconds(120)) { log.warning("stopping while a save is still being written") }
        if let error = state.error { throw error }
        if interrupted() && !state.isStopped && !server.isShutdownRequested {
            // Stopped by a signal: tell the coordinator, so the run ends now instead of after the failure timeout.
            _ = try? await link.client.control(Control(name: "leaving", body: Array("\(rank) server".utf8)), timeout: .seconds(2))
        }
        let totals = shard.tableStats().values.reduce((0, 0)) { ($0.0 + $1.rows, $0.1 + $1.residentBytes) }
        let lateFailures = server.dedupStatistics.failedAfterAcknowledging
        let late = lateFailures > 0 ? "; \(lateFailures) pushes failed after they were acknowledged" : ""
        log.info("stopping with \(totals.0) rows (\(totals.1 / 1_048_576) MiB resident)\(late)")
    }

    /// Loads this shard's part of the checkpoint at `path` (any server count), streaming
    /// the files it needs (`ParameterShard.restore(directory:model:)`). Every file read is
    /// checked against its checksum; on a mismatch this throws and the server stops before
    /// serving, so the partly loaded shard is never used.
    /// - Returns: rows loaded.
    public static func restore(_ shard: ParameterShard, from path: String, slots: Int) throws -> Int {
        let saved = try SavedModel.load(directory: path)
        guard saved.slots == slots else {
            throw HeedError(.config, "\(path) was saved with \(saved.slots) virtual slots; this run has \(slots) (keep cluster.slots when resuming)")
        }
        return try shard.restore(directory: path, model: saved)
    }

    /// The shard for `rank` under `config`'s layout and optimizers.
    public static func makeShard(rank: Int, config: RunConfig, initialDense: [Float]) throws -> ParameterShard {
        var tables: [UInt8: EmbeddingTableConfig] = [:]
        for (id, dim) in config.layout.tableDims {
            tables[id] = EmbeddingTableConfig(name: "group-\(id)", dim: dim,
                                              initializer: .normal(scale: Float(config.layout.initScales[id] ?? config.model.initScale)),
                                              optimizer: OptimizerSettings(config.sparseOptimizer),
                                              seed: config.seed)
        }
        return try ParameterShard(rank: rank, serverCount: config.cluster.servers, slotCount: config.cluster.slots, tableConfigs: tables,
                                  initialDense: initialDense, denseOptimizer: OptimizerSettings(config.denseOptimizer),
                                  syncWorkers: config.cluster.mode == .sync ? config.cluster.workers : 0)
    }

    static func stats(_ shard: ParameterShard) -> [String: Double] {
        let s = shard.tableStats().values
        return ["rows": Double(s.reduce(0) { $0 + $1.rows }), "residentBytes": Double(s.reduce(0) { $0 + $1.residentBytes }),
                "foreignKeyRejections": Double(shard.foreignKeyRejections)]
    }
}

