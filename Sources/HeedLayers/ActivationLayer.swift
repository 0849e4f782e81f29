/// Which elementwise activation an `ActivationLayer` (or an MLP between its dense layers) applies.
public enum ActivationKind: String, CaseIterable, Sendable {
    /// `out = x`.
    case identity
    /// `max(x, 0)`.
    case relu
    /// Per-feature learnable negative slope (He et al. 2015).
    case prelu
    /// DIN's data-adaptive activation (Zhou et al. 2018, eq. 9), with batch statistics.
    case dice
    /// Logistic sigmoid.
    case sigmoid
    /// Hyperbolic tangent.
    case tanh

    /// Whether the activation has a learnable per-feature `alpha`.
    public var hasParameters: Bool { self == .prelu || self == .dice }
}

/// An activation chosen by kind, owning its parameters (PReLU/Dice `alpha`), their gradients,
/// Dice's running statistics and the forward cache, so layers such as DIN's attention MLP can
/// take "an activation" as a value.
///
/// `forward` saves a reference to its input (and, for sigmoid/tanh, its output) until `backward`;
/// `apply`/`applyBackward` leave the buffers with the caller.
public struct ActivationLayer<T: Real>: Sendable {
    /// The activation applied.
    public let kind: ActivationKind
    /// Feature count D (the last dimension of inputs).
    public let features: Int
    /// (D) learnable slopes for `.prelu`/`.dice`; empty otherwise.
    public var alpha: Tensor<T>
    /// (D) gradient of `alpha`, accumulated by `backward`.
    public var dAlpha: Tensor<T>
    /// (D) Dice running mean used in inference; empty for other kinds.
    public var runningMean: Tensor<T>
    /// (D) Dice running variance used in inference; empty for other kinds.
    public var runningVar: Tensor<T>
    /// Dice: weight of each new batch in the running statistics.
    public var momentum: T
    /// Dice: ε added to the variance.
    public var epsilon: T

    @usableFromInline var input: Tensor<T> = .empty
    @usableFromInline var output: Tensor<T> = .empty
    @usableFromInline var forwardPending = false
    @usableFromInline var diceCache = DiceCache<T>()

    /// An activation over `features` features.
    ///
    /// - Parameters:
    ///   - preluSlope: initial PReLU slope (0.25 as in He et al.).
    ///   - diceAlpha: initial Dice α (0, as DIN's reference code).
    ///   - momentum, epsilon: Dice statistics settings.
    public init(_ kind: ActivationKind, features: Int, preluSlope: T = 0.25, diceAlpha: T = 0,
                momentum: T = 0.01, epsilon: T = 1e-8) {
        self.kind = kind
        self.features = features
        self.momentum = momentum
        self.epsilon = epsilon
        switch kind {
        case .prelu:
            alpha = Tensor(shape: [features], data: [T](repeating: preluSlope, count: features))
        case .dice:
            alpha = Tensor(shape: [features], data: [T](repeating: diceAlpha, count: features))
        default:
            alpha = .empty
        }
        dAlpha = Tensor(zeros: [alpha.count])
        runningMean = kind == .dice ? Tensor(zeros: [features]) : .empty
        runningVar = kind == .dice ? Tensor(shape: [features], data: [T](repeating: 1, count: features)) : .empty
    }

    /// Applies the activation and keeps references to what `backward` needs.
    ///
    /// - Parameters:
    ///   - out: (N × D), overwritten.
    ///   - x: (N × D).
    ///   - training: Dice uses batch statistics when true, running statistics when false.
    ///   - rowMask: (N) of 0/1; Dice takes statistics over real rows only. Ignored by other kinds.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, training: Bool, rowMask: Tensor<T> = .empty) {
        apply(&out, x, training: training, rowMask: rowMask)
        forwardPending = true
        input = x
        if kind == .sigmoid || kind == .tanh { output = out }
    }

    /// Backward of the last `forward`: `dx += ∂L/∂x`, `dAlpha += ∂L/∂alpha`. Releases the saved
    /// references so the caller can overwrite its buffers in place without a copy; each
    /// `forward` therefore serves one `backward`.
    ///
    /// - Parameters:
    ///   - dx: (N × D), accumulated; pass `.empty` to skip.
    ///   - dout: (N × D).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(forwardPending, "activation: backward needs a forward first (each forward serves one backward)")
        forwardPending = false
        applyBackward(&dx, dout, input: input, output: output)
        input = .empty
        output = .empty
    }

    /// Applies the activation without keeping references to `x` or `out`: for owners of the
    /// buffers (such as `MLPLayer`) that hand them back to `applyBackward`. Dice still fills its
    /// own cache.
    ///
    /// - Parameters:
    ///   - out: (N × D), overwritten.
    ///   - x: (N × D).
    ///   - training, rowMask: as in `forward`.
    @inlinable
    public mutating func apply(_ out: inout Tensor<T>, _ x: Tensor<T>, training: Bool, rowMask: Tensor<T> = .empty) {
        precondition(x.lastDim == features, "activation: input \(x.shape) does not have \(features) features")
        switch kind {
        case .identity: out = x
        case .relu: reluForward(&out, x)
        case .prelu: preluForward(&out, x, alpha)
        case .dice:
            diceForward(&out, &diceCache, &runningMean, &runningVar, x, alpha, rowMask: rowMask,
                        training: training, momentum: momentum, epsilon: epsilon)
        case .sigmoid: sigmoidForward(&out, x)
        case .tanh: tanhForward(&out, x)
        }
    }

    /// Backward of `apply`: `dx += ∂L/∂x`, `dAlpha += ∂L/∂alpha`.
    ///
    /// - Parameters:
    ///   - dx: (N × D), accumulated; pass `.empty` to skip.
    ///   - dout: (N × D).
    ///   - input: (N × D), the `x` given to `apply`.
    ///   - output: (N × D), the `out` of `apply` (read by sigmoid and tanh only).
    @inlinable
    public mutating func applyBackward(_ dx: inout Tensor<T>, _ dout: Tensor<T>, input: Tensor<T>, output: Tensor<T>) {
        switch kind {
        case .identity:
            guard dx.count > 0 else { return }
            precondition(dx.count == dout.count, "activation: dx \(dx.shape) does not fit dout \(dout.shape)")
            dx.data.withUnsafeMutableBufferPointer { pdx in
                dout.data.withUnsafeBufferPointer { pd in
                    // Safe: equal counts (checked above).
                    for i in 0..<pd.count { pdx[i] += pd[i] }
                }
            }
        case .relu: if dx.count > 0 { reluBackward(&dx, dout, input) }
        case .prelu: preluBackward(&dx, &dAlpha, dout, input, alpha)
        case .dice: diceBackward(&dx, &dAlpha, dout, input, alpha, diceCache)
        case .sigmoid: if dx.count > 0 { sigmoidBackward(&dx, dout, output) }
        case .tanh: if dx.count > 0 { tanhBackward(&dx, dout, output) }
        }
    }

    /// Visits the learnable parameters in a fixed order: `alpha` for PReLU and Dice, none otherwise.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        if kind.hasParameters { body("alpha", &alpha, &dAlpha) }
    }

    /// Visits non-learned state that a checkpoint must keep (Dice running statistics).
    public mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        if kind == .dice {
            body("runningMean", &runningMean)
            body("runningVar", &runningVar)
        }
    }

    /// Sets the parameter gradients to zero.
    public mutating func zeroGradients() { dAlpha.zero() }
}
