import Foundation
import HeedCore
import HeedLayers
import Testing
@testable import HeedModels

/// The fixture `scripts/reference-models.py` writes: a fixed batch, fixed weights and what
/// one training step of base/DIN must give, computed independently in NumPy (float64).
/// The layout is documented in the script (`FIXTURE_LAYOUT`) and in the JSON's `layout` key.
struct ReferenceFixture: Decodable {
    struct Config: Decodable {
        var dim: Int
        var hidden: [Int]
        var attention_hidden: [Int]
        var dice_epsilon: Double
        var dice_momentum: Double
    }

    struct Batch: Decodable {
        var labels: [Float]
        var user: [UInt64], item: [UInt64], category: [UInt64]
        /// (B × L) ids; padded positions carry real ids.
        var hist_items: [[UInt64]], hist_categories: [[UInt64]]
        /// (B × L) 1 = real.
        var mask: [[Float]]
    }

    struct Table: Decodable {
        /// (U) raw ids in id order.
        var ids: [UInt64]
        /// (U × D) rows aligned with `ids`.
        var values: [[Double]]
    }

    struct L2: Decodable {
        var lambda: Double
        /// group → raw id → occurrences.
        var counts: [String: [String: UInt32]]
    }

    struct Expected: Decodable {
        var logits: [Double], probabilities: [Double], loss: Double
        var dense_gradient: [Double]
        /// group → (U × D) aligned with the fixture table's `ids`.
        var row_gradients: [String: [[Double]]]
        var statistics_after: [Double]
        var inference_probabilities: [Double]
        var attention_weights: [[Double]]?
        var l2_row_gradients: [String: [[Double]]]
        var l2_penalty: Double
    }

    struct Case: Decodable, CustomTestStringConvertible {
        var name: String
        var model: String
        var pooling: String?
        var weighting: String?
        var activation: String
        var dense: [Double]
        var statistics_before: [Double]
        var expected: Expected
        var testDescription: String { name }

        var behaviourPooling: BehaviourPooling {
            model == "din" ? .targetAttention(TargetAttentionWeighting(rawValue: weighting!)!) : .pooled(PoolingMode(rawValue: pooling!)!)
        }
        var activationKind: ActivationKind { ActivationKind(rawValue: activation)! }
    }

    var config: Config
    var batch: Batch
    var tables: [String: Table]
    var l2: L2
    var cases: [Case]

    /// The committed fixture (read by path: tests run from the source tree).
    static let shared: ReferenceFixture = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/reference-models.json")
        do {
            return try JSONDecoder().decode(ReferenceFixture.self, from: Data(contentsOf: url))
        } catch {
            fatalError("reference fixture \(url.path) does not load: \(error) (regenerate with scripts/reference-models.py)")
        }
    }()

    /// Tables: user 1, item 2 (targets and behaviours), category 3.
    static let fields = BehaviourFields(
        user: .init(name: "user", table: 1), item: .init(name: "item", table: 2),
        category: .init(name: "category", table: 3), histItems: .init(name: "hist_items", table: 2),
        histCategories: .init(name: "hist_categories", table: 3))

    static func key(_ group: UInt8, _ id: UInt64) -> UInt64 { FeatureKey(group: group, id: id).rawValue }

    var modelConfig: ModelConfig {
        var c = ModelConfig()
        c.embeddingDim = config.dim
        c.hidden = config.hidden
        c.attentionHidden = config.attention_hidden
        return c
    }

    func modelBatch() -> ModelBatch {
        func single(_ group: UInt8, _ ids: [UInt64]) -> SparseField {
            SparseField(length: 1, keys: ids.map { Self.key(group, $0) }, mask: [Float](repeating: 1, count: ids.count))
        }
        let l = batch.mask[0].count
        let mask = batch.mask.flatMap { $0 }
        return ModelBatch(size: batch.labels.count, labels: batch.labels, users: batch.user, fields: [
            "user": single(1, batch.user),
            "item": single(2, batch.item),
            "category": single(3, batch.category),
            "hist_items": SparseField(length: l, keys: batch.hist_items.flatMap { $0 }.map { Self.key(2, $0) }, mask: mask),
            "hist_categories": SparseField(length: l, keys: batch.hist_categories.flatMap { $0 }.map { Self.key(3, $0) }, mask: mask),
        ])
    }

    /// Per table, the fixture's ids in feature-key order (how the worker hands rows over).
    func sortedIDs(_ group: UInt8) -> [UInt64] {
        tables[String(group)]!.ids.sorted { Self.key(group, $0) < Self.key(group, $1) }
    }

    /// A fixture per-id matrix (U × D, in id order) reordered to feature-key order, flattened.
    func keyOrdered(_ group: UInt8, _ rows: [[Double]]) -> [Double] {
        let ids = tables[String(group)]!.ids
        return sortedIDs(group).flatMap { rows[ids.firstIndex(of: $0)!] }
    }

    func tableRows() -> [UInt8: TableRows<Double>] {
        var out: [UInt8: TableRows<Double>] = [:]
        for g: UInt8 in [1, 2, 3] {
            let ids = sortedIDs(g)
            out[g] = TableRows(keys: ids.map { Self.key(g, $0) },
                               values: Tensor(shape: [ids.count, config.dim], data: keyOrdered(g, tables[String(g)]!.values)))
        }
        return out
    }

    func batchRows() -> BatchRows {
        BatchRows(tables: tableRows().mapValues {
            BatchRows.Table(keys: $0.keys, dim: config.dim, values: $0.values.data.map { Float($0) })
        })
    }

    /// n_j keyed by feature key.
    func l2Counts() -> [UInt64: UInt32] {
        var out: [UInt64: UInt32] = [:]
        for (g, byID) in l2.counts {
            for (id, n) in byID { out[Self.key(UInt8(g)!, UInt64(id)!)] = n }
        }
        return out
    }
}
