import HeedCore
import HeedLayers

/// The DIN paper's Base model (Zhou et al., KDD 2018, §4.2 "Embedding & MLP"): target item
/// ‖ category embeddings, the sum-pooled behaviour embeddings and (optionally) the user
/// embedding, concatenated into an MLP (200-80 with PReLU/Dice) with one logit, trained with
/// binary cross-entropy.
public struct BaseModel: RecommenderModel {
    /// The network, in Float; `BehaviourNetwork<Double>` with the same fields is what the
    /// gradient checks run.
    var network: BehaviourNetwork<Float>

    /// A base model reading `fields`.
    ///
    /// - Parameters:
    ///   - config: embedding width, MLP sizes and activation (`activation` must be a known
    ///     `ActivationKind`, checked by `ModelFactory`).
    ///   - fields: the slots read.
    ///   - pooling: sum (the paper) or mean.
    ///   - seed: seeds the initial dense weights.
    init(config: ModelConfig, fields: BehaviourFields, activation: ActivationKind, pooling: PoolingMode, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = BehaviourNetwork(fields: fields, dim: config.embeddingDim, hidden: config.hidden,
                                   attentionHidden: [], activation: activation, pooling: .pooled(pooling), generator: &rng)
    }

    public var name: String { "base" }
    public var tableDims: [UInt8: Int] { network.tableDims }
    /// The slots the model reads (the fields a `ModelBatch` for it must hold).
    public var inputFields: [String] { network.fields.names }
    public var denseParameterCount: Int { network.parameterCount }
    public func denseParameters() -> [Float] { network.flatParameters() }
    public mutating func loadDenseParameters(_ flat: [Float]) { network.loadFlatParameters(flat) }
    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput { network.step(batch, rows: rows) }
    public mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] { network.predict(batch, rows: rows) }
    /// Dice running statistics in a fixed order (empty with other activations); not learned,
    /// so they travel with checkpoints rather than with dense gradients.
    public func statistics() -> [Float] { network.flatStatistics() }
    /// Restores `statistics()` output.
    public mutating func loadStatistics(_ flat: [Float]) { network.loadFlatStatistics(flat) }
}
