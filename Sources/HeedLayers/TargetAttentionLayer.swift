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
    /// Dense weights of the MLP: layer k is (in_k × out_k), in_0 = 4D, the last out = 1.
    public var weights: [Tensor<T>]
    /// Dense biases of the MLP: layer k is (out_k).
    public var biases: [Tensor<T>]
    /// Accumulated gradients of `weights`.
    public var weightGrads: [Tensor<T>]
    /// Accumulated gradients of `biases`.
    public var biasGrads: [Tensor<T>]
    /// One activation after each hidden dense layer (none after the last).
    public var activations: [ActivationLayer<T>]
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
    /// Per dense layer k: its (N × in_k) input; entry 0 is the (N × 4D) feature matrix.
    @usableFromInline var layerInputs: [Tensor<T>] = []
    /// Per hidden layer k: its (N × out_k) pre-activation.
    @usableFromInline var preActivations: [Tensor<T>] = []
    /// (N × 1) the MLP output.
    @usableFromInline var logits = Tensor<T>.empty

    /// A unit for width `dim` with hidden sizes `hidden` (DIN uses 80 → 40), activation
    /// `activation` (DIN: Dice or PReLU) and He-normal weights (`std = √(2 / in)`), zero biases.
    public init(dim: Int, hidden: [Int] = [80, 40], activation: ActivationKind = .dice,
                weighting: TargetAttentionWeighting = .raw, generator: inout SeededGenerator) {
        self.dim = dim
        self.weighting = weighting
        let sizes = [4 * dim] + hidden + [1]
        weights = []; biases = []; weightGrads = []; biasGrads = []; activations = []
        for k in 0..<(sizes.count - 1) {
            weights.append(Tensor(gaussian: [sizes[k], sizes[k + 1]], std: (2.0 / Double(sizes[k])).squareRoot(), generator: &generator))
            biases.append(Tensor(zeros: [sizes[k + 1]]))
            weightGrads.append(Tensor(zeros: [sizes[k], sizes[k + 1]]))
            biasGrads.append(Tensor(zeros: [sizes[k + 1]]))
        }
        activations = hidden.map { ActivationLayer(activation, features: $0) }
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
        let layers = weights.count
        if layerInputs.count != layers { layerInputs = Array(repeating: .empty, count: layers) }
        if preActivations.count != layers - 1 { preActivations = Array(repeating: .empty, count: layers - 1) }
        targetAttentionFeaturesForward(&layerInputs[0], &positions, behaviours, target, mask)
        if positions.isEmpty {
            logits = Tensor(zeros: [0, 1])
        } else {
            for k in 0..<(layers - 1) {
                denseForward(&preActivations[k], layerInputs[k], weights[k], biases[k])
                activations[k].forward(&layerInputs[k + 1], preActivations[k], training: training)
            }
            denseForward(&logits, layerInputs[layers - 1], weights[layers - 1], biases[layers - 1])
        }
        targetAttentionPoolForward(&out, &attentionWeights, logits, behaviours, positions, weighting: weighting)
    }

    /// Back-propagates `dout` (B × D) from the last forward.
    ///
    /// - Parameters:
    ///   - dBehaviours: (B × L × D), accumulated (zero at padded positions); `.empty` to skip.
    ///   - dTarget: (B × D), accumulated; `.empty` to skip.
    ///   - dout: (B × D).
    @inlinable
    public mutating func backward(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>, _ dout: Tensor<T>) {
        var dLogits = Tensor<T>(zeros: [positions.count, 1])
        targetAttentionPoolBackward(&dBehaviours, &dLogits, dout, behaviours, attentionWeights, positions, weighting: weighting)
        guard !positions.isEmpty else { return }
        let layers = weights.count
        var dNext = dLogits
        for k in stride(from: layers - 1, through: 0, by: -1) {
            var dInput = Tensor<T>(zeros: layerInputs[k].shape)
            denseBackward(&dInput, &weightGrads[k], &biasGrads[k], dNext, layerInputs[k], weights[k])
            if k == 0 {
                targetAttentionFeaturesBackward(&dBehaviours, &dTarget, dInput, behaviours, target, positions)
            } else {
                dNext = Tensor(zeros: preActivations[k - 1].shape)
                activations[k - 1].backward(&dNext, dInput)
            }
        }
    }

    /// Visits (name, value, gradient) in a fixed order: per layer k `mlp.k.weight`,
    /// `mlp.k.bias`, then its activation's parameters (`mlp.k.alpha`) if any.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        for k in 0..<weights.count {
            body("mlp.\(k).weight", &weights[k], &weightGrads[k])
            body("mlp.\(k).bias", &biases[k], &biasGrads[k])
            if k < activations.count {
                activations[k].visitParameters { name, value, grad in body("mlp.\(k).\(name)", &value, &grad) }
            }
        }
    }

    /// Visits non-learned state a checkpoint must keep (Dice running statistics), in a fixed order.
    public mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        for k in 0..<activations.count {
            activations[k].visitStatistics { name, value in body("mlp.\(k).\(name)", &value) }
        }
    }

    /// Zeroes every accumulated gradient.
    public mutating func zeroGradients() {
        for k in 0..<weights.count { weightGrads[k].zero(); biasGrads[k].zero() }
        for k in 0..<activations.count { activations[k].zeroGradients() }
    }
}
