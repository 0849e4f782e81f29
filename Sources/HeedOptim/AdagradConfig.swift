import HeedCore

/// Adagrad settings (Duchi, Hazan & Singer 2011, diagonal form).
///
/// Update: `acc += g²; w -= lr·g/(√acc + ε)`, with `acc` starting at `initialAccumulator`.
public struct AdagradConfig: Codable, Hashable, Sendable {
    /// Learning rate.
    public var lr: Float
    /// ε added to √acc in the denominator.
    public var eps: Float
    /// Starting value of every accumulator entry (TensorFlow uses 0.1, PyTorch 0).
    public var initialAccumulator: Float

    /// Adagrad with PyTorch's defaults unless overridden.
    public init(lr: Float = 0.01, eps: Float = 1e-10, initialAccumulator: Float = 0) {
        self.lr = lr
        self.eps = eps
        self.initialAccumulator = initialAccumulator
    }

    private enum CodingKeys: String, CodingKey { case lr, eps, initialAccumulator }

    /// Decodes, taking the default for every missing field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AdagradConfig()
        lr = try c.decodeIfPresent(Float.self, forKey: .lr) ?? d.lr
        eps = try c.decodeIfPresent(Float.self, forKey: .eps) ?? d.eps
        initialAccumulator = try c.decodeIfPresent(Float.self, forKey: .initialAccumulator) ?? d.initialAccumulator
    }

    /// Throws `.config` for a non-positive rate or ε, or a negative starting accumulator.
    public func validate() throws {
        guard lr.isFinite, lr > 0 else { throw HeedError(.config, "adagrad: lr must be a positive number, got \(lr)") }
        guard eps.isFinite, eps > 0 else { throw HeedError(.config, "adagrad: eps must be a positive number, got \(eps)") }
        guard initialAccumulator.isFinite, initialAccumulator >= 0 else {
            throw HeedError(.config, "adagrad: initialAccumulator must be >= 0, got \(initialAccumulator)")
        }
    }
}
