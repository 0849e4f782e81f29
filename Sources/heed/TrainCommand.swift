import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedObserve
import HeedServer
import HeedWorker
import Logging

/// `heed train`: train a model; a local cluster of processes by default.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model, by default as a local cluster (coordinator, servers, workers as processes).",
        discussion: "--in-process trains in this process with no transport: the reference every distributed run is compared with.")

    @OptionGroup var runOptions: RunOptions
    @Flag(help: "Train in this process without servers or transport (the reference run).") var inProcess = false
    @Option(help: "Write the final test metrics (JSON) here.") var metricsOut: String?
    @Flag(help: "With --in-process: also evaluate the valid and test splits after every epoch and log them (pick the epoch count on valid).")
    var evalEachEpoch = false
    @Option(help: "With checkpoints: restarts allowed per role within --restart-window before the run is given up.")
    var maxRestarts = 3
    @Option(help: "Seconds over which --max-restarts counts a role's deaths.") var restartWindow = 300.0
    @OptionGroup var observe: ObserveOptions

    func validate() throws {
        if evalEachEpoch && !inProcess { throw ValidationError("--eval-each-epoch needs --in-process") }
        if inProcess && runOptions.resume != nil { throw ValidationError("--resume continues a cluster run; it does not apply to --in-process") }
    }

    func run() throws {
        let config = try runOptions.resolve()
        let runDirectory = try observe.runDirectory(creatingDefault: true)
        let observation = try RoleObservation(role: inProcess ? "worker" : "launcher", options: observe, runDirectory: runDirectory)
        observation.telemetry.assign(rank: 0)
        if let runDirectory { observation.logger.info("run directory \(runDirectory)") }
        let memory = observation.telemetry.sampleMemory()
        defer { memory.cancel() }
        do {
            let report = inProcess ? try trainInProcess(config, evalEachEpoch: evalEachEpoch, telemetry: observation.telemetry)
                : try trainLocalCluster(config, supervision: Supervision(maxRestarts: maxRestarts, window: restartWindow),
                                        observation: observation, childObserve: childObserve(runDirectory: runDirectory))
            print("\(config.data.path): \(report.summary)")
            if let path = metricsOut { try writeJSONAtomically(report, to: path) }
        } catch {
            let status = (error as? ExitCode)?.rawValue ?? ExitStatus.failed
            if !(error is ExitCode) { observation.logger.error("\(error)") }
            observation.finish(exit: status)
            throw ExitCode(status)
        }
        observation.finish(exit: ExitStatus.completed)
    }

    /// How the launcher treats a role that dies.
    struct Supervision {
        /// Deaths of one role (by label) allowed within `window` seconds; one more ends the run.
        var maxRestarts = 3
        var window = 300.0
    }

    /// Runs the local cluster. With checkpoints on, the launcher supervises it: when any
    /// role dies, it stops the others and starts the whole cluster again from the newest
    /// valid checkpoint (or from scratch if there is none yet), so every server and worker
    /// rolls back to one consistent state; the updates since that checkpoint are lost. A
    /// role that dies more than `maxRestarts` times within `window` seconds ends the run.
    /// `observation` is the launcher's own (its log lines, `failure` and `restart` events);
    /// `childObserve` gives each child its observe flags (the same run directory).
    func trainLocalCluster(_ config: RunConfig, supervision: Supervision = Supervision(), observation: RoleObservation? = nil,
                           childObserve: @escaping (Int) -> [String] = { _ in ["--run-dir", "none"] }) throws -> TrainingReport {
        let telemetry = observation?.telemetry ?? Telemetry.silent(role: "launcher", rank: 0)
        let log = telemetry.logger
        // Fail fast on data/model problems before starting processes.
        _ = try ModelCatalog.deriveLayout(config)
        let binary = CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        let signals = SignalWatcher()
        var config = config
        var deaths: [String: [Date]] = [:]
        var restarts = 0
        while true {
            let cluster = try LocalCluster(config: config, binary: URL(fileURLWithPath: binary).standardized.path,
                                           observe: childObserve)
            defer { cluster.cleanUp() }
            let resuming = config.checkpoint.resumeFrom.isEmpty ? "" : ", resuming from \(config.checkpoint.resumeFrom)"
            log.info("\(config.model.name), \(config.cluster.servers) servers, \(config.cluster.workers) workers, \(config.cluster.mode) mode over \(config.cluster.transport)\(resuming)")
            try cluster.start()
            let supervised = config.checkpoint.isEnabled
            let ending = cluster.wait(interrupted: { signals.isInterrupted }, quickStop: supervised)
            switch ending {
            case .completed:
                guard let data = FileManager.default.contents(atPath: cluster.metricsPath) else {
                    throw HeedError(.io, "worker 0 wrote no metrics")
                }
                if restarts > 0 { log.info("completed after \(restarts) restart\(restarts == 1 ? "" : "s") from checkpoints") }
                return try JSONDecoder().decode(TrainingReport.self, from: data).withWorkers(try cluster.workerFigures())
            case .interrupted:
                let signal = signals.signal == 0 ? SIGINT : signals.signal
                log.notice("stopped by \(ExitStatus.name(of: signal)); every role has exited")
                throw ExitCode(ExitStatus.stopped(by: signal))
            case .failed(let label, _):
                telemetry.events.write("failure", ["detail": .string(ending.description)])
                guard supervised else {
                    log.error("\(ending.description)")
                    throw ExitCode(ExitStatus.failed)
                }
                let now = Date()
                deaths[label, default: []].append(now)
                deaths[label]!.removeAll { now.timeIntervalSince($0) > supervision.window }
                if deaths[label]!.count > supervision.maxRestarts {
                    log.error("\(ending.description); \(label) died \(deaths[label]!.count) times within \(Int(supervision.window)) s (--max-restarts \(supervision.maxRestarts)): giving up")
                    throw ExitCode(ExitStatus.failed)
                }
                restarts += 1
                telemetry.events.write("restart", ["attempt": .int(restarts)])
                var skipped: [String] = []
                let latest = CheckpointStore(directory: config.checkpoint.directory).latestValid { skipped.append($0) }
                skipped.forEach { log.warning("\($0)") }
                config.checkpoint.resumeFrom = latest?.path ?? ""
                let from = latest.map { "from \($0.path): the updates after global step \($0.model.step) are lost" } ?? "from scratch: no checkpoint yet"
                log.warning("\(ending.description); restarting the cluster (restart \(restarts)) \(from)")
            }
        }
    }

    /// Also used by `heed bench cluster` on a `TrainCommand()` that was never parsed, so it
    /// reads no property-wrapped option itself.
    func trainInProcess(_ config: RunConfig, evalEachEpoch: Bool = false, telemetry: Telemetry? = nil) throws -> TrainingReport {
        let signals = SignalWatcher()
        let telemetry = telemetry ?? Telemetry.silent(role: "worker", rank: 0)
        let result = blocking { () -> Result<TrainingReport, Error> in
            do {
                return .success(try await InProcessRun.train(config, interrupted: { signals.isInterrupted }, telemetry: telemetry,
                                                             evalEachEpoch: evalEachEpoch))
            } catch {
                return .failure(error)
            }
        }
        if signals.signal != 0 {
            telemetry.logger.notice("stopped by \(ExitStatus.name(of: signals.signal))")
            throw ExitCode(ExitStatus.stopped(by: signals.signal))
        }
        return try result.get()
    }

    /// The observe flags a child of the local cluster gets: the same run directory and
    /// log level; metrics ports after the launcher's (coordinator +1, servers, then workers).
    private func childObserve(runDirectory: String?) -> (_ index: Int) -> [String] {
        let options = observe
        return { index in
            options.childArguments(runDirectory: runDirectory, metricsPort: options.metricsPort.map { $0 == 0 ? 0 : $0 + 1 + index })
        }
    }
}

/// Training in one process: one shard owning everything, one worker loop, no transport.
enum InProcessRun {
    static func train(_ config: RunConfig, interrupted: @escaping @Sendable () -> Bool,
                      telemetry: Telemetry, evalEachEpoch: Bool = false,
                      onShard: (ParameterShard) -> Void = { _ in },
                      onLoop: (TrainingLoop) -> Void = { _ in }) async throws -> TrainingReport {
        var config = config
        config.cluster.servers = 1
        config.cluster.workers = 1
        (config, _) = try ModelCatalog.deriveLayout(config)
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (model, makeBatch) = try ModelCatalog.make(config, schema: manifest.schema)
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: model.denseParameters())
        if !config.layout.initialRows.isEmpty {
            let rows = try shard.loadInitialRows(config.layout.initialRows)
            telemetry.logger.info("loaded \(rows) pre-trained rows from \(config.layout.initialRows.values.sorted().joined(separator: ", "))")
        }
        onShard(shard)
        let trainer = Trainer(model: model, params: LocalParameterAccess(shard: shard), pushEveryTable: false)
        let log = telemetry.logger
        var hooks = TrainingLoop.Hooks()
        hooks.progress = { log.info("\($0)") }
        let metrics = WorkerMetrics(telemetry: telemetry)
        metrics.attach(to: trainer, hooks: &hooks)
        hooks.shouldStop = interrupted
        let testShards = try manifest.open(.test, directory: config.data.path)
        if evalEachEpoch {
            // Pick the epoch count on the validation split, then read test at that epoch.
            let validShards = try manifest.open(.valid, directory: config.data.path)
            hooks.afterEpoch = { epoch in
                let valid = try await TrainingLoop.evaluate(BatchPlan(shards: validShards, batchSize: 1024), trainer: trainer, makeBatch: makeBatch)
                let test = try await TrainingLoop.evaluate(BatchPlan(shards: testShards, batchSize: 1024), trainer: trainer, makeBatch: makeBatch)
                log.info("epoch \(epoch + 1) valid \(valid.summary)")
                log.info("epoch \(epoch + 1) test \(test.summary)")
                metrics.evaluated(epoch: epoch + 1, split: "valid", valid)
                metrics.evaluated(epoch: epoch + 1, split: "test", test)
            }
        }
        let loop = TrainingLoop(trainer: trainer, plan: BatchPlan(shards: try manifest.open(.train, directory: config.data.path), batchSize: config.data.batchSize),
                                settings: .init(epochs: config.data.epochs, maxSteps: config.data.maxSteps, pipelined: false, seed: config.seed,
                                                miniBatchL2: config.model.miniBatchL2),
                                hooks: hooks, makeBatch: makeBatch)
        onLoop(loop)
        let trainLoss = try await loop.run()
        if interrupted() { throw HeedError(.cancelled, "interrupted") }
        let directory = config.output.modelDirectory
        if !directory.isEmpty {
            try SavedModel.prepareDirectory(directory)
            let written = try shard.save(directory: directory, slotCount: config.cluster.slots)
            try SavedModel(step: loop.progress.clock, config: config, servers: 1, slots: config.cluster.slots, files: [written],
                       statistics: trainer.modelStatistics).write(to: directory)
            log.info("saved the model (\(written.rows) rows) to \(directory)")
        }
        let test = try await loop.evaluate(BatchPlan(shards: testShards, batchSize: 1024))
        metrics.evaluated(epoch: min(config.data.epochs, loop.progress.position.epoch + 1), split: "test", test)
        return TrainingReport(model: config.model.name, progress: loop.progress, trainLoss: trainLoss, test: test)
    }
}
