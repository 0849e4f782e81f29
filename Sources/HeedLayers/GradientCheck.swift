/// Central-difference gradient checking in Double, used by every layer's tests.
///
/// For a scalar function `f` of a tensor `x`, the numeric gradient is
/// `(f(x + h eᵢ) − f(x − h eᵢ)) / 2h` per element; a layer's analytic gradient passes
/// when every element agrees within `atol + rtol·|numeric|`.
public enum GradientCheck {
    /// Numeric gradient of `f` at `x`.
    public static func numeric(at x: Tensor<Double>, step h: Double = 1e-6,
                               _ f: (Tensor<Double>) -> Double) -> Tensor<Double> {
        var grad = Tensor<Double>(zeros: x.shape)
        var probe = x
        for i in 0..<x.count {
            let saved = probe.data[i]
            probe.data[i] = saved + h
            let up = f(probe)
            probe.data[i] = saved - h
            let down = f(probe)
            probe.data[i] = saved
            grad.data[i] = (up - down) / (2 * h)
        }
        return grad
    }

    /// The largest violation of `|a − n| ≤ atol + rtol·|n|` over all elements, with its index;
    /// `nil` when every element passes.
    public static func firstMismatch(analytic: Tensor<Double>, numeric: Tensor<Double>,
                                     rtol: Double = 1e-5, atol: Double = 1e-7) -> (index: Int, analytic: Double, numeric: Double)? {
        precondition(analytic.count == numeric.count, "gradient shapes differ: \(analytic.shape) vs \(numeric.shape)")
        var worst: (Int, Double, Double)? = nil
        var worstExcess = 0.0
        for i in 0..<analytic.count {
            let a = analytic.data[i], n = numeric.data[i]
            let excess = abs(a - n) - (atol + rtol * abs(n))
            if excess > worstExcess || a.isNaN { worstExcess = excess; worst = (i, a, n) }
        }
        return worst.map { (index: $0.0, analytic: $0.1, numeric: $0.2) }
    }

    /// A deterministic random tensor (values uniform in [−scale, scale)) for test inputs.
    public static func random(_ shape: [Int], seed: UInt64, scale: Double = 1) -> Tensor<Double> {
        var rng = SeededGenerator(seed: seed)
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in (rng.nextUnitDouble() * 2 - 1) * scale })
    }

    /// Σ out ⊙ weights: the scalar "loss" used to probe a layer, whose `dout` is `weights`.
    public static func weightedSum(_ out: Tensor<Double>, _ weights: Tensor<Double>) -> Double {
        var s = 0.0
        for i in 0..<out.count { s += out.data[i] * weights.data[i] }
        return s
    }
}

import HeedCore
