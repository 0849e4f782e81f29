import CKernels
import HeedCore

/// Applies one optimizer to embedding rows stored as `[w | state]`, each part `dim` floats.
///
/// Layouts (floats): Adam `[w | m | v]`, Adagrad `[w | acc]`, SGD `[w]` or `[w | buf]`
/// with momentum; `width = config.stateWidth · dim`. Updates are *lazy*: only rows that
/// receive a gradient change, and Adam's bias correction uses the row's own step count
/// (the number of updates that row has received), not a global one.
public struct RowOptimizer: Sendable {
    /// The optimizer and its settings.
    public let config: OptimizerSettings
    /// Embedding dimension (floats of `w` per row).
    public let dim: Int
    /// Floats per row, parameter and state together.
    public let width: Int
    /// Adam coefficients for steps 1...count, precomputed because two `pow` calls per row
    /// cost as much as the row's arithmetic, as (count × 3) floats `{stepSize, epsilon,
    /// decay}` of step t at `3(t−1)` (the layout the C row kernels read); empty unless
    /// Adam. Later steps are computed on the fly unless `adamStepsAreFinal`.
    public let adamCoefficients: [Float]
    /// Every step past the table has exactly the last entry's coefficients: from there on
    /// β1^t and β2^t are below 2^-54, so `1 − β^t` is 1.0 in Double and the bias
    /// corrections vanish bit for bit. Frequent features pass any fixed table size; with
    /// this they never fall back to `pow` per row.
    public let adamStepsAreFinal: Bool

    /// Tabulated steps (adamCoefficients.count / 3).
    @inlinable var adamStepCount: Int { adamCoefficients.count / 3 }

    /// The coefficients of tabulated step `k + 1` (k < adamStepCount).
    @inlinable func adamStep(at k: Int) -> AdamStep {
        // Safe: callers keep k in 0..<adamStepCount, so 3k + 2 < adamCoefficients.count.
        adamCoefficients.withUnsafeBufferPointer { c in AdamStep(stepSize: c[3 * k], epsilon: c[3 * k + 1], decay: c[3 * k + 2]) }
    }

    /// The tabulated coefficients as values (a copy, for tests and inspection).
    var adamSteps: [AdamStep] { (0..<adamStepCount).map(adamStep(at:)) }

    /// Steps tabulated when the coefficients do not settle within `maxTabulatedSteps`.
    static let tabulatedSteps = 4096
    /// Largest table (12 bytes per step) built to reach the settled coefficients; β2 = 0.999
    /// settles after about 37,400 steps.
    static let maxTabulatedSteps = 1 << 16

    /// The first step from which Adam's bias corrections are exactly 1 in Double
    /// (β^t < 2^-54 for both betas), or nil if that is past `maxTabulatedSteps`.
    static func settledStep(_ a: AdamConfig) -> Int? {
        // β^t falls monotonically with t, so the first settled step is found by a scan
        // (at most 2 · maxTabulatedSteps `pow` calls, once per table).
        (1...maxTabulatedSteps).first { t in
            AdamConfig.power(Double(a.beta1), UInt32(t)) < 0x1p-54 && AdamConfig.power(Double(a.beta2), UInt32(t)) < 0x1p-54
        }
    }

    /// An optimizer for rows of `dim` floats; `config` must be valid (see `validate()`).
    public init(config: OptimizerSettings, dim: Int) {
        precondition(dim > 0, "RowOptimizer: dim must be positive")
        self.config = config
        self.dim = dim
        self.width = config.stateWidth * dim
        if case .adam(let a) = config {
            let settled = Self.settledStep(a)
            adamCoefficients = (1...UInt32(settled ?? Self.tabulatedSteps)).flatMap { t in
                let c = a.coefficients(step: t)
                return [c.stepSize, c.epsilon, c.decay]
            }
            adamStepsAreFinal = settled != nil
        } else {
            adamCoefficients = []
            adamStepsAreFinal = false
        }
    }

    /// Sets the state part of a new row (everything after `w`): Adam moments and SGD
    /// momentum to 0, Adagrad accumulators to `initialAccumulator`.
    /// - Parameter row: `width` floats; `w` (the first `dim`) is left untouched.
    public func initializeState(_ row: UnsafeMutablePointer<Float>) {
        let stateCount = width - dim
        guard stateCount > 0 else { return }
        if case .adagrad(let c) = config {
            (row + dim).update(repeating: c.initialAccumulator, count: stateCount)
        } else {
            (row + dim).update(repeating: 0, count: stateCount)
        }
    }

    /// Applies one gradient to one row whose step count, after this update, is `step`.
    /// - Parameters:
    ///   - row: `width` floats `[w | state]`, updated in place.
    ///   - grad: `dim` floats.
    ///   - step: the row's update count including this one (≥ 1); only Adam reads it.
    @inlinable
    public func update(row: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, step: UInt32) {
        switch config {
        case .adam(let a):
            let k = Int(step) &- 1, n = adamStepCount
            let c = k >= 0 && (k < n || adamStepsAreFinal) ? adamStep(at: min(k, n - 1)) : a.coefficients(step: step)
            heed_adam_row(row, grad, Int64(dim), a.beta1, a.beta2, c.stepSize, c.epsilon, c.decay)
        case .adagrad(let a):
            heed_adagrad_row(row, grad, Int64(dim), a.lr, a.eps)
        case .sgd(let s):
            if s.momentum == 0 {
                heed_sgd_dense(row, grad, Int64(dim), s.lr)
            } else {
                heed_sgd_momentum_dense(row, row + dim, grad, Int64(dim), s.lr, s.momentum)
            }
        }
    }

    /// Lazy sparse update of a row matrix: row `indices[i]` gets gradient `i` and its step
    /// count goes up by one; rows not named keep their values and step counts.
    /// A row named twice is updated twice, in order.
    /// - Parameters:
    ///   - rows: (R × width), row-major `[w | state]` per row.
    ///   - steps: (R), per-row update counts.
    ///   - indices: (n), row numbers in `0..<R`.
    ///   - grads: (n × dim), row-major.
    public func update(rows: UnsafeMutableBufferPointer<Float>, steps: UnsafeMutableBufferPointer<UInt32>,
                       indices: UnsafeBufferPointer<Int>, grads: UnsafeBufferPointer<Float>) {
        precondition(rows.count == steps.count * width, "RowOptimizer: rows hold \(rows.count) floats, expected steps.count × width = \(steps.count * width)")
        precondition(grads.count == indices.count * dim, "RowOptimizer: grads hold \(grads.count) floats, expected indices.count × dim = \(indices.count * dim)")
        guard let base = rows.baseAddress, let g = grads.baseAddress else { return }
        for (i, r) in indices.enumerated() {
            precondition(r >= 0 && r < steps.count, "RowOptimizer: row index \(r) out of 0..<\(steps.count)")
            steps[r] &+= 1
            // Safe: r < R and i < n were checked, so both spans lie inside their buffers.
            update(row: base + r * width, grad: g + i * dim, step: steps[r])
        }
    }
}
