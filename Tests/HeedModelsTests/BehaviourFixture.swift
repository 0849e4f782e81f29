import HeedCore
import Testing
import HeedLayers
@testable import HeedModels

/// The base/DIN variants the model tests run.
enum BehaviourVariant: String, CaseIterable, CustomTestStringConvertible {
    case baseSum, baseMean, dinRaw, dinSoftmax

    var pooling: BehaviourPooling {
        switch self {
        case .baseSum: .pooled(.sum)
        case .baseMean: .pooled(.mean)
        case .dinRaw: .targetAttention(.raw)
        case .dinSoftmax: .targetAttention(.softmax)
        }
    }

    var testDescription: String { rawValue }
}

/// A small hand-made batch with every padding case, for gradient checks.
///
/// Five samples, history length 4, embedding width 3, tables user (1), item (2),
/// category (3). Padded positions carry REAL keys (items 7 and 8, category 4) whose rows
/// are pulled too: if a mask were ignored they would change the loss and get gradients.
/// Sample 3's history is fully padded; item 2 is a target and a behaviour (shared row).
enum BehaviourFixture {
    static let dim = 3
    static let length = 4

    static func key(_ group: UInt8, _ id: UInt64) -> UInt64 { FeatureKey(group: group, id: id).rawValue }

    static let fields = BehaviourFields(
        user: .init(name: "user", table: 1), item: .init(name: "item", table: 2),
        category: .init(name: "category", table: 3), histItems: .init(name: "hist_items", table: 2),
        histCategories: .init(name: "hist_categories", table: 3))

    /// (item id, category id, real?) per history position.
    static let histories: [[(UInt64, UInt64, Bool)]] = [
        [(2, 2, true), (3, 3, true), (4, 1, true), (7, 4, false)],
        [(1, 1, true), (5, 2, true), (7, 4, false), (8, 4, false)],
        [(1, 1, true), (2, 2, true), (5, 2, true), (6, 3, true)],
        [(8, 4, false), (8, 4, false), (7, 4, false), (7, 4, false)],
        [(3, 3, true), (8, 4, false), (7, 4, false), (8, 4, false)],
    ]
    static let targets: [(item: UInt64, category: UInt64, user: UInt64)] = [(1, 1, 1), (2, 2, 2), (3, 3, 1), (5, 2, 3), (6, 3, 2)]
    static let labels: [Float] = [1, 0, 1, 0, 1]

    /// Keys that occur only at padded positions, per table.
    static let paddedOnlyKeys: [UInt8: [UInt64]] = [2: [key(2, 7), key(2, 8)], 3: [key(3, 4)]]

    static func batch() -> ModelBatch {
        let b = targets.count
        func single(_ group: UInt8, _ ids: [UInt64]) -> SparseField {
            SparseField(length: 1, keys: ids.map { key(group, $0) }, mask: [Float](repeating: 1, count: ids.count))
        }
        let flat = histories.flatMap { $0 }
        let mask = flat.map { $0.2 ? Float(1) : 0 }
        return ModelBatch(size: b, labels: labels, users: targets.map(\.user), fields: [
            "user": single(1, targets.map(\.user)),
            "item": single(2, targets.map(\.item)),
            "category": single(3, targets.map(\.category)),
            "hist_items": SparseField(length: length, keys: flat.map { key(2, $0.0) }, mask: mask),
            "hist_categories": SparseField(length: length, keys: flat.map { key(3, $0.1) }, mask: mask),
        ])
    }

    /// Every key of the batch (padded ones included), per table, with random rows.
    static func rows<T: Real>(seed: UInt64 = 50) -> [UInt8: TableRows<T>] {
        let batch = batch()
        var keys: [UInt8: Set<UInt64>] = [:]
        for field in batch.fields.values {
            for k in field.keys { keys[FeatureKey(rawValue: k).group, default: []].insert(k) }
        }
        var out: [UInt8: TableRows<T>] = [:]
        for (t, set) in keys {
            let sorted = set.sorted()
            out[t] = TableRows(keys: sorted, values: GradientCheck.random([sorted.count, dim], seed: seed + UInt64(t), scale: 0.8).converted())
        }
        return out
    }

    /// The same rows as the cluster moves them (Float).
    static func batchRows(_ rows: [UInt8: TableRows<Double>]) -> BatchRows {
        BatchRows(tables: rows.mapValues { BatchRows.Table(keys: $0.keys, dim: dim, values: $0.values.data.map { Float($0) }) })
    }

    static let config: ModelConfig = {
        var c = ModelConfig()
        c.embeddingDim = dim
        c.hidden = [5, 4]
        c.attentionHidden = [4, 3]
        return c
    }()

    /// A network with every dense parameter random (non-zero biases and slopes, so a dropped
    /// term changes the result).
    static func network<T: Real>(_ variant: BehaviourVariant, _ activation: ActivationKind) -> BehaviourNetwork<T> {
        var rng = SeededGenerator(seed: 7)
        var net = BehaviourNetwork<T>(fields: fields, dim: dim, hidden: config.hidden, attentionHidden: config.attentionHidden,
                                      activation: activation, pooling: variant.pooling, generator: &rng)
        var seed: UInt64 = 200
        net.visitParameters { _, value, _ in
            value = GradientCheck.random(value.shape, seed: seed, scale: 0.7).converted()
            seed += 1
        }
        return net
    }
}
