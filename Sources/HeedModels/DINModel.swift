import HeedCore
import HeedLayers

/// Deep Interest Network (Zhou et al., KDD 2018, §4.3): the Base model with the sum pooling
/// of behaviours replaced by the local activation unit — an attention MLP over
/// `[e_j, v, e_j − v, e_j ⊙ v]` scores each behaviour `e_j` against the target `v`, and the
/// behaviours are summed with those (unnormalised) weights. Dice activations by default.
public struct DINModel: RecommenderModel {
    /// The network, in Float; `BehaviourNetwork<Double>` with the same fields is what the
    /// gradient checks run.
    var network: BehaviourNetwork<Float>

    /// A DIN model reading `fields`.
    ///
    /// - Parameters:
    ///   - config: embedding width, MLP and attention MLP sizes, activation of both MLPs.
    ///   - fields: the slots read.
    ///   - attentionActivation: the attention MLP's activation (nil = `activation`).
    ///   - weighting: raw attention scores (the paper) or their softmax.
    ///   - seed: seeds the initial dense weights.
    init(config: ModelConfig, fields: BehaviourFields, activation: ActivationKind, attentionActivation: ActivationKind? = nil,
         weighting: TargetAttentionWeighting, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        network = BehaviourNetwork(fields: fields, dim: config.embeddingDim, hidden: config.hidden,
                                   attentionHidden: config.attentionHidden, activation: activation, attentionActivation: attentionActivation,
                                   pooling: .targetAttention(weighting), generator: &rng)
    }

    public var name: String { "din" }
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

    /// The attention weight of every behaviour for its sample's target, from an inference
    /// forward: (B × L) row-major, L = the batch's `hist_items` length, 0 at padded positions.
    /// Weights are raw scores (not normalised) unless the model uses softmax weighting.
    public mutating func attentionWeights(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        network.forward(batch, rows: network.tableRows(rows), training: false)
        return network.attentionWeights!.data
    }
}
