import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedServer
import HeedWorker

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

    func validate() throws {
        if evalEachEpoch && !inProcess { throw ValidationError("--eval-each-epoch needs --in-process") }
        if inProcess && runOptions.resume != nil { throw ValidationError("--resume continues a cluster run; it does not apply to --in-process") }
    }

    func run() throws {
        let config = try runOptions.resolve()
        let report = inProcess ? try trainInProcess(config, evalEachEpoch: evalEachEpoch) : try trainLocalCluster(config)
        print("\(config.data.path): \(report.summary)")
        if let path = metricsOut { try writeJSONAtomically(report, to: path) }
    }

    func trainLocalCluster(_ config: RunConfig) throws -> TrainingReport {
        // Fail fast on data/model problems before starting processes.
        _ = try ModelCatalog.deriveLayout(config)
        let binary = CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        let cluster = try LocalCluster(config: config, binary: URL(fileURLWithPath: binary).standardized.path)
        defer { cluster.cleanUp() }
        let signals = SignalWatcher()
        logLine("train: \(config.model.name), \(config.cluster.servers) servers, \(config.cluster.workers) workers, \(config.cluster.mode) mode over \(config.cluster.transport)"
                + (config.checkpoint.resumeFrom.isEmpty ? "" : ", resuming from \(config.checkpoint.resumeFrom)"))
        try cluster.start()
        if let failure = cluster.wait(interrupted: { signals.isInterrupted }) {
            printError("train: \(failure)")
            throw ExitCode(failure == "interrupted" ? 130 : 1)
        }
        guard let data = FileManager.default.contents(atPath: cluster.metricsPath) else {
            throw HeedError(.io, "worker 0 wrote no metrics")
        }
        return try JSONDecoder().decode(TrainingReport.self, from: data)
    }

    /// Also used by `heed bench cluster` on a `TrainCommand()` that was never parsed, so it
    /// reads no property-wrapped option itself.
    func trainInProcess(_ config: RunConfig, evalEachEpoch: Bool = false) throws -> TrainingReport {
        let result = LockedBox<TrainingReport?>(nil)
        let signals = SignalWatcher()
        try runRole("train") {
            result.set(try await InProcessRun.train(config, interrupted: { signals.isInterrupted }, log: logLine,
                                                    evalEachEpoch: evalEachEpoch))
        }
        guard let report = result.get() else { throw ExitCode(1) }
        return report
    }
}

/// Training in one process: one shard owning everything, one worker loop, no transport.
enum InProcessRun {
    static func train(_ config: RunConfig, interrupted: @escaping @Sendable () -> Bool,
                      log: @escaping @Sendable (String) -> Void, evalEachEpoch: Bool = false,
                      onShard: (ParameterShard) -> Void = { _ in }) async throws -> TrainingReport {
        var config = config
        config.cluster.servers = 1
        config.cluster.workers = 1
        (config, _) = try ModelCatalog.deriveLayout(config)
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (model, makeBatch) = try ModelCatalog.make(config, schema: manifest.schema)
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: model.denseParameters())
        onShard(shard)
        let trainer = Trainer(model: model, params: LocalParameterAccess(shard: shard), pushEveryTable: false)
        var hooks = TrainingLoop.Hooks()
        hooks.progress = { log("train: \($0)") }
        hooks.shouldStop = interrupted
        let testShards = try manifest.open(.test, directory: config.data.path)
        if evalEachEpoch {
            // Pick the epoch count on the validation split, then read test at that epoch.
            let validShards = try manifest.open(.valid, directory: config.data.path)
            hooks.afterEpoch = { epoch in
                let valid = try await TrainingLoop.evaluate(BatchPlan(shards: validShards, batchSize: 1024), trainer: trainer, makeBatch: makeBatch)
                let test = try await TrainingLoop.evaluate(BatchPlan(shards: testShards, batchSize: 1024), trainer: trainer, makeBatch: makeBatch)
                log("train: epoch \(epoch + 1) valid \(valid.summary)")
                log("train: epoch \(epoch + 1) test \(test.summary)")
            }
        }
        let loop = TrainingLoop(trainer: trainer, plan: BatchPlan(shards: try manifest.open(.train, directory: config.data.path), batchSize: config.data.batchSize),
                                settings: .init(epochs: config.data.epochs, maxSteps: config.data.maxSteps, pipelined: false, seed: config.seed,
                                                miniBatchL2: config.model.miniBatchL2),
                                hooks: hooks, makeBatch: makeBatch)
        let trainLoss = try await loop.run()
        if interrupted() { throw HeedError(.cancelled, "interrupted") }
        let directory = config.output.modelDirectory
        if !directory.isEmpty {
            try SavedModel.prepareDirectory(directory)
            let written = try shard.save(directory: directory, slotCount: config.cluster.slots)
            try SavedModel(step: loop.progress.clock, config: config, servers: 1, slots: config.cluster.slots, files: [written],
                       statistics: trainer.modelStatistics).write(to: directory)
            log("train: saved the model (\(written.rows) rows) to \(directory)")
        }
        return TrainingReport(model: config.model.name, progress: loop.progress, trainLoss: trainLoss,
                              test: try await loop.evaluate(BatchPlan(shards: testShards, batchSize: 1024)))
    }
}
