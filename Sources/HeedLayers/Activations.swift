// Elementwise activation kernels: ReLU, sigmoid, tanh and PReLU, each a forward/backward pair.
// Dice (which needs batch statistics) lives in Dice.swift; `ActivationLayer` picks one by kind.
//
// All kernels treat their input as (N × D) rows of features; the row count N is whatever the
// caller flattened (batch, batch × sequence, ...). Forward overwrites `out` (taking `x`'s
// shape); backward adds into `dx` (and `dAlpha`).

/// Makes `out` hold `shape`, reallocating only when the element count changes.
@inlinable
func prepareOutput<T: Real>(_ out: inout Tensor<T>, like shape: [Int]) {
    let n = shape.reduce(1, *)
    if out.count != n { out.resizeKeepingCapacity(shape) } else if out.shape != shape { out.shape = shape }
}

/// ReLU, `out = max(x, 0)`.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten.
///   - x: any shape.
@inlinable
public func reluForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>) {
    prepareOutput(&out, like: x.shape)
    let n = x.count
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            // Safe: both buffers hold n elements (prepareOutput).
            let o = po.baseAddress!, xs = px.baseAddress!
            for i in 0..<n { let v = xs[i]; o[i] = v > 0 ? v : 0 }
        }
    }
}

/// Backward of `reluForward`: `dx += dout ⊙ [x > 0]`.
///
/// - Parameters:
///   - dx: same shape as `x`, accumulated.
///   - dout: same shape as `x`.
///   - x: the forward input.
@inlinable
public func reluBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, _ x: Tensor<T>) {
    let n = x.count
    precondition(dx.count == n && dout.count == n, "relu: dx \(dx.shape) / dout \(dout.shape) do not fit input \(x.shape)")
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            x.data.withUnsafeBufferPointer { px in
                // Safe: all three hold n elements (checked above). Loading `dout` unconditionally
                // lets the loop vectorise as a select.
                let g = pdx.baseAddress!, d = pd.baseAddress!, xs = px.baseAddress!
                for i in 0..<n { let v = d[i]; g[i] += xs[i] > 0 ? v : 0 }
            }
        }
    }
}

/// Logistic sigmoid `1 / (1 + e^−x)`; saturates to exactly 0 or 1 without NaN for large |x|.
@inlinable
public func sigmoid<T: Real>(_ x: T) -> T { 1 / (1 + T.exp(-x)) }

/// Sigmoid, `out = 1 / (1 + e^−x)`.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten.
///   - x: any shape.
@inlinable
public func sigmoidForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>) {
    prepareOutput(&out, like: x.shape)
    let n = x.count
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            // Safe: both buffers hold n elements.
            sigmoidRow(po.baseAddress!, px.baseAddress!, count: n)
        }
    }
}

/// Backward of `sigmoidForward` from its output `y`: `dx += dout ⊙ y ⊙ (1 − y)`.
///
/// - Parameters:
///   - dx: same shape as `out`, accumulated.
///   - dout: same shape as `out`.
///   - out: the forward output `y`.
@inlinable
public func sigmoidBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, _ out: Tensor<T>) {
    let n = out.count
    precondition(dx.count == n && dout.count == n, "sigmoid: dx \(dx.shape) / dout \(dout.shape) do not fit output \(out.shape)")
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            out.data.withUnsafeBufferPointer { py in
                // Safe: all three hold n elements.
                let g = pdx.baseAddress!, d = pd.baseAddress!, y = py.baseAddress!
                for i in 0..<n { let v = y[i]; g[i] += d[i] * v * (1 - v) }
            }
        }
    }
}

/// Hyperbolic tangent, `out = tanh(x)`.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten.
///   - x: any shape.
@inlinable
public func tanhForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>) {
    prepareOutput(&out, like: x.shape)
    let n = x.count
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            // Safe: both buffers hold n elements.
            for i in 0..<n { po[i] = T.tanh(px[i]) }
        }
    }
}

/// Backward of `tanhForward` from its output `y`: `dx += dout ⊙ (1 − y²)`.
///
/// - Parameters:
///   - dx: same shape as `out`, accumulated.
///   - dout: same shape as `out`.
///   - out: the forward output `y`.
@inlinable
public func tanhBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, _ out: Tensor<T>) {
    let n = out.count
    precondition(dx.count == n && dout.count == n, "tanh: dx \(dx.shape) / dout \(dout.shape) do not fit output \(out.shape)")
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            out.data.withUnsafeBufferPointer { py in
                // Safe: all three hold n elements.
                let g = pdx.baseAddress!, d = pd.baseAddress!, y = py.baseAddress!
                for i in 0..<n { let v = y[i]; g[i] += d[i] * (1 - v * v) }
            }
        }
    }
}

/// PReLU (He et al. 2015) with one learnable slope per feature:
/// `out = x` where `x > 0`, else `alpha[j] · x`.
///
/// - Parameters:
///   - out: (N × D), overwritten.
///   - x: (N × D).
///   - alpha: (D), the negative-side slopes.
@inlinable
public func preluForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, _ alpha: Tensor<T>) {
    let d = x.lastDim, rows = x.rows
    precondition(alpha.count == d, "prelu: alpha \(alpha.shape) does not fit input \(x.shape)")
    prepareOutput(&out, like: x.shape)
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            alpha.data.withUnsafeBufferPointer { pa in
                // Safe: x and out hold rows·d elements, alpha d (checked above).
                let a = pa.baseAddress!
                for r in 0..<rows {
                    let o = po.baseAddress! + r &* d, xs = px.baseAddress! + r &* d
                    for j in 0..<d { let v = xs[j], av = a[j] * v; o[j] = v > 0 ? v : av }
                }
            }
        }
    }
}

/// Backward of `preluForward`.
///
/// - Parameters:
///   - dx: (N × D), `+= dout ⊙ (x > 0 ? 1 : alpha)`; pass `.empty` to skip.
///   - dAlpha: (D), `+= Σ_rows dout ⊙ min(x, 0)`; pass `.empty` to skip.
///   - dout: (N × D).
///   - x: (N × D), the forward input.
///   - alpha: (D).
@inlinable
public func preluBackward<T: Real>(_ dx: inout Tensor<T>, _ dAlpha: inout Tensor<T>,
                                   _ dout: Tensor<T>, _ x: Tensor<T>, _ alpha: Tensor<T>) {
    let d = x.lastDim, rows = x.rows, n = x.count
    precondition(alpha.count == d && dout.count == n, "prelu: alpha \(alpha.shape) / dout \(dout.shape) do not fit input \(x.shape)")
    precondition(dx.count == 0 || dx.count == n, "prelu: dx \(dx.shape) does not fit input \(x.shape)")
    precondition(dAlpha.count == 0 || dAlpha.count == d, "prelu: dAlpha \(dAlpha.shape) does not fit \(alpha.shape)")
    dout.data.withUnsafeBufferPointer { pd in
        x.data.withUnsafeBufferPointer { px in
            if dx.count > 0 {
                dx.data.withUnsafeMutableBufferPointer { pdx in
                    alpha.data.withUnsafeBufferPointer { pa in
                        // Safe: counts checked above.
                        let a = pa.baseAddress!
                        for r in 0..<rows {
                            let g = pdx.baseAddress! + r &* d, dy = pd.baseAddress! + r &* d, xs = px.baseAddress! + r &* d
                            for j in 0..<d { let v = dy[j], av = a[j] * v; g[j] += xs[j] > 0 ? v : av }
                        }
                    }
                }
            }
            if dAlpha.count > 0 {
                dAlpha.data.withUnsafeMutableBufferPointer { pga in
                    // Safe: counts checked above.
                    let ga = pga.baseAddress!
                    for r in 0..<rows {
                        let dy = pd.baseAddress! + r &* d, xs = px.baseAddress! + r &* d
                        for j in 0..<d { let v = xs[j], neg = dy[j] * v; ga[j] += v > 0 ? 0 : neg }
                    }
                }
            }
        }
    }
}
