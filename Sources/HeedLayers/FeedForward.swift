/// Point-wise feed-forward network (Vaswani et al. 2017, §3.3), applied to every position
/// independently: `out = ReLU(x · W1 + b1) · W2 + b2`.
///
/// - Parameters:
///   - out: (N × D), overwritten; N is any flattening of the positions, e.g. B·L.
///   - cache: overwritten with the (N × F) pre-activation and hidden activation.
///   - x: (N × D), or (B × L × D) viewed as (B·L × D); `out` takes `x`'s shape.
///   - w1: (D × F).
///   - b1: (F).
///   - w2: (F × D).
///   - b2: (D).
@inlinable
public func feedForwardForward<T: Real>(_ out: inout Tensor<T>, _ cache: inout FeedForwardCache<T>,
                                        _ x: Tensor<T>, _ w1: Tensor<T>, _ b1: Tensor<T>, _ w2: Tensor<T>, _ b2: Tensor<T>) {
    precondition(w2.lastDim == x.lastDim, "feed-forward: w2 \(w2.shape) does not map back to width \(x.lastDim)")
    denseForward(&cache.preActivation, x, w1, b1)
    reluForward(&cache.hidden, cache.preActivation)
    denseForward(&out, cache.hidden, w2, b2)
    out.shape = x.shape
}

/// Backward of `feedForwardForward`; accumulates into every gradient buffer.
///
/// - Parameters:
///   - dx: (N × D), `+=`; `.empty` to skip.
///   - dW1: (D × F), `+=`.
///   - dB1: (F), `+=`.
///   - dW2: (F × D), `+=`.
///   - dB2: (D), `+=`.
///   - dout: (N × D).
///   - x: (N × D), the forward input.
///   - w1: (D × F).
///   - w2: (F × D).
///   - cache: the forward's cache (its scratch is reused).
@inlinable
public func feedForwardBackward<T: Real>(_ dx: inout Tensor<T>, _ dW1: inout Tensor<T>, _ dB1: inout Tensor<T>,
                                         _ dW2: inout Tensor<T>, _ dB2: inout Tensor<T>,
                                         _ dout: Tensor<T>, _ x: Tensor<T>, _ w1: Tensor<T>, _ w2: Tensor<T>,
                                         _ cache: inout FeedForwardCache<T>) {
    let rows = cache.hidden.rows, f = cache.hidden.lastDim, d = w2.lastDim
    precondition(dout.count == rows * d, "feed-forward: dout \(dout.shape) does not fit (\(rows) × \(d))")
    var noInputGrad = Tensor<T>.empty
    denseBackward(&noInputGrad, &dW2, &dB2, dout, cache.hidden, w2)
    prepareOutput(&cache.dHidden, like: [rows, f])
    cache.dHidden.data.withUnsafeMutableBufferPointer { pdh in
        dout.data.withUnsafeBufferPointer { pd in
            w2.data.withUnsafeBufferPointer { pw in
                // Safe: (rows × D)·(F × D)ᵀ into (rows × F), counts checked above; beta = 0 overwrites.
                T.gemm(transA: false, transB: true, m: rows, n: f, k: d, alpha: 1,
                       a: pd.baseAddress!, lda: d, b: pw.baseAddress!, ldb: d,
                       beta: 0, c: pdh.baseAddress!, ldc: f)
            }
        }
        cache.preActivation.data.withUnsafeBufferPointer { pp in
            // ReLU backward in place: the hidden gradient becomes the pre-activation gradient.
            // Written as a multiply by a 0/1 factor: as a select, the compiler turns it into a
            // conditional store of 0 (a branch on the sign that mispredicts half the time and
            // cannot vectorise); the product is an unconditional store and does vectorise.
            // Safe: both hold rows·F (prepareOutput above, and the forward's cache).
            guard pdh.count > 0 else { return }
            let g = pdh.baseAddress!, p = pp.baseAddress!
            for i in 0..<pdh.count { let keep: T = p[i] > 0 ? 1 : 0; g[i] *= keep }
        }
    }
    denseBackward(&dx, &dW1, &dB1, cache.dHidden, x, w1)
}
