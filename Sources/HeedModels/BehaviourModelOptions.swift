import HeedCore
import HeedLayers

/// Settings of the behaviour models (base, din) that `ModelConfig` does not carry.
public struct BehaviourModelOptions: Equatable, Sendable {
    /// Embed the user id (when the dataset has a `user` slot) and feed it to the MLP. Off by
    /// default, as in the DIN paper's Amazon experiments: the model then generalises to
    /// users through their behaviours only.
    public var useUserEmbedding: Bool
    /// How the base model pools the behaviour sequence (the paper: sum).
    public var basePooling: PoolingMode
    /// How DIN turns attention scores into weights (the paper: raw, unnormalised).
    public var attentionWeighting: TargetAttentionWeighting

    /// Options with the DIN paper's choices unless overridden.
    public init(useUserEmbedding: Bool = false, basePooling: PoolingMode = .sum,
                attentionWeighting: TargetAttentionWeighting = .raw) {
        self.useUserEmbedding = useUserEmbedding
        self.basePooling = basePooling
        self.attentionWeighting = attentionWeighting
    }
}

extension BehaviourModelOptions {
    /// The options a run config names (`model.base_pooling`, `model.attention_weighting`).
    /// - Throws: `HeedError(.config)` for a value outside the allowed names.
    public init(_ config: ModelConfig) throws {
        guard let pooling = PoolingMode(rawValue: config.basePooling) else {
            throw HeedError(.config, "model.base_pooling must be sum or mean, not \(config.basePooling)")
        }
        guard let weighting = TargetAttentionWeighting(rawValue: config.attentionWeighting) else {
            throw HeedError(.config, "model.attention_weighting must be raw or softmax, not \(config.attentionWeighting)")
        }
        self.init(basePooling: pooling, attentionWeighting: weighting)
    }
}
