import HeedCore
import HeedModels

/// Runs a model's training and evaluation steps against parameters that live anywhere
/// (`ParameterAccess`): in this process for the reference run, on servers otherwise.
public final class Trainer: @unchecked Sendable {
    /// Rows and dense weights fetched for one batch.
    public struct Fetched: Sendable {
        public var batch: ModelBatch
        public var rows: BatchRows
        public var dense: [Float]
    }

    /// The model (mutated by steps; only the training task touches it).
    public private(set) var model: any RecommenderModel
    /// Where parameters live.
    public let params: any ParameterAccess
    /// Row dimension per table, captured once so fetches on other tasks never touch `model`.
    public let tableDims: [UInt8: Int]
    /// Push every table and the dense vector every step even when empty (synchronous mode,
    /// where servers count one push per worker per step).
    public let pushEveryTable: Bool
    /// DIN's mini-batch aware L2 on the rows each batch uses; nil = none.
    public var regularizer: MiniBatchRegularizer?
    /// Tables pulled but never pushed (`FrozenTables`, e.g. frozen text vectors).
    public let frozenTables: Set<UInt8>

    /// The two waits of a step on the parameters' home.
    public enum Phase: Sendable {
        /// A batch's fetch: every table's rows and the dense vector, concurrently.
        case pull
        /// A step's pushes: every table's row gradients and the dense gradient, concurrently.
        case push
    }

    /// Receives each pull's and push's wall time in seconds (worker metrics); set before training.
    public var timing: (@Sendable (Phase, Double) -> Void)?

    public init(model: any RecommenderModel, params: any ParameterAccess, pushEveryTable: Bool) {
        self.model = model
        self.params = params
        self.tableDims = model.tableDims
        self.pushEveryTable = pushEveryTable
        self.frozenTables = (model as? any FrozenTables)?.frozenTables ?? []
    }

    /// Pulls the unique rows of every table the model reads, and the dense vector, concurrently.
    public func fetch(_ batch: ModelBatch) async throws -> Fetched {
        let began = ContinuousClock.now
        defer { timing?(.pull, Self.seconds(since: began)) }
        let keysByTable = batch.uniqueKeysByTable().filter { tableDims[$0.key] != nil }
        let params = params, dims = tableDims
        async let dense = params.pullDense()
        var tables: [UInt8: BatchRows.Table] = [:]
        try await withThrowingTaskGroup(of: (UInt8, [Float]).self) { group in
            for (t, keys) in keysByTable {
                group.addTask { (t, try await params.pullRows(table: t, keys: keys)) }
            }
            for try await (t, values) in group {
                tables[t] = BatchRows.Table(keys: keysByTable[t]!, dim: dims[t]!, values: values)
            }
        }
        return Fetched(batch: batch, rows: BatchRows(tables: tables), dense: try await dense)
    }

    /// Forward and backward on fetched parameters, then pushes the gradients.
    /// - Parameter clock: this worker's step number (starting at 1), sent with pushes.
    public func step(_ fetched: Fetched, clock: Int) async throws -> StepOutput {
        model.loadDenseParameters(fetched.dense)
        var trained = model.trainStep(fetched.batch, rows: fetched.rows)
        regularizer?.addGradients(rows: fetched.rows, to: &trained.rowGradients)
        for t in frozenTables { trained.rowGradients[t] = nil }
        let out = trained
        let params = params
        let began = ContinuousClock.now
        defer { timing?(.push, Self.seconds(since: began)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in tableDims.keys.sorted() where !frozenTables.contains(t) {
                let keys = fetched.rows.tables[t]?.keys ?? []
                let grads = out.rowGradients[t] ?? []
                guard !keys.isEmpty || pushEveryTable else { continue }
                group.addTask { try await params.pushRowGradients(table: t, keys: keys, gradients: grads, clock: clock) }
            }
            group.addTask { try await params.pushDenseGradients(out.denseGradient, clock: clock) }
            try await group.waitForAll()
        }
        return out
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// The model's non-learned state (Dice moving averages), empty for models without any.
    public var modelStatistics: [Float] { (model as? any StatefulRecommender)?.statistics() ?? [] }

    /// Restores `modelStatistics` (from a saved model, before evaluation).
    public func loadModelStatistics(_ flat: [Float]) throws {
        guard var stateful = model as? any StatefulRecommender else {
            guard flat.isEmpty else { throw HeedError(.corrupt, "\(flat.count) model statistics for a model that keeps none") }
            return
        }
        guard flat.count == stateful.statistics().count else {
            throw HeedError(.corrupt, "\(flat.count) model statistics; the \(model.name) model keeps \(stateful.statistics().count)")
        }
        stateful.loadStatistics(flat)
        model = stateful
    }

    /// Predictions for a batch with the current parameters (no pushes).
    public func predict(_ batch: ModelBatch) async throws -> [Float] {
        let fetched = try await fetch(batch)
        model.loadDenseParameters(fetched.dense)
        return model.predict(fetched.batch, rows: fetched.rows)
    }
}

/// Scores of one evaluation pass and the metrics computed from them.
public struct Evaluation: Codable, Sendable {
    public var samples: Int
    public var auc: Double?
    public var gauc: Double?
    public var logLoss: Double
    /// Accuracy, precision, recall, F1 at the 0.5 threshold; nil for no samples.
    public var atThreshold: ThresholdMetrics?
    /// Ranking figures of a next-item model (then AUC, GAUC and log loss are absent).
    public var nextItem: NextItemMetrics?

    /// Metrics of predictions against labels, users for GAUC.
    public init(predictions: [Float], labels: [Float], users: [UInt64]) {
        samples = predictions.count
        auc = Metrics.auc(scores: predictions, labels: labels)
        gauc = Metrics.gauc(scores: predictions, labels: labels, users: users)
        // -1 marks "no samples": JSON has no NaN.
        logLoss = predictions.isEmpty ? -1 : Metrics.logLoss(probabilities: predictions, labels: labels)
        atThreshold = ThresholdMetrics(probabilities: predictions, labels: labels)
    }

    /// The evaluation of a next-item model.
    public init(nextItem: NextItemMetrics) {
        samples = nextItem.full.records
        logLoss = -1
        self.nextItem = nextItem
    }

    /// One line for logs (several for next-item figures).
    public var summary: String {
        if let nextItem { return nextItem.summary }
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        return "samples \(samples)  AUC \(f(auc))  GAUC \(f(gauc))  logloss \(f(logLoss))" + (atThreshold.map { "  " + $0.summary } ?? "")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
