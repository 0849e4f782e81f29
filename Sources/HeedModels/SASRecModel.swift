import HeedCore
import HeedData
import HeedLayers

/// `sasrec`: the SASRec next-item model (`SASRecNetwork`) in Float, trained on a parameter
/// server cluster: the item rows are one embedding table (feature group `item`), the
/// positions, blocks and final norm are the flat dense vector.
public struct SASRecModel: NextItemModel {
    /// The network; `SASRecNetwork<Double>` with the same sizes is what the gradient checks run.
    var network: SASRecNetwork<Float>
    /// Builds batches and draws negatives.
    public private(set) var batcher: SASRecBatcher
    /// (B × W) attention weights of the last `userVectors` call.
    var lastAttentionWeights: [Float] = []

    /// A model for records of `schema`.
    ///
    /// - Parameters:
    ///   - config: `embedding_dim` (D), `blocks`, `heads`, `dropout`, `max_len` (W), `loss`, `negatives`.
    ///   - schema: must hold `hist_items` and `item` (`--protocol seq`).
    ///   - catalog: candidate item keys (may be empty until `attachCatalog`).
    ///   - seed: seeds the dense weights, dropout and negatives.
    /// - Throws: `HeedError(.config)` for bad sizes, an unknown loss or a schema without the slots.
    public init(config: ModelConfig, schema: SampleSchema, catalog: [UInt64] = [], seed: UInt64) throws {
        let loss = try NextItemLoss(config: config.loss)
        guard config.blocks >= 1, config.maxLength >= 1, config.negatives >= 1 else {
            throw HeedError(.config, "model sasrec: blocks, max_len and negatives must be >= 1 (got \(config.blocks), \(config.maxLength), \(config.negatives))")
        }
        guard config.heads >= 1, config.embeddingDim % config.heads == 0 else {
            throw HeedError(.config, "model sasrec: heads (\(config.heads)) must divide embedding_dim (\(config.embeddingDim))")
        }
        guard config.dropout >= 0 && config.dropout < 1 else {
            throw HeedError(.config, "model sasrec: dropout must be in [0, 1), got \(config.dropout)")
        }
        var rng = SeededGenerator(seed: seed)
        network = SASRecNetwork(dim: config.embeddingDim, window: config.maxLength, blocks: config.blocks, heads: config.heads,
                                dropout: config.dropout, loss: loss, generator: &rng)
        batcher = try SASRecBatcher(schema: schema, window: config.maxLength, loss: loss, negatives: config.negatives,
                                    catalog: catalog, seed: KeyHash.mix64(seed ^ 0x5A5_4EC))
    }

    public var name: String { "sasrec" }
    public var itemTable: UInt8 { FeatureGroup.item.rawValue }
    public var embeddingDim: Int { network.dim }
    public var tableDims: [UInt8: Int] { [itemTable: network.dim] }
    /// The dataset slots read (the batcher turns them into `seq`, `pos`, `neg`).
    public var inputFields: [String] { ["hist_items", "item"] }
    public var denseParameterCount: Int { network.parameterCount }
    public func denseParameters() -> [Float] { network.flatParameters() }
    public mutating func loadDenseParameters(_ flat: [Float]) { network.loadFlatParameters(flat) }
    /// SASRec keeps no running statistics.
    public func statistics() -> [Float] { [] }
    public mutating func loadStatistics(_ flat: [Float]) {}

    public mutating func attachCatalog(_ keys: [UInt64], schema: SampleSchema) throws {
        batcher = try batcher.with(catalog: keys, schema: schema)
    }

    /// The item rows of `rows`, wrapped without copying.
    func items(_ rows: BatchRows) -> TableRows<Float>? {
        guard let t = rows.tables[itemTable] else { return nil }
        precondition(t.dim == network.dim, "sasrec: item rows pulled with dim \(t.dim), the model uses \(network.dim)")
        return TableRows(keys: t.keys, values: Tensor(shape: [t.keys.count, t.dim], data: t.values))
    }

    /// One training step on a `batcher.trainingBatch`: mean loss over real positions, the
    /// dense gradient, the item-row gradient; `predictions` are σ(h · e) of each record's
    /// target at its last position.
    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let wrapped = items(rows)
        let (loss, dItems, probabilities) = network.trainStep(batch, items: wrapped)
        var rowGradients: [UInt8: [Float]] = [:]
        if wrapped != nil { rowGradients[itemTable] = dItems.data }
        return StepOutput(loss: loss, predictions: probabilities, denseGradient: network.flatGradients(), rowGradients: rowGradients)
    }

    /// Inference on a training-shaped batch (with `pos`): σ(h · e) of each record's last target.
    public mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        let wrapped = items(rows)
        network.forward(batch, items: wrapped, training: false)
        return network.lastPositiveProbabilities(batch, items: wrapped)
    }

    public mutating func userVectors(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        let (vectors, attention) = network.userVectors(batch, items: items(rows))
        lastAttentionWeights = attention
        return vectors
    }

    /// (B × W) as `NextItemModel.lastAttention` documents.
    public func lastAttention() -> [Float] { lastAttentionWeights }
}
