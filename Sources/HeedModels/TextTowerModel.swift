import HeedCore
import HeedData
import HeedLayers

/// The `text-tower` click/purchase model of source document 4: an item tower that starts
/// from pre-trained sentence embeddings of the item text (the item-text table, loaded from
/// a vectors file onto the parameter servers) and a trained projection to the embedding
/// width, fine-tuned through the CTR loss. See `TextTowerNetwork` for the maths.
///
/// With `freeze_text` the item-text table is frozen (`FrozenTables`); without a vectors
/// file its rows are key-seeded random at the vectors' scale (the random-initialisation twin).
public struct TextTowerModel: StatefulRecommender, BatchFieldDeriving, FrozenTables {
    /// The network, in Float; `TextTowerNetwork<Double>` with the same fields is what the
    /// gradient checks run.
    var network: TextTowerNetwork<Float>
    /// Whether the item-text rows are frozen.
    let freezeText: Bool

    /// The item-text table: `FeatureGroup.itemText`.
    public static let textTable = FeatureGroup.itemText.rawValue

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: embedding width, `text_dim`, MLP sizes, activation, `freeze_text`.
    ///   - schema: the prepared data's slots (`item` and `hist_items` required).
    ///   - options: user embedding and the behaviour pooling (`base_pooling`).
    ///   - seed: seeds the initial dense weights.
    /// - Throws: `HeedError(.config)` for a schema lacking a slot the model needs.
    init(config: ModelConfig, schema: SampleSchema, options: BehaviourModelOptions, seed: UInt64) throws {
        let model = "text-tower"
        let fields = try BehaviourFields(schema: schema, model: model, useUser: options.useUserEmbedding)
        self.init(config: config, fields: fields, activation: try ModelFactory.activation(config, model: model),
                  pooling: options.basePooling, seed: seed)
    }

    /// A model reading `fields` (tests and custom schemas).
    init(config: ModelConfig, fields: BehaviourFields, activation: ActivationKind, pooling: PoolingMode, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = TextTowerNetwork(fields: fields, textTable: Self.textTable, dim: config.embeddingDim, textDim: config.textDim,
                                   hidden: config.hidden, activation: activation, pooling: pooling, generator: &rng)
        freezeText = config.freezeText
    }

    public var name: String { "text-tower" }
    public var tableDims: [UInt8: Int] { network.tableDims }
    /// The prepared slots the model reads (the derived text fields come from `deriveFields`).
    public var inputFields: [String] { network.fields.names }
    public var denseParameterCount: Int { network.parameterCount }
    public func denseParameters() -> [Float] { network.flatParameters() }
    public mutating func loadDenseParameters(_ flat: [Float]) { network.loadFlatParameters(flat) }
    /// The item-text table when frozen, else nothing.
    public var frozenTables: Set<UInt8> { freezeText ? [Self.textTable] : [] }

    /// Adds `item_text` and `hist_item_text` (the item keys moved to the text table).
    public var deriveFields: @Sendable (inout ModelBatch) -> Void {
        let fields = network.fields, table = Self.textTable
        return { TextTowerNetwork<Float>.deriveTextFields(&$0, fields: fields, table: table) }
    }

    /// One training step: loss, probabilities, the flat dense gradient and the row gradients
    /// of every read table present in `rows` (none for the text table when it is frozen).
    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let wrapped = tableRows(rows)
        let (loss, grads) = network.trainStep(batch, rows: wrapped)
        var rowGradients: [UInt8: [Float]] = [:]
        for (t, g) in grads where wrapped[t] != nil && !frozenTables.contains(t) { rowGradients[t] = g.data }
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
        for (t, width) in network.tableDims {
            guard let table = rows.tables[t] else { continue }
            precondition(table.dim == width, "table \(t) was pulled with dim \(table.dim), the model uses \(width)")
            out[t] = TableRows(keys: table.keys, values: Tensor(shape: [table.keys.count, width], data: table.values))
        }
        return out
    }

    /// (B) sigmoid of the last logits.
    private func probabilities() -> [Float] { network.logits.data.map { sigmoid($0) } }
}
