import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedServer
import HeedWorker

/// The options of `heed eval --compare A B` (offline A/B of two saved models).
struct CompareOptions: ParsableArguments {
    @Option(name: .long, parsing: .upToNextOption,
            help: "Offline A/B: two saved model directories, A then B, scored on the same split; prints B − A of AUC, GAUC and log loss with a paired bootstrap interval (by user). Hybrid models: each side may be several runs of one config (seeds), comma-separated (A1,A2,A3 B1,B2,B3), compared by their mean with a two-level bootstrap (records and runs).")
    var compare: [String] = []

    /// Each side's run directories: `A1,A2 B1` → [[A1, A2], [B1]].
    var sides: [[String]] { compare.map { $0.split(separator: ",").map(String.init) } }
    @Option(name: .long, help: "Bootstrap resamples for --compare.") var resamples: Int = 1000
    @Option(name: .long, help: "Seed of the bootstrap's user draws for --compare.") var bootstrapSeed: UInt64 = 1
    @Option(name: .long, help: "Write the --compare result (JSON) here.") var out: String?
}

/// What `heed eval --compare` prints and writes.
struct ComparisonReport: Codable {
    /// The saved model directories and their model names, A then B.
    var modelA: String, modelB: String, nameA: String, nameB: String
    var data: String, split: String
    var samples: Int, users: Int
    var resamples: Int, seed: UInt64, confidence: Double
    /// Accuracy/precision/recall/F1 at 0.5 of A and B on all samples (no interval).
    var thresholdA: ThresholdMetrics?, thresholdB: ThresholdMetrics?
    /// AUC, GAUC, log loss: A, B, B − A and its interval.
    var metrics: [PairedBootstrap.Comparison]

    /// A Markdown table (differences are B − A; lower log loss is better).
    var markdown: String {
        func f(_ x: Double?, sign: Bool = false) -> String { x.map { String(format: sign ? "%+.4f" : "%.4f", $0) } ?? "n/a" }
        var lines = ["A = \(modelA) (\(nameA)), B = \(modelB) (\(nameB)); \(split) split of \(data): \(samples) samples, \(users) users; paired bootstrap by user, \(resamples) resamples, seed \(seed)", "",
                     "| metric | A | B | B − A | \(Int((confidence * 100).rounded()))% interval |", "|---|---|---|---|---|"]
        for m in metrics {
            lines.append("| \(m.metric) | \(f(m.a)) | \(f(m.b)) | \(f(m.difference, sign: true)) | [\(f(m.lower, sign: true)), \(f(m.upper, sign: true))] |")
        }
        lines.append("")
        lines.append("At 0.5: A \(thresholdA?.summary ?? "n/a"); B \(thresholdB?.summary ?? "n/a")")
        return lines.joined(separator: "\n")
    }
}

/// A saved model's probabilities for every sample of a split, in file order.
struct SavedModelScores: Sendable {
    var saved: SavedModel
    var data: String
    var predictions: [Float], labels: [Float], users: [UInt64]

    /// Loads the model into one local shard, as `SavedModelEvaluation` does, and scores `split`.
    static func score(modelDirectory: String, data: String?, split: Split, batchSize: Int) async throws -> SavedModelScores {
        let saved = try SavedModel.load(directory: modelDirectory)
        let files = try saved.readFiles(directory: modelDirectory)
        var config = saved.config
        if let data { config.data.path = data }
        config.cluster.servers = 1
        config.cluster.workers = 1
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (model, makeBatch) = try ModelCatalog.make(config, schema: manifest.schema)
        guard model.tableDims == saved.config.layout.tableDims, model.denseParameterCount == saved.config.layout.denseCount else {
            throw HeedError(.config, "\(config.data.path) does not fit the model in \(modelDirectory) (tables or dense size differ)")
        }
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: SavedModel.denseVector(of: files))
        try shard.restore(from: files, slotCount: saved.slots)
        let trainer = Trainer(model: model, params: LocalParameterAccess(shard: shard), pushEveryTable: false)
        try trainer.loadModelStatistics(saved.statistics)
        let plan = BatchPlan(shards: try manifest.open(split, directory: config.data.path), batchSize: batchSize)
        var out = SavedModelScores(saved: saved, data: config.data.path, predictions: [], labels: [], users: [])
        for b in plan.batches(epoch: 0, seed: 0, shuffle: false) {
            let batch = makeBatch(plan.gather(b))
            out.predictions += try await trainer.predict(batch)
            out.labels += batch.labels
            out.users += batch.users
        }
        return out
    }
}

extension EvalCommand {
    /// `heed eval --compare A B`: scores both models on the same split and prints the paired
    /// bootstrap of B − A.
    func runComparison(split: Split) throws {
        let directories = comparison.compare
        guard directories.count == 2 else {
            throw ValidationError("--compare takes two saved model directories (A B), got \(directories.count)")
        }
        guard comparison.resamples >= 1 else { throw ValidationError("--resamples must be >= 1") }
        let sides = comparison.sides
        guard sides.allSatisfy({ !$0.isEmpty }) else { throw ValidationError("--compare: a side names no model directory") }
        if Self.comparesHybrids(sides.flatMap { $0 }) { return try runShopListComparison(sides: sides, split: split) }
        guard sides.allSatisfy({ $0.count == 1 }) else {
            throw ValidationError("--compare takes several runs per side (comma-separated) for hybrid models only; \(directories.joined(separator: " ")) are not all hybrid models")
        }
        let scored = LockedBox<[SavedModelScores]>([])
        let (data, batchSize) = (self.data, self.batchSize)
        try runRole("eval") {
            for directory in directories {
                let s = try await SavedModelScores.score(modelDirectory: directory, data: data, split: split, batchSize: batchSize)
                scored.update { $0.append(s) }
            }
        }
        let both = scored.get()
        let (a, b) = (both[0], both[1])
        guard a.labels == b.labels, a.users == b.users else {
            throw HeedError(.config, "the two models were scored on different samples (\(a.data): \(a.labels.count), \(b.data): \(b.labels.count)); pass --data to score both on one prepared dataset")
        }
        let confidence = 0.95
        let report = ComparisonReport(
            modelA: directories[0], modelB: directories[1], nameA: Self.describe(a.saved.config.model), nameB: Self.describe(b.saved.config.model),
            data: a.data, split: split.rawValue, samples: a.labels.count, users: Set(a.users).count,
            resamples: comparison.resamples, seed: comparison.bootstrapSeed, confidence: confidence,
            thresholdA: ThresholdMetrics(probabilities: a.predictions, labels: a.labels),
            thresholdB: ThresholdMetrics(probabilities: b.predictions, labels: b.labels),
            metrics: PairedBootstrap.compare(a: a.predictions, b: b.predictions, labels: a.labels, users: a.users,
                                             resamples: comparison.resamples, seed: comparison.bootstrapSeed, confidence: confidence))
        print(report.markdown)
        if let path = comparison.out { try writeJSONAtomically(report, to: path) }
    }

    /// The model's name, with what tells twins apart: the pooling of `self-attention`, the
    /// fusion (or no price features) of `attention-price`.
    static func describe(_ model: ModelConfig) -> String {
        switch model.name {
        case "self-attention": "\(model.name), \(model.pooling) pooling"
        case "attention-price": model.priceFeatures ? "\(model.name), \(model.priceFusion) fusion" : "\(model.name), no price features"
        case "long-term-interest": "\(model.name), \(model.encoder)\(model.useNeighbors ? "" : ", no neighbours")\(model.useTags ? "" : ", no tags")"
        default: model.name
        }
    }
}
