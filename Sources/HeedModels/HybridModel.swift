import HeedCore
import HeedData
import HeedLayers

/// A next-item model whose candidate vectors are computed from several tables (not one raw
/// row per item): evaluation and `heed recommend` ask it for the catalogue's scorer instead
/// of pulling rows of `itemTable`. `hybrid` conforms.
public protocol ComputedItemVectors {
    /// (C × width) vectors of every catalogue item, pulled and computed with the model's
    /// current dense weights.
    func catalogScorer(params: any ParameterAccess) async throws -> ItemScorer
}

/// `hybrid`: `HybridNetwork` in Float, trained on a parameter-server cluster as a next-item
/// model (`--protocol seq`, softmax over sampled or all catalogue items).
public struct HybridModel: NextItemModel, ItemSideModel, ComputedItemVectors {
    /// The network; `HybridNetwork<Double>` with the same sizes is what the gradient checks run.
    var network: HybridNetwork<Float>
    /// Builds batches (with the user and item-side fields) and draws negatives.
    public private(set) var batcher: SASRecBatcher
    /// The catalogue's item side (categories, price levels, prices, links).
    public private(set) var side: ItemSide?
    /// β of `anchor_weight`: the anchor's weight in lists made around an anchor item.
    public let anchorWeight: Float
    /// (3) `list_gate_weights`: the fixed blend of lists made around an anchor item, or nil
    /// (lists use the next-item blend).
    public let listGateWeights: [Float]?

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: `embedding_dim` (D), `hidden` (tower widths), `max_len` (W), `loss`
    ///     (`sampled-softmax` or `softmax`), `negatives`, `sequence`, `parts`, `gate`, `gate_weights`,
    ///     `gate_history`, `part_loss_weight`, `user_row_scale`, `anchor_weight`, `mf_last_item`.
    ///   - schema: must hold `hist_items` and `item` (`--protocol seq`); `price_level` makes
    ///     the item tower read price levels.
    ///   - seed: seeds the dense weights and negatives.
    /// - Throws: `HeedError(.config)` naming the bad setting.
    public init(config: ModelConfig, schema: SampleSchema, seed: UInt64) throws {
        let loss = try NextItemLoss(config: config.loss)
        guard loss != .bce else {
            throw HeedError(.config, "model hybrid: loss must be sampled-softmax or softmax (its blend is trained with a softmax over candidates), not bce")
        }
        guard config.maxLength >= 1, config.negatives >= 1 else {
            throw HeedError(.config, "model hybrid: max_len and negatives must be >= 1 (got \(config.maxLength), \(config.negatives))")
        }
        guard ["gru", "lstm"].contains(config.sequence) else {
            throw HeedError(.config, "model hybrid: sequence must be gru or lstm, not '\(config.sequence)'")
        }
        let names = config.parts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var parts = Set<HybridPart>()
        for n in names {
            guard let p = HybridPart.allCases.first(where: { $0.name == n }) else {
                throw HeedError(.config, "model hybrid: parts must list mf, seq and/or mlp (comma-separated), not '\(config.parts)'")
            }
            parts.insert(p)
        }
        guard !parts.isEmpty else { throw HeedError(.config, "model hybrid: parts is empty") }
        guard ["learned", "fixed"].contains(config.gate) else {
            throw HeedError(.config, "model hybrid: gate must be learned or fixed, not '\(config.gate)'")
        }
        guard config.gateWeights.count == 3, config.gateWeights.allSatisfy({ $0.isFinite }) else {
            throw HeedError(.config, "model hybrid: gate_weights must be 3 finite numbers (mf, seq, mlp), got \(config.gateWeights)")
        }
        guard !config.gateHistory || config.gate == "learned" else {
            throw HeedError(.config, "model hybrid: gate_history needs gate = learned (a fixed blend reads nothing)")
        }
        guard config.partLossWeight >= 0, config.partLossWeight.isFinite else {
            throw HeedError(.config, "model hybrid: part_loss_weight must be a finite number >= 0, got \(config.partLossWeight)")
        }
        guard config.userRowScale > 0, config.userRowScale.isFinite else {
            throw HeedError(.config, "model hybrid: user_row_scale must be a finite number > 0, got \(config.userRowScale)")
        }
        guard config.anchorWeight >= 0, config.anchorWeight.isFinite else {
            throw HeedError(.config, "model hybrid: anchor_weight must be a finite number >= 0, got \(config.anchorWeight)")
        }
        anchorWeight = Float(config.anchorWeight)
        if config.listGateWeights.isEmpty {
            listGateWeights = nil
        } else {
            guard config.gate == "fixed" else {
                throw HeedError(.config, "model hybrid: list_gate_weights needs gate = fixed (a learned gate weighs the parts per user)")
            }
            guard config.listGateWeights.count == 3, config.listGateWeights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw HeedError(.config, "model hybrid: list_gate_weights must be 3 finite numbers >= 0 (mf, seq, mlp), got \(config.listGateWeights)")
            }
            listGateWeights = config.listGateWeights.map(Float.init)
        }
        var rng = SeededGenerator(seed: seed)
        network = HybridNetwork(dim: config.embeddingDim, window: config.maxLength, hidden: config.hidden, lstm: config.sequence == "lstm",
                                parts: parts, learnedGate: config.gate == "learned", fixedWeights: config.gateWeights,
                                usesPriceLevel: schema.slotIndex("price_level") != nil, gateHistory: config.gateHistory,
                                partLossWeight: config.partLossWeight, userRowScale: config.userRowScale,
                                mfLastItem: config.mfLastItem, generator: &rng)
        batcher = try HybridBatcher(schema: schema, window: config.maxLength, loss: loss, negatives: config.negatives,
                                    catalog: [], seed: KeyHash.mix64(seed ^ 0x4B1D), side: nil)
    }

    public var name: String { "hybrid" }
    public var itemTable: UInt8 { FeatureGroup.item.rawValue }
    /// Width of user and item vectors: 3D.
    public var embeddingDim: Int { network.vectorWidth }
    public var tableDims: [UInt8: Int] { network.tableDims }
    public var inputFields: [String] { ["hist_items", "item"] }
    public var denseParameterCount: Int { network.parameterCount }
    public func denseParameters() -> [Float] { network.flatParameters() }
    public mutating func loadDenseParameters(_ flat: [Float]) { network.loadFlatParameters(flat) }
    public func statistics() -> [Float] { [] }
    public mutating func loadStatistics(_ flat: [Float]) {}
    /// No attention: explanations are empty.
    public func lastAttention() -> [Float] { [] }

    public mutating func attachCatalog(_ keys: [UInt64], schema: SampleSchema) throws {
        batcher = try batcher.with(catalog: keys, schema: schema)
    }

    public mutating func attachItemSide(_ side: ItemSide) throws {
        self.side = side
        guard let b = batcher as? HybridBatcher else { preconditionFailure("hybrid: the batcher is a HybridBatcher") }
        batcher = try b.with(side: side)
    }

    /// Rows per table in the network's scalar type (no copy of the values' storage semantics).
    static func tables(_ rows: BatchRows) -> [UInt8: TableRows<Float>] {
        var out: [UInt8: TableRows<Float>] = [:]
        for (t, table) in rows.tables {
            out[t] = TableRows(keys: table.keys, values: Tensor(shape: [table.keys.count, table.dim], data: table.values))
        }
        return out
    }

    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let (loss, dRows, last) = network.trainStep(batch, rows: Self.tables(rows))
        return StepOutput(loss: loss, predictions: last, denseGradient: network.flatGradients(),
                          rowGradients: dRows.mapValues(\.data))
    }

    /// σ(score) of each record's last positive (a training-shaped batch), without updating anything.
    public mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        var copy = network
        return copy.trainStep(batch, rows: Self.tables(rows)).last
    }

    public mutating func userVectors(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        network.userVectors(batch, rows: Self.tables(rows))
    }

    /// Whether lists made around an anchor score differently from the next item.
    public var hasListScoring: Bool { anchorWeight > 0 || listGateWeights != nil }

    /// From one forward pass over the histories: (B × 3D) the next-item user vectors and the
    /// user vectors for lists made around each record's anchor item (cross-sell, upsell,
    /// alternatives): the parts blended by `listGateWeights` (when set, else the next-item
    /// blend), then `HybridNetwork.anchoredVectors` with β = `anchorWeight`.
    /// - Parameter anchors: (B × 3D) the anchors' item vectors (rows of `catalogScorer`).
    public mutating func userAndListVectors(_ batch: ModelBatch, rows: BatchRows, anchors: [Float]) -> (next: [Float], list: [Float]) {
        let (next, parts) = network.userVectorsAndParts(batch, rows: Self.tables(rows))
        let blended = listGateWeights.map { network.blend(parts: parts, weights: $0) } ?? next
        return (next, HybridNetwork<Float>.anchoredVectors(users: blended, anchors: anchors, weight: anchorWeight, dim: network.dim))
    }

    public func catalogScorer(params: any ParameterAccess) async throws -> ItemScorer {
        guard let side else { throw HeedError(.config, "hybrid: no item side attached") }
        var tables: [UInt8: TableRows<Float>] = [:]
        var wanted: [UInt8: [UInt64]] = [itemTable: side.keys, FeatureGroup.category.rawValue: Array(Set(side.categories)).sorted()]
        if network.usesPriceLevel, let levels = side.priceLevels { wanted[FeatureGroup.priceLevel.rawValue] = Array(Set(levels)).sorted() }
        for (t, keys) in wanted {
            let dim = tableDims[t]!
            var values: [Float] = []
            values.reserveCapacity(keys.count * dim)
            var start = 0
            while start < keys.count {
                let end = min(start + 8192, keys.count)
                values += try await params.pullRows(table: t, keys: Array(keys[start..<end]))
                start = end
            }
            tables[t] = TableRows(keys: keys, values: Tensor(shape: [keys.count, dim], data: values))
        }
        var net = network
        let vectors = net.itemVectors(keys: side.keys, categories: side.categories,
                                      levels: network.usesPriceLevel ? side.priceLevels : nil, rows: tables)
        return ItemScorer(keys: side.keys, dim: embeddingDim, rows: vectors)
    }
}
