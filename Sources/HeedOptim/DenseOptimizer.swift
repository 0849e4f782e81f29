import CKernels
import HeedCore

/// An optimizer with its state for one dense parameter vector (a weight matrix or bias).
///
/// Adam keeps `m`, `v` and one global step count; SGD with momentum keeps a buffer;
/// Adagrad keeps accumulators. State is plain arrays so checkpoints can save it.
public struct DenseOptimizer: Sendable {
    /// The optimizer and its settings.
    public let config: OptimizerSettings
    /// Number of parameters in the vector.
    public let count: Int
    /// Optimizer state, ((stateWidth − 1) × count) floats: Adam `[m | v]`, Adagrad `[acc]`,
    /// SGD with momentum `[buf]`, plain SGD empty.
    public var state: [Float]
    /// Updates applied so far (Adam's t after the last update).
    public var step: UInt32

    /// Fresh state for `count` parameters; `config` must be valid (see `validate()`).
    public init(config: OptimizerSettings, count: Int) {
        precondition(count >= 0, "DenseOptimizer: count must be >= 0")
        self.config = config
        self.count = count
        self.step = 0
        let fill: Float
        if case .adagrad(let a) = config { fill = a.initialAccumulator } else { fill = 0 }
        self.state = [Float](repeating: fill, count: (config.stateWidth - 1) * count)
    }

    /// Applies one gradient to the parameters in place and advances the step count.
    /// - Parameters:
    ///   - params: (count) floats, updated in place.
    ///   - grads: (count) floats.
    public mutating func update(_ params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>) {
        precondition(params.count == count && grads.count == count,
                     "DenseOptimizer: params \(params.count) and grads \(grads.count) must both hold \(count) floats")
        guard count > 0, let w = params.baseAddress, let g = grads.baseAddress else { return }
        step &+= 1
        let n = Int64(count), t = step, config = config, count = count
        state.withUnsafeMutableBufferPointer { s in
            // Safe: state holds (stateWidth − 1) × count floats, set in init and never resized.
            switch config {
            case .adam(let a):
                let c = a.coefficients(step: t)
                heed_adam_dense(w, s.baseAddress!, s.baseAddress! + count, g, n, a.beta1, a.beta2, c.stepSize, c.epsilon, c.decay)
            case .adagrad(let a):
                heed_adagrad_dense(w, s.baseAddress!, g, n, a.lr, a.eps)
            case .sgd(let c):
                if c.momentum == 0 {
                    heed_sgd_dense(w, g, n, c.lr)
                } else {
                    heed_sgd_momentum_dense(w, s.baseAddress!, g, n, c.lr, c.momentum)
                }
            }
        }
    }

    /// Array form of `update(_:grads:)`.
    /// - Parameters:
    ///   - params: (count) floats, updated in place.
    ///   - grads: (count) floats.
    public mutating func update(_ params: inout [Float], grads: [Float]) {
        params.withUnsafeMutableBufferPointer { p in
            grads.withUnsafeBufferPointer { g in update(p, grads: g) }
        }
    }
}
