import HeedCore
import HeedData
import HeedLayers

/// The `long-term-interest` click model of source document 1: an MLP over the fused user,
/// social-neighbour (trust), item and tag/category embeddings and a sequence encoder (GRU or
/// self-attention) for the user's long-term behaviour, trained with binary cross-entropy on
/// the click label. See `LongTermInterestNetwork` for the maths; `[model] use_neighbors` and
/// `use_tags` build the twins without social data or without tags.
public struct LongTermInterestModel: StatefulRecommender {
    /// The network, in Float; `LongTermInterestNetwork<Double>` with the same fields is what
    /// the gradient checks run.
    var network: LongTermInterestNetwork<Float>

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: embedding width (also the encoder's), encoder, heads (self-attention), MLP
    ///     sizes, activation, `useNeighbors`, `useTags`, `initScale` (recency embeddings).
    ///   - schema: the prepared data's slots.
    ///   - seed: seeds the initial dense weights.
    /// - Throws: `HeedError(.config)` for an unknown encoder or activation, heads that do not
    ///   divide the embedding width, or a schema lacking a slot the model needs.
    init(config: ModelConfig, schema: SampleSchema, seed: UInt64) throws {
        let model = "long-term-interest"
        guard let encoder = LongTermInterestEncoder(rawValue: config.encoder) else {
            throw HeedError(.config, "model \(model): encoder must be gru or self-attention, not \(config.encoder)")
        }
        guard config.heads >= 1, config.embeddingDim % config.heads == 0 else {
            throw HeedError(.config, "model \(model): heads (\(config.heads)) must divide embedding_dim (\(config.embeddingDim))")
        }
        let fields = try LongTermInterestFields(schema: schema, model: model, useTags: config.useTags, useNeighbors: config.useNeighbors)
        let maxLength = schema.slots[schema.slotIndex("hist_items")!].maxLength
        guard maxLength >= 1 else {
            throw HeedError(.config, "model \(model) needs a history length of at least 1, the dataset's hist_items has \(maxLength)")
        }
        self.init(config: config, fields: fields, maxLength: maxLength, encoder: encoder,
                  activation: try ModelFactory.activation(config, model: model), seed: seed)
    }

    /// A model reading `fields` (tests and custom schemas).
    init(config: ModelConfig, fields: LongTermInterestFields, maxLength: Int, encoder: LongTermInterestEncoder,
         activation: ActivationKind, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = LongTermInterestNetwork(fields: fields, dim: config.embeddingDim, maxLength: maxLength, encoder: encoder,
                                          heads: config.heads, hidden: config.hidden, activation: activation,
                                          positionScale: config.initScale, generator: &rng)
    }

    public var name: String { "long-term-interest" }
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
