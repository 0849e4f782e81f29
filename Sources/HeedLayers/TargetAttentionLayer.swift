import HeedCore

/// DIN's local activation unit (Zhou et al. KDD 2018, Fig. 2): target attention that pools a
/// user's behaviour embeddings by their relevance to the candidate item.
///
/// For behaviours `e_j` (B × L × D) and target `v` (B × D), an MLP over
/// `[e_j, v, e_j − v, e_j ⊙ v]` (4D → hidden… → 1, each hidden layer dense + activation, the
/// last layer linear) scores every real position; the output is `Σ_j w_j e_j` (B × D) with
/// `w` the raw scores (paper) or their softmax over real positions. Padded positions never
/// enter the MLP and weigh 0; a fully padded sequence outputs zeros.
public struct TargetAttentionLayer<T: Real>: Sendable {
    /// Embedding width D of behaviours and target.
    public let dim: Int
    /// How scores become weights.
    public let weighting: TargetAttentionWeighting
    /// The scoring MLP `4D → hidden… → 1`, activation after every hidden layer, linear output.
    public var mlp: MLPLayer<T>
    /// (B × L) the last forward's attention weights (0 at padded positions), for explanations.
    public var attention: Tensor<T> { attentionWeights }

    /// (B × L) storage behind `attention`.
    @usableFromInline var attentionWeights = Tensor<T>.empty

    /// (B × L × D) last behaviours.
    @usableFromInline var behaviours = Tensor<T>.empty
    /// (B × D) last target.
    @usableFromInline var target = Tensor<T>.empty
    /// (N) flat positions of the real rows.
    @usableFromInline var positions: [Int] = []
    /// (N × 4D) the feature matrix of the real positions.
    @usableFromInline var features = Tensor<T>.empty
    /// (N × 1) the MLP output.
    @usableFromInline var logits = Tensor<T>.empty

    // The factored first layer (when the MLP has a hidden layer): with the first weight's
    // row blocks [W1; W2; W3; W4] for [e, v, e − v, e ⊙ v], its output is
    // [e, e ⊙ v]·[W1 + W3; W4] + (v·(W2 − W3) + b)[sample], half the per-behaviour work.
    /// (2D × H) `[W1 + W3; W4]` of the last forward.
    @usableFromInline var pairWeight = Tensor<T>.empty
    /// (D × H) `W2 − W3` of the last forward.
    @usableFromInline var targetWeight = Tensor<T>.empty
    /// (B × H) `v·(W2 − W3) + b` per sample; in backward, the per-sample sums of ∂L/∂(first dense).
    @usableFromInline var perSample = Tensor<T>.empty
    /// (N × H) the first layer's output, then (after backward) scratch storage.
    @usableFromInline var firstDense = Tensor<T>.empty
    /// (N × H) ∂L/∂(first dense output).
    @usableFromInline var dFirstDense = Tensor<T>.empty
    /// (N × 2D) ∂L/∂[e, e ⊙ v]; (2D × H) and (D × H) weight-gradient scratch.
    @usableFromInline var dPairs = Tensor<T>.empty, dPairWeight = Tensor<T>.empty, dTargetWeight = Tensor<T>.empty
    /// Whether the last forward took the factored path.
    @usableFromInline var factored = false

    /// A unit for width `dim` with hidden sizes `hidden` (DIN uses 80 → 40) and activation
    /// `activation` (DIN: Dice or PReLU); weights as `MLPLayer` initialises them.
    public init(dim: Int, hidden: [Int] = [80, 40], activation: ActivationKind = .dice,
                weighting: TargetAttentionWeighting = .raw, generator: inout SeededGenerator) {
        self.dim = dim
        self.weighting = weighting
        mlp = MLPLayer(sizes: [4 * dim] + hidden + [1], activation: activation, generator: &generator)
    }

    /// Pools `behaviours` by their attention to `target`.
    ///
    /// - Parameters:
    ///   - out: (B × D), overwritten.
    ///   - behaviours: (B × L × D).
    ///   - target: (B × D).
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    ///   - training: Dice uses batch statistics (over real positions) when true.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, behaviours: Tensor<T>, target: Tensor<T>,
                                 mask: Tensor<T>, training: Bool) {
        precondition(behaviours.lastDim == dim, "target attention: behaviours \(behaviours.shape) do not have width \(dim)")
        self.behaviours = behaviours
        self.target = target
        factored = mlp.layerCount >= 2
        if factored {
            targetAttentionPairsForward(&features, &positions, behaviours, target, mask)
        } else {
            targetAttentionFeaturesForward(&features, &positions, behaviours, target, mask)
        }
        if positions.isEmpty {
            logits = Tensor(zeros: [0, 1])
        } else if factored {
            factoredFirstLayerForward()
            mlp.forward(&logits, firstDense: &firstDense, training: training)
        } else {
            mlp.forward(&logits, features, training: training)
        }
        targetAttentionPoolForward(&out, &attentionWeights, logits, behaviours, positions, weighting: weighting)
    }

    /// Back-propagates `dout` (B × D) from the last forward, which must have been a training
    /// forward; each forward serves one backward (as for `MLPLayer`), which then releases its
    /// references to the inputs.
    ///
    /// - Parameters:
    ///   - dBehaviours: (B × L × D), accumulated (zero at padded positions); `.empty` to skip.
    ///   - dTarget: (B × D), accumulated; `.empty` to skip.
    ///   - dout: (B × D).
    @inlinable
    public mutating func backward(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(behaviours.shape.count == 3, "target attention: backward needs a forward first (each forward serves one backward)")
        var dLogits = Tensor<T>(zeros: [positions.count, 1])
        targetAttentionPoolBackward(&dBehaviours, &dLogits, dout, behaviours, attentionWeights, positions, weighting: weighting)
        if !positions.isEmpty && factored {
            mlp.backwardToFirstDense(&dFirstDense, dLogits)
            factoredFirstLayerBackward(&dBehaviours, &dTarget)
        } else if !positions.isEmpty {
            var dFeatures = Tensor<T>(zeros: features.shape)
            mlp.backward(&dFeatures, dLogits)
            targetAttentionFeaturesBackward(&dBehaviours, &dTarget, dFeatures, behaviours, target, positions)
        }
        behaviours = .empty
        target = .empty
    }

    /// Visits (name, value, gradient) in the MLP's fixed order, prefixed `mlp.`
    /// (`mlp.dense0.weight`, `mlp.dense0.bias`, `mlp.activation0.alpha`, …).
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits non-learned state a checkpoint must keep (Dice running statistics), prefixed `mlp.`.
    public mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Zeroes every accumulated gradient.
    public mutating func zeroGradients() { mlp.zeroGradients() }
}
