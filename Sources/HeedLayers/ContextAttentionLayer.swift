import HeedCore

/// Target attention with a per-sample context in the scoring MLP: DIN's local activation unit
/// (`TargetAttentionLayer`) whose MLP input per real behaviour is `[e_j, v, e_j − v, e_j ⊙ v, c]`
/// (4D + C → hidden… → 1). The `attention-price` model passes the user's purchasing power and
/// the candidate's price as `c`, so behaviours are weighted by relevance *and* affordability.
///
/// The output is `Σ_j w_j e_j` (B × D), `w` the raw scores or their softmax over real
/// positions. Padded positions never enter the MLP and weigh 0. With C = 0 the layer computes
/// exactly what `TargetAttentionLayer` computes.
public struct ContextAttentionLayer<T: Real>: Sendable {
    /// Embedding width D of behaviours and target.
    public let dim: Int
    /// Width C of the context vector (0 = none).
    public let contextWidth: Int
    /// How scores become weights.
    public let weighting: TargetAttentionWeighting
    /// The scoring MLP `4D + C → hidden… → 1`, activation after every hidden layer, linear output.
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
    /// (N × (4D + C)) the feature matrix of the real positions.
    @usableFromInline var features = Tensor<T>.empty
    /// (N × 1) the MLP output.
    @usableFromInline var logits = Tensor<T>.empty

    /// A unit for width `dim` and context width `contextWidth` with hidden sizes `hidden` and
    /// activation `activation`; weights as `MLPLayer` initialises them.
    public init(dim: Int, contextWidth: Int, hidden: [Int] = [80, 40], activation: ActivationKind = .dice,
                weighting: TargetAttentionWeighting = .softmax, generator: inout SeededGenerator) {
        precondition(dim > 0 && contextWidth >= 0, "context attention: dim \(dim) and context width \(contextWidth)")
        self.dim = dim
        self.contextWidth = contextWidth
        self.weighting = weighting
        mlp = MLPLayer(sizes: [4 * dim + contextWidth] + hidden + [1], activation: activation, generator: &generator)
    }

    /// Pools `behaviours` by their attention to `target` given `context`.
    ///
    /// - Parameters:
    ///   - out: (B × D), overwritten.
    ///   - behaviours: (B × L × D).
    ///   - target: (B × D).
    ///   - context: (B × C); `.empty` when C = 0.
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    ///   - training: Dice uses batch statistics (over real positions) when true.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, behaviours: Tensor<T>, target: Tensor<T>, context: Tensor<T>,
                                 mask: Tensor<T>, training: Bool) {
        precondition(behaviours.lastDim == dim, "context attention: behaviours \(behaviours.shape) do not have width \(dim)")
        precondition(context.count == behaviours.shape[0] * contextWidth,
                     "context attention: context \(context.shape) is not (\(behaviours.shape[0]) × \(contextWidth))")
        self.behaviours = behaviours
        self.target = target
        contextAttentionFeaturesForward(&features, &positions, behaviours, target, context, mask)
        if positions.isEmpty {
            logits = Tensor(zeros: [0, 1])
        } else {
            mlp.forward(&logits, features, training: training)
        }
        targetAttentionPoolForward(&out, &attentionWeights, logits, behaviours, positions, weighting: weighting)
    }

    /// Back-propagates `dout` (B × D) from the last (training) forward; each forward serves
    /// one backward, which then releases its references to the inputs.
    ///
    /// - Parameters:
    ///   - dBehaviours: (B × L × D), accumulated (zero at padded positions); `.empty` to skip.
    ///   - dTarget: (B × D), accumulated; `.empty` to skip.
    ///   - dContext: (B × C), accumulated; `.empty` to skip.
    ///   - dout: (B × D).
    @inlinable
    public mutating func backward(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>, _ dContext: inout Tensor<T>,
                                  _ dout: Tensor<T>) {
        precondition(behaviours.shape.count == 3, "context attention: backward needs a forward first (each forward serves one backward)")
        var dLogits = Tensor<T>(zeros: [positions.count, 1])
        targetAttentionPoolBackward(&dBehaviours, &dLogits, dout, behaviours, attentionWeights, positions, weighting: weighting)
        if !positions.isEmpty {
            var dFeatures = Tensor<T>(zeros: features.shape)
            mlp.backward(&dFeatures, dLogits)
            contextAttentionFeaturesBackward(&dBehaviours, &dTarget, &dContext, dFeatures, behaviours, target,
                                             contextWidth: contextWidth, positions)
        }
        behaviours = .empty
        target = .empty
    }

    /// Visits (name, value, gradient) in the MLP's fixed order, prefixed `mlp.`.
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
