import HeedCore

/// Stochastic gradient descent settings, optionally with heavy-ball momentum.
///
/// Update (PyTorch's form of Sutskever et al. 2013): `buf = μ·buf + g; w -= lr·buf`;
/// with `momentum == 0` no buffer is kept and `w -= lr·g`.
public struct SGDConfig: Codable, Hashable, Sendable {
    /// Learning rate.
    public var lr: Float
    /// Momentum μ in [0, 1); 0 disables the buffer.
    public var momentum: Float

    /// SGD with the given rate and no momentum unless asked.
    public init(lr: Float = 0.01, momentum: Float = 0) {
        self.lr = lr
        self.momentum = momentum
    }

    private enum CodingKeys: String, CodingKey { case lr, momentum }

    /// Decodes, taking the default for every missing field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lr = try c.decodeIfPresent(Float.self, forKey: .lr) ?? 0.01
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? 0
    }

    /// Throws `.config` for a non-positive rate or a momentum outside [0, 1).
    public func validate() throws {
        guard lr.isFinite, lr > 0 else { throw HeedError(.config, "sgd: lr must be a positive number, got \(lr)") }
        guard momentum >= 0, momentum < 1 else { throw HeedError(.config, "sgd: momentum must be in [0, 1), got \(momentum)") }
    }
}
