import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedServer
import HeedWorker

/// `heed eval`: metrics of a saved model on a split of a prepared dataset.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a saved model (heed train --save-model) on a prepared dataset: AUC, GAUC, log loss, accuracy/precision/recall/F1 at 0.5; HR@K, NDCG@K, MRR for next-item models; or compare two (--compare A B).",
        discussion: "The model's files are checked against its manifest's checksums and loaded into one in-process shard, whatever number of servers wrote them.")

    @Option(help: "Saved model directory (holds manifest.json and shard-<rank>.bin files).") var model: String?
    @Option(help: "Prepared dataset (default: the one the model was trained on).") var data: String?
    @Option(help: "Split to evaluate: test or valid.") var split: String = "test"
    @Option(help: "Samples per evaluation batch.") var batchSize: Int = 1024
    @Option(help: "Write the metrics (JSON) here.") var metricsOut: String?
    @OptionGroup var comparison: CompareOptions
    @Option(help: "Next-item models: sampled negatives per record for the sampled protocol (SASRec: 100).") var negatives: Int = 100
    @Flag(help: "Next-item models: rank the user's history items too (default: left out, the S3-Rec protocol).") var keepHistory = false
    @Option(help: "Next-item models: seed of the sampled negatives.") var evalSeed: UInt64 = 1
    @Option(help: "Next-item models: how the sampled negatives are drawn: distinct (outside every item of the user) or sasrec-code (as the SASRec authors' util.py: with replacement, outside the training items only).") var negativeDraw: String = "distinct"
    @Option(help: "Next-item models: users with at most this many interactions (history + the predicted item) count as cold.") var coldMax: Int = 5
    @Option(help: "hybrid models: the anchor's weight in the cross-sell / upsell / alternatives lists, overriding the saved anchor_weight (both models with --compare).") var anchorWeight: Double?
    @Option(help: "hybrid models with a fixed gate: the weights of mf, seq, mlp in the lists, comma-separated, overriding the saved list_gate_weights (both models with --compare).") var listGateWeights: String?
    @Option(help: "hybrid models: write the cross-sell / upsell / alternatives figures (JSON, with per-record values) here.") var listsOut: String?

    func run() throws {
        guard let split = Split(rawValue: split), split != .train else {
            throw ValidationError("--split must be test or valid, not \(self.split)")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be >= 1") }
        if !comparison.compare.isEmpty { return try runComparison(split: split) }
        guard let model = self.model else { throw ValidationError("--model is required (or --compare A B)") }
        guard negatives >= 1, coldMax >= 1 else { throw ValidationError("--negatives and --cold-max must be >= 1") }
        var options = NextItemEvaluationOptions()
        options.sampledNegatives = negatives
        options.excludeHistory = !keepHistory
        options.seed = evalSeed
        guard let draw = SampledNegativeDraw(rawValue: negativeDraw) else {
            throw ValidationError("--negative-draw must be distinct or sasrec-code, not \(negativeDraw)")
        }
        options.sampledDraw = draw
        // Leave-one-out: a test record's last history item is the validation answer, not a training item.
        options.heldOutHistoryItems = split == .test ? 1 : 0
        options.coldMaxInteractions = coldMax
        let result = LockedBox<(SavedModel, Evaluation)?>(nil)
        let (data, batchSize, nextItem) = (self.data, self.batchSize, options)
        try runRole("eval") {
            result.set(try await SavedModelEvaluation.evaluate(modelDirectory: model, data: data, split: split, batchSize: batchSize,
                                                               nextItem: nextItem))
        }
        guard let (saved, evaluation) = result.get() else { throw ExitCode(1) }
        print("\(model): \(saved.config.model.name) after \(saved.step) steps (\(saved.servers) servers) on \(data ?? saved.config.data.path)\n\(split.rawValue) \(evaluation.summary)")
        if let path = metricsOut { try writeJSONAtomically(evaluation, to: path) }
        if saved.config.model.name == "hybrid" {
            try Self.shopLists(model: model, data: data, split: split, coldMax: coldMax, out: listsOut,
                               overrides: ListOverrides(anchorWeight: anchorWeight, listGateWeights: try listGateWeights.map { try parseWeights($0, flag: "--list-gate-weights") }))
        }
    }
}

/// Loads a saved model into one local shard and evaluates it the way training does.
enum SavedModelEvaluation {
    static func evaluate(modelDirectory: String, data: String?, split: Split, batchSize: Int,
                         nextItem: NextItemEvaluationOptions = NextItemEvaluationOptions()) async throws -> (SavedModel, Evaluation) {
        let saved = try SavedModel.load(directory: modelDirectory)
        let files = try saved.readFiles(directory: modelDirectory)
        var config = saved.config
        if let data { config.data.path = data }
        config.cluster.servers = 1
        config.cluster.workers = 1
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (model, makeBatch) = try ModelCatalog.make(config, schema: manifest.schema)
        guard model.tableDims == saved.config.layout.tableDims, model.denseParameterCount == saved.config.layout.denseCount else {
            throw HeedError(.config, "\(config.data.path) does not fit the model in \(modelDirectory): its tables \(model.tableDims.sorted { $0.key < $1.key }) and \(model.denseParameterCount) dense values differ from the model's \(saved.config.layout.tableDims.sorted { $0.key < $1.key }) and \(saved.config.layout.denseCount)")
        }
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: SavedModel.denseVector(of: files))
        try shard.restore(from: files, slotCount: saved.slots)
        let trainer = Trainer(model: model, params: LocalParameterAccess(shard: shard), pushEveryTable: false)
        try trainer.loadModelStatistics(saved.statistics)
        if let next = model as? any NextItemModel {
            // Ranked over the catalogue with the requested protocol.
            let metrics = try await NextItemEvaluation.evaluate(model: next, params: trainer.params,
                                                                shards: try manifest.open(split, directory: config.data.path), options: nextItem)
            return (saved, Evaluation(nextItem: metrics))
        }
        let plan = BatchPlan(shards: try manifest.open(split, directory: config.data.path), batchSize: batchSize)
        let loop = TrainingLoop(trainer: trainer, plan: plan, settings: .init(epochs: 1, maxSteps: 0, pipelined: false, seed: config.seed),
                                hooks: TrainingLoop.Hooks(), makeBatch: makeBatch)
        return (saved, try await loop.evaluate(plan))
    }
}

/// Writes `value` as JSON to `path` atomically, so a reader never sees a partial file.
func writeJSONAtomically<T: Encodable>(_ value: T, to path: String) throws {
    try FileOps.writeAtomically(Array(try JSONEncoder().encode(value)), to: path)
}
