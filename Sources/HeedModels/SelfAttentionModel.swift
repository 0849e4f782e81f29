import HeedCore
import HeedData
import HeedLayers

/// The `self-attention` click/purchase model of source document 2: multi-head self-attention
/// over the behaviour sequence (items, categories, event types, time gaps), attention-weighted
/// pooling with a learned query (or, as the twin without attention weights, mean pooling),
/// then an MLP trained with binary cross-entropy on the click label. See
/// `SelfAttentionModelNetwork` for the maths.
public struct SelfAttentionModel: StatefulRecommender {
    /// The network, in Float; `SelfAttentionModelNetwork<Double>` with the same fields is what
    /// the gradient checks run.
    var network: SelfAttentionModelNetwork<Float>

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: embedding width (also the attention width), heads, MLP sizes, activation,
    ///     pooling (`attention` or `mean`), `initScale` (of the recency embeddings too).
    ///   - schema: the prepared data's slots.
    ///   - useUser: embed the user id when the data has one.
    ///   - seed: seeds the initial dense weights.
    /// - Throws: `HeedError(.config)` for an unknown pooling or activation, heads that do not
    ///   divide the embedding width, or a schema lacking a slot the model needs.
    init(config: ModelConfig, schema: SampleSchema, useUser: Bool, seed: UInt64) throws {
        let model = "self-attention"
        guard let pooling = SelfAttentionPooling(rawValue: config.pooling) else {
            throw HeedError(.config, "model \(model): pooling must be attention or mean, not \(config.pooling)")
        }
        guard config.heads >= 1, config.embeddingDim % config.heads == 0 else {
            throw HeedError(.config, "model \(model): heads (\(config.heads)) must divide embedding_dim (\(config.embeddingDim))")
        }
        let fields = try SelfAttentionFields(schema: schema, model: model, useUser: useUser)
        let maxLength = schema.slots[schema.slotIndex("hist_items")!].maxLength
        guard maxLength >= 1 else {
            throw HeedError(.config, "model \(model) needs a history length of at least 1, the dataset's hist_items has \(maxLength)")
        }
        self.init(config: config, fields: fields, maxLength: maxLength, activation: try ModelFactory.activation(config, model: model),
                  pooling: pooling, seed: seed)
    }

    /// A model reading `fields` (tests and custom schemas).
    init(config: ModelConfig, fields: SelfAttentionFields, maxLength: Int, activation: ActivationKind,
         pooling: SelfAttentionPooling, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = SelfAttentionModelNetwork(fields: fields, dim: config.embeddingDim, maxLength: maxLength, heads: config.heads,
                                            hidden: config.hidden, activation: activation, pooling: pooling,
                                            positionScale: config.initScale, generator: &rng)
    }

    public var name: String { "self-attention" }
    public var tableDims: [UInt8: Int] { network.tableDims }
    /// The slots the model reads (the fields a `ModelBatch` for it must hold).
    public var inputFields: [String] { network.fields.names }
    public var denseParameterCount: Int { network.parameterCount }
    public func denseParameters() -> [Float] { network.flatParameters() }
    public mutating func loadDenseParameters(_ flat: [Float]) { network.loadFlatParameters(flat) }

    /// One training step: loss, probabilities, the flat dense gradient and the row gradients
    /// of every read table present in `rows`.
    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let wrapped = tableRows(rows)
        let (loss, grads) = network.trainStep(batch, rows: wrapped)
        var rowGradients: [UInt8: [Float]] = [:]
        for (t, g) in grads where wrapped[t] != nil { rowGradients[t] = g.data }
        return StepOutput(loss: loss, predictions: probabilities(), denseGradient: network.flatGradients(), rowGradients: rowGradients)
    }

    /// Inference-mode forward (Dice running statistics); returns (B) probabilities.
    public mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        network.forward(batch, rows: tableRows(rows), training: false)
        return probabilities()
    }

    /// Dice running statistics in a fixed order (empty with other activations).
    public func statistics() -> [Float] { network.flatStatistics() }
    /// Restores `statistics()` output.
    public mutating func loadStatistics(_ flat: [Float]) { network.loadFlatStatistics(flat) }

    /// The pooling weight of every behaviour from an inference forward (which behaviours drew
    /// attention): (B × L) row-major, summing to one over each sample's real behaviours, 0 at
    /// padding. Empty with mean pooling.
    public mutating func attentionWeights(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        network.forward(batch, rows: tableRows(rows), training: false)
        return network.pooling == .attention ? network.weights.data : []
    }

    /// The read tables' rows of `rows`, wrapped without copying the values.
    private func tableRows(_ rows: BatchRows) -> [UInt8: TableRows<Float>] {
        var out: [UInt8: TableRows<Float>] = [:]
        for t in network.fields.tables {
            guard let table = rows.tables[t] else { continue }
            precondition(table.dim == network.dim, "table \(t) was pulled with dim \(table.dim), the model uses \(network.dim)")
            out[t] = TableRows(keys: table.keys, values: Tensor(shape: [table.keys.count, network.dim], data: table.values))
        }
        return out
    }

    /// (B) sigmoid of the last logits.
    private func probabilities() -> [Float] { network.logits.data.map { sigmoid($0) } }
}
