#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import HeedCore

/// Adam settings (Kingma & Ba 2015); `weightDecay > 0` makes it AdamW (Loshchilov & Hutter 2019).
///
/// Decoding fills missing fields with the defaults below (PyTorch's), so a config file
/// may name only `lr`.
public struct AdamConfig: Codable, Hashable, Sendable {
    /// Learning rate α.
    public var lr: Float
    /// Decay rate β₁ of the first-moment estimate.
    public var beta1: Float
    /// Decay rate β₂ of the second-moment estimate.
    public var beta2: Float
    /// ε added to √v̂ in the denominator.
    public var eps: Float
    /// Decoupled weight decay λ: each step also does `w -= lr·λ·w` (AdamW); 0 is plain Adam.
    public var weightDecay: Float

    /// Adam with PyTorch's defaults unless overridden.
    public init(lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }

    private enum CodingKeys: String, CodingKey { case lr, beta1, beta2, eps, weightDecay }

    /// Decodes, taking the default for every missing field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AdamConfig()
        lr = try c.decodeIfPresent(Float.self, forKey: .lr) ?? d.lr
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? d.beta2
        eps = try c.decodeIfPresent(Float.self, forKey: .eps) ?? d.eps
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
    }

    /// Throws `.config` when a setting is outside the range where Adam is defined.
    public func validate() throws {
        guard lr.isFinite, lr > 0 else { throw HeedError(.config, "adam: lr must be a positive number, got \(lr)") }
        guard beta1 >= 0, beta1 < 1 else { throw HeedError(.config, "adam: beta1 must be in [0, 1), got \(beta1)") }
        guard beta2 >= 0, beta2 < 1 else { throw HeedError(.config, "adam: beta2 must be in [0, 1), got \(beta2)") }
        guard eps.isFinite, eps > 0 else { throw HeedError(.config, "adam: eps must be a positive number, got \(eps)") }
        guard weightDecay.isFinite, weightDecay >= 0, lr * weightDecay < 1 else {
            throw HeedError(.config, "adam: weightDecay must be >= 0 with lr*weightDecay < 1, got \(weightDecay)")
        }
    }

    /// The scalar coefficients of update number `t` (t ≥ 1), computed in Double.
    ///
    /// Kingma & Ba (2015), Section 2 "efficient" form: α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ) and
    /// ε_t = ε·√(1−β₂ᵗ), so `w -= α_t·m/(√v + ε_t)` equals `w -= α·m̂/(√v̂ + ε)` exactly.
    @inlinable
    public func coefficients(step t: UInt32) -> AdamStep {
        precondition(t >= 1, "Adam step counts start at 1")
        let bias1 = 1 - Self.power(Double(beta1), t)
        let root2 = (1 - Self.power(Double(beta2), t)).squareRoot()
        return AdamStep(stepSize: Float(Double(lr) * root2 / bias1),
                        epsilon: Float(Double(eps) * root2),
                        decay: lr * weightDecay)
    }

    /// `base^t` through the C library (Swift has no Double power without Foundation).
    @usableFromInline
    static func power(_ base: Double, _ t: UInt32) -> Double { pow(base, Double(t)) }
}

/// Per-step Adam coefficients handed to the C kernels.
public struct AdamStep: Hashable, Sendable {
    /// α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ).
    public var stepSize: Float
    /// ε_t = ε·√(1−β₂ᵗ).
    public var epsilon: Float
    /// lr·λ, the decoupled weight-decay factor (0 for plain Adam).
    public var decay: Float

    /// Wraps precomputed coefficients.
    @inlinable
    public init(stepSize: Float, epsilon: Float, decay: Float) {
        self.stepSize = stepSize
        self.epsilon = epsilon
        self.decay = decay
    }
}
