import Foundation
import HeedCore
import HeedData
import HeedLayers
import HeedOptim
import HeedServer
@testable import HeedModels

/// Settings of an in-process training run in tests and the model comparison.
struct TrainSettings {
    var batchSize = 256
    /// Passes over the training split; `maxSteps` > 0 stops earlier.
    var epochs = 1
    var maxSteps = 0
    var sparseLearningRate: Float = 0.01
    var denseLearningRate: Float = 0.001
    /// Std of the key-seeded normal row initialiser.
    var initScale: Float = 0.01
    var seed: UInt64 = 1
    var labelName = "click"
    var evalBatchSize = 1024
}

/// Held-out figures of a model.
struct EvalResult {
    var auc: Double
    var gauc: Double
    var logLoss: Double
    var records: Int
}

/// The reference training loop written against `ParameterAccess` with parameters in this
/// process (`LocalParameterAccess` over one `ParameterShard`, sparse lazy Adam on rows, Adam
/// on the dense vector): per step pull rows and dense weights, run the model, push both
/// gradients. Only for tests and the model comparison; `heed train` is the product loop.
struct InProcessTrainer {
    let manifest: DatasetManifest
    let directory: String
    let settings: TrainSettings
    let access: LocalParameterAccess
    var model: any StatefulRecommender
    private(set) var step = 0
    private(set) var lossHistory: [Double] = []

    init(model: any StatefulRecommender, manifest: DatasetManifest, directory: String, settings: TrainSettings) throws {
        self.model = model
        self.manifest = manifest
        self.directory = directory
        self.settings = settings
        var tables: [UInt8: EmbeddingTableConfig] = [:]
        for (t, dim) in model.tableDims {
            tables[t] = EmbeddingTableConfig(name: "table\(t)", dim: dim, initializer: .normal(scale: settings.initScale),
                                             optimizer: .adam(AdamConfig(lr: settings.sparseLearningRate)), seed: settings.seed)
        }
        let shard = try ParameterShard(rank: 0, serverCount: 1, tableConfigs: tables, initialDense: model.denseParameters(),
                                       denseOptimizer: .adam(AdamConfig(lr: settings.denseLearningRate)),
                                       tableOptions: EmbeddingTableOptions(stripes: 4, hugePages: false))
        access = LocalParameterAccess(shard: shard)
    }

    /// Pulls every row the batch reads.
    func pull(_ batch: ModelBatch) async throws -> BatchRows {
        var tables: [UInt8: BatchRows.Table] = [:]
        for (t, keys) in batch.uniqueKeysByTable() {
            let dim = model.tableDims[t]!
            tables[t] = BatchRows.Table(keys: keys, dim: dim, values: try await access.pullRows(table: t, keys: keys))
        }
        return BatchRows(tables: tables)
    }

    /// Trains for `settings.epochs` (or `maxSteps`) over the train split, records shuffled per
    /// epoch with a seeded generator.
    mutating func train() async throws {
        let shards = try manifest.open(.train, directory: directory)
        var rng = SeededGenerator(seed: settings.seed ^ 0x5EED)
        var sample = SampleBatch(schema: manifest.schema)
        for _ in 0..<settings.epochs {
            for shard in shards {
                var order = Array(0..<shard.count)
                order.shuffle(using: &rng)
                var start = 0
                while start < order.count {
                    if settings.maxSteps > 0 && step >= settings.maxSteps { return }
                    let end = min(start + settings.batchSize, order.count)
                    sample.fill(from: shard, records: order[start..<end])
                    try await trainStep(sample)
                    start = end
                }
            }
        }
    }

    /// One synchronous step on `sample`.
    mutating func trainStep(_ sample: SampleBatch) async throws {
        let batch = try ModelBatch(sampleBatch: sample, labelName: settings.labelName, fields: model.inputFields)
        let rows = try await pull(batch)
        model.loadDenseParameters(try await access.pullDense())
        let out = model.trainStep(batch, rows: rows)
        step += 1
        lossHistory.append(out.loss)
        for (t, grads) in out.rowGradients {
            try await access.pushRowGradients(table: t, keys: rows.tables[t]!.keys, gradients: grads, clock: step)
        }
        try await access.pushDenseGradients(out.denseGradient, clock: step)
    }

    /// AUC, GAUC and log loss of the current parameters on `split` (inference mode).
    mutating func evaluate(_ split: Split = .test) async throws -> EvalResult {
        model.loadDenseParameters(try await access.pullDense())
        var scores: [Float] = [], labels: [Float] = [], users: [UInt64] = []
        var sample = SampleBatch(schema: manifest.schema)
        for shard in try manifest.open(split, directory: directory) {
            var start = 0
            while start < shard.count {
                let end = min(start + settings.evalBatchSize, shard.count)
                sample.fill(from: shard, records: start..<end)
                let batch = try ModelBatch(sampleBatch: sample, labelName: settings.labelName, fields: model.inputFields)
                scores += model.predict(batch, rows: try await pull(batch))
                labels += batch.labels
                users += batch.users
                start = end
            }
        }
        return EvalResult(auc: Metrics.auc(scores: scores, labels: labels) ?? .nan,
                          gauc: Metrics.gauc(scores: scores, labels: labels, users: users) ?? .nan,
                          logLoss: Metrics.logLoss(probabilities: scores, labels: labels), records: scores.count)
    }
}

/// Paths of the repository's bundled data and scratch directories for tests.
enum TestData {
    /// The repository root (three levels above this file).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A fresh, unique scratch directory path (not created).
    static func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("heed-models-\(name)-\(UUID().uuidString)").path
    }

    /// Prepares `dataset` from `input` (CTR protocol) into a fresh scratch directory.
    static func prepare(_ dataset: PrepareOptions.Dataset, input: String, split: PrepareOptions.SplitRule = .leaveOneOut,
                        maxLength: Int = 50) throws -> (manifest: DatasetManifest, directory: String) {
        var o = PrepareOptions(dataset: dataset, input: input, output: scratch(dataset.rawValue))
        o.split = split
        o.maxLength = maxLength
        return (try Preparer.prepare(o), o.output)
    }
}
