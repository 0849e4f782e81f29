import HeedCore
import HeedData
import HeedLayers

/// The `attention-price` purchase model of source document 3: behaviour attention fused with
/// purchasing power (the item's price level against the user's spend level and household
/// income band), by concatenation or by the document's product form `f = Xᵀ a p`
/// (`[model] price_fusion`); `[model] price_features = false` is the same model without any
/// price input, the twin of the comparison. See `AttentionPriceNetwork` for the maths.
public struct AttentionPriceModel: StatefulRecommender {
    /// The network, in Float; `AttentionPriceNetwork<Double>` with the same fields is what the
    /// gradient checks run.
    var network: AttentionPriceNetwork<Float>

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: embedding width, MLP and attention MLP sizes, activation, attention
    ///     weighting, `priceFusion`, `priceFeatures`.
    ///   - schema: the prepared data's slots and dense columns.
    ///   - useUser: embed the user id when the data has one.
    ///   - seed: seeds the initial dense weights.
    /// - Throws: `HeedError(.config)` for an unknown fusion, weighting or activation, or a
    ///   schema lacking a slot the model needs (the message names the model and the slot).
    init(config: ModelConfig, schema: SampleSchema, useUser: Bool, seed: UInt64) throws {
        let model = "attention-price"
        guard let fusion = PriceFusion(rawValue: config.priceFusion) else {
            throw HeedError(.config, "model \(model): price_fusion must be concat or product, not \(config.priceFusion)")
        }
        guard let weighting = TargetAttentionWeighting(rawValue: config.attentionWeighting) else {
            throw HeedError(.config, "model \(model): attention_weighting must be raw or softmax, not \(config.attentionWeighting)")
        }
        let fields = try AttentionPriceFields(schema: schema, model: model, useUser: useUser, priceFeatures: config.priceFeatures)
        self.init(config: config, fields: fields, activation: try ModelFactory.activation(config, model: model),
                  weighting: weighting, fusion: fusion, seed: seed)
    }

    /// A model reading `fields` (tests and custom schemas).
    init(config: ModelConfig, fields: AttentionPriceFields, activation: ActivationKind, weighting: TargetAttentionWeighting,
         fusion: PriceFusion, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = AttentionPriceNetwork(fields: fields, dim: config.embeddingDim, hidden: config.hidden,
                                        attentionHidden: config.attentionHidden, activation: activation,
                                        weighting: weighting, fusion: fusion, generator: &rng)
    }

    public var name: String { "attention-price" }
    public var tableDims: [UInt8: Int] { network.tableDims }
    /// The slots the model reads (the fields a `ModelBatch` for it must hold); the dense price
    /// columns travel in every batch.
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

    /// The attention weight of every behaviour for its sample's target and purchasing power,
    /// from an inference forward (which behaviours drew attention): (B × L) row-major, 0 at
    /// padded positions.
    public mutating func attentionWeights(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        network.forward(batch, rows: tableRows(rows), training: false)
        return network.attention.attention.data
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
