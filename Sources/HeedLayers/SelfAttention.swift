/// Multi-head scaled dot-product self-attention (Vaswani et al. 2017, §3.2) over a batch of
/// sequences, with a key/query padding mask and an optional causal mask.
///
/// For every sequence `b` and head `h` (width `dh = D / H`):
///   `Q = x·Wq + bq`, `K = x·Wk + bk`, `V = x·Wv + bv`  (one (B·L × D)·(D × D) GEMM each),
///   `P = softmax(Q_h K_hᵀ / √dh)` over the allowed keys (per-(b, h) GEMM),
///   `C_h = P V_h`, `out = C·Wo + bo`.
/// Key `j` is allowed for query `i` when `mask[b, j] = 1` and, if `causal`, `j ≤ i`.
/// Rows of padded queries (`mask[b, i] = 0`) output zeros, and so does a query with no
/// allowed key (its weights are defined as all zero instead of the 0/0 of a softmax).
/// Padded positions therefore neither influence real outputs nor receive gradient.
///
/// - Parameters:
///   - out: (B × L × D), overwritten.
///   - cache: saved projections and weights for the backward; `cache.probabilities` is
///     (B × H × L × L) and may be read for explanations.
///   - x: (B × L × D).
///   - mask: (B × L) of 0/1 (1 = real position), or `.empty` for no padding.
///   - params: the projections, width D.
///   - heads: H, must divide D.
///   - causal: whether query `i` may only attend to keys `j ≤ i`.
@inlinable
public func selfAttentionForward<T: Real>(_ out: inout Tensor<T>, _ cache: inout SelfAttentionCache<T>,
                                          _ x: Tensor<T>, _ mask: Tensor<T>, _ params: SelfAttentionParameters<T>,
                                          heads: Int, causal: Bool) {
    precondition(x.shape.count == 3, "self-attention: x must be (B × L × D), got \(x.shape)")
    let b = x.shape[0], l = x.shape[1], d = x.shape[2]
    precondition(d == params.dim && heads > 0 && d % heads == 0,
                 "self-attention: width \(d) does not fit parameters of width \(params.dim) with \(heads) heads")
    precondition(mask.count == 0 || mask.count == b * l, "self-attention: mask \(mask.shape) does not fit x \(x.shape)")
    let dh = d / heads
    let scale = 1 / T.sqrt(T(dh))

    denseForward(&cache.query, x, params.queryWeight, params.queryBias)
    denseForward(&cache.key, x, params.keyWeight, params.keyBias)
    denseForward(&cache.value, x, params.valueWeight, params.valueBias)
    cache.query.shape = [b, l, d]; cache.key.shape = [b, l, d]; cache.value.shape = [b, l, d]
    prepareOutput(&cache.probabilities, like: [b, heads, l, l])
    prepareOutput(&cache.context, like: [b, l, d])

    cache.query.data.withUnsafeBufferPointer { pq in
        cache.key.data.withUnsafeBufferPointer { pk in
            cache.value.data.withUnsafeBufferPointer { pv in
                cache.probabilities.data.withUnsafeMutableBufferPointer { pp in
                    cache.context.data.withUnsafeMutableBufferPointer { pc in
                        mask.data.withUnsafeBufferPointer { pm in
                            for s in 0..<b {
                                for h in 0..<heads {
                                    // Safe: head h of sequence s starts at row s·L, column h·dh of a
                                    // (B·L × D) buffer; its (L × L) weights at (s·H + h)·L². All in range
                                    // by the shape checks above.
                                    let off = s * l * d + h * dh
                                    let probs = pp.baseAddress! + (s * heads + h) * l * l
                                    T.gemm(transA: false, transB: true, m: l, n: l, k: dh, alpha: scale,
                                           a: pq.baseAddress! + off, lda: d, b: pk.baseAddress! + off, ldb: d,
                                           beta: 0, c: probs, ldc: l)
                                    maskedSoftmaxRows(probs, length: l,
                                                      mask: pm.isEmpty ? nil : pm.baseAddress! + s * l, causal: causal)
                                    T.gemm(transA: false, transB: false, m: l, n: dh, k: l, alpha: 1,
                                           a: probs, lda: l, b: pv.baseAddress! + off, ldb: d,
                                           beta: 0, c: pc.baseAddress! + off, ldc: d)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    denseForward(&out, cache.context, params.outputWeight, params.outputBias)
    out.shape = [b, l, d]
    if mask.count > 0 { zeroPaddedRows(&out, mask, width: d) }
}

/// Backward of `selfAttentionForward`; accumulates into `dx` and `grads`.
///
/// With `dS = P ⊙ (dP − rowsum(dP ⊙ P))` the softmax backward, per head:
/// `dP = dC_h V_hᵀ`, `dV_h = Pᵀ dC_h`, `dQ_h = dS K_h / √dh`, `dK_h = dSᵀ Q_h / √dh`;
/// the projections then back-propagate as dense layers. Padded query rows of `dout` are ignored
/// (they must be finite: they meet only zero attention weights).
///
/// - Parameters:
///   - dx: (B × L × D), `+=`; `.empty` to skip.
///   - grads: gradients of the projections, width D, `+=`.
///   - dout: (B × L × D).
///   - x: (B × L × D), the forward input.
///   - mask: (B × L), the forward mask (or `.empty`).
///   - params: the forward parameters.
///   - cache: the forward's cache (its scratch buffers are reused).
///   - heads: H, as in the forward.
@inlinable
public func selfAttentionBackward<T: Real>(_ dx: inout Tensor<T>, _ grads: inout SelfAttentionParameters<T>,
                                           _ dout: Tensor<T>, _ x: Tensor<T>, _ mask: Tensor<T>,
                                           _ params: SelfAttentionParameters<T>, _ cache: inout SelfAttentionCache<T>,
                                           heads: Int) {
    let b = x.shape[0], l = x.shape[1], d = x.shape[2]
    precondition(dout.count == b * l * d, "self-attention: dout \(dout.shape) does not fit x \(x.shape)")
    precondition(cache.probabilities.count == b * heads * l * l, "self-attention: cache does not match x \(x.shape)")
    precondition(grads.dim == d, "self-attention: gradient width \(grads.dim) does not fit \(d)")
    let dh = d / heads
    let scale = 1 / T.sqrt(T(dh))

    // Output projection. Context rows of padded queries are zero, so they add nothing to dWo,
    // and their dContext rows only ever meet zero rows of P below; only the output bias needs
    // the mask explicitly. This spares a masked copy of dout.
    prepareOutput(&cache.dContext, like: [b * l, d])
    dout.data.withUnsafeBufferPointer { pd in
        cache.context.data.withUnsafeBufferPointer { pc in
            grads.outputWeight.data.withUnsafeMutableBufferPointer { pdw in
                // Safe: (B·L × D)ᵀ·(B·L × D) into (D × D), counts checked above.
                T.gemm(transA: true, transB: false, m: d, n: d, k: b * l, alpha: 1,
                       a: pc.baseAddress!, lda: d, b: pd.baseAddress!, ldb: d,
                       beta: 1, c: pdw.baseAddress!, ldc: d)
            }
        }
        grads.outputBias.data.withUnsafeMutableBufferPointer { pdb in
            for r in 0..<b * l where mask.count == 0 || mask.data[r] != 0 {
                // Safe: r < B·L rows of width d.
                let row = pd.baseAddress! + r * d
                for j in 0..<d { pdb[j] += row[j] }
            }
        }
        params.outputWeight.data.withUnsafeBufferPointer { pw in
            cache.dContext.data.withUnsafeMutableBufferPointer { pdc in
                // Safe: (B·L × D)·(D × D)ᵀ into (B·L × D); beta = 0 overwrites the scratch.
                T.gemm(transA: false, transB: true, m: b * l, n: d, k: d, alpha: 1,
                       a: pd.baseAddress!, lda: d, b: pw.baseAddress!, ldb: d,
                       beta: 0, c: pdc.baseAddress!, ldc: d)
            }
        }
    }

    prepareOutput(&cache.dQuery, like: [b, l, d])
    prepareOutput(&cache.dKey, like: [b, l, d])
    prepareOutput(&cache.dValue, like: [b, l, d])
    prepareOutput(&cache.dScores, like: [l, l])
    cache.query.data.withUnsafeBufferPointer { pq in
    cache.key.data.withUnsafeBufferPointer { pk in
    cache.value.data.withUnsafeBufferPointer { pv in
    cache.probabilities.data.withUnsafeBufferPointer { pp in
    cache.dContext.data.withUnsafeBufferPointer { pdc in
    cache.dQuery.data.withUnsafeMutableBufferPointer { pdq in
    cache.dKey.data.withUnsafeMutableBufferPointer { pdk in
    cache.dValue.data.withUnsafeMutableBufferPointer { pdv in
    cache.dScores.data.withUnsafeMutableBufferPointer { pds in
        let ds = pds.baseAddress!
        for s in 0..<b {
            for h in 0..<heads {
                // Safe: same offsets as the forward; every (s, h) block of dQ/dK/dV is written
                // exactly once (beta = 0), so the scratch needs no zeroing.
                let off = s * l * d + h * dh
                let probs = pp.baseAddress! + (s * heads + h) * l * l
                T.gemm(transA: false, transB: true, m: l, n: l, k: dh, alpha: 1,
                       a: pdc.baseAddress! + off, lda: d, b: pv.baseAddress! + off, ldb: d,
                       beta: 0, c: ds, ldc: l)
                T.gemm(transA: true, transB: false, m: l, n: dh, k: l, alpha: 1,
                       a: probs, lda: l, b: pdc.baseAddress! + off, ldb: d,
                       beta: 0, c: pdv.baseAddress! + off, ldc: d)
                softmaxBackwardRows(ds, probs, length: l)
                T.gemm(transA: false, transB: false, m: l, n: dh, k: l, alpha: scale,
                       a: ds, lda: l, b: pk.baseAddress! + off, ldb: d,
                       beta: 0, c: pdq.baseAddress! + off, ldc: d)
                T.gemm(transA: true, transB: false, m: l, n: dh, k: l, alpha: scale,
                       a: ds, lda: l, b: pq.baseAddress! + off, ldb: d,
                       beta: 0, c: pdk.baseAddress! + off, ldc: d)
            }
        }
    }}}}}}}}}

    denseBackward(&dx, &grads.queryWeight, &grads.queryBias, cache.dQuery, x, params.queryWeight)
    denseBackward(&dx, &grads.keyWeight, &grads.keyBias, cache.dKey, x, params.keyWeight)
    denseBackward(&dx, &grads.valueWeight, &grads.valueBias, cache.dValue, x, params.valueWeight)
}

/// In-place softmax over each row of an (L × L) score block, restricted to allowed keys.
///
/// Key `j` is allowed for query `i` when `mask[j] ≠ 0` (or `mask` is nil) and, if `causal`,
/// `j ≤ i`. Disallowed entries, rows of padded queries and rows with no allowed key become 0.
/// Subtracting the row maximum keeps `exp` from overflowing.
@inlinable
func maskedSoftmaxRows<T: Real>(_ scores: UnsafeMutablePointer<T>, length l: Int,
                                mask: UnsafePointer<T>?, causal: Bool) {
    // Disallowed keys are first set to −∞ (exp gives exactly 0), so the max, exp and sum loops
    // below run without a per-element mask test and vectorise (apart from the exp calls).
    for i in 0..<l {
        let row = scores + i * l
        if let mask, mask[i] == 0 { row.update(repeating: 0, count: l); continue }
        let limit = causal ? i + 1 : l
        if let mask {
            for j in 0..<limit { let s = row[j]; row[j] = mask[j] != 0 ? s : -T.infinity }
        }
        let maxScore = rowMax(limit) { row[$0] }
        // No allowed key in the row (all −∞): defined as all-zero weights.
        if maxScore == -T.infinity { row.update(repeating: 0, count: l); continue }
        if T.self == Float.self {
            // Safe: T is Float here, so the row is Float storage and the bit cast is the identity.
            let rowF = UnsafeMutableRawPointer(row).assumingMemoryBound(to: Float.self)
            let maxF = unsafeBitCast(maxScore, to: Float.self)
            for j in 0..<limit { rowF[j] = softmaxExp(rowF[j] - maxF) }
        } else {
            for j in 0..<limit { row[j] = T.exp(row[j] - maxScore) }
        }
        if limit < l { (row + limit).update(repeating: 0, count: l - limit) }
        let inverse = 1 / rowSum(limit) { row[$0] }
        for j in 0..<limit { row[j] *= inverse }
    }
}

/// `e^x` in Float for the softmax (x ≤ 0 there), within about one ulp of `expf`, in a form
/// the compiler vectorises (a call to `expf` per weight is scalar and was the softmax's main
/// cost). Inputs below −87 (including −∞ for masked keys) give 0; NaN stays NaN.
@inlinable @inline(__always)
public func softmaxExp(_ x: Float) -> Float {
    let xc: Float = x < -87 ? -87 : (x > 88 ? 88 : x)
    return x < -87 ? 0 : cephesExp(clamped: xc)
}

/// `max_{j < n} term(j)` (−∞ for n = 0) with eight interleaved partial maxima, which
/// vectorise where one running maximum would not (see `rowSum`).
@inlinable @inline(__always)
public func rowMax<T: Real>(_ n: Int, _ term: (Int) -> T) -> T {
    var m0 = -T.infinity, m1 = -T.infinity, m2 = -T.infinity, m3 = -T.infinity
    var m4 = -T.infinity, m5 = -T.infinity, m6 = -T.infinity, m7 = -T.infinity
    var j = 0
    while j + 8 <= n {
        m0 = max(m0, term(j)); m1 = max(m1, term(j + 1)); m2 = max(m2, term(j + 2)); m3 = max(m3, term(j + 3))
        m4 = max(m4, term(j + 4)); m5 = max(m5, term(j + 5)); m6 = max(m6, term(j + 6)); m7 = max(m7, term(j + 7))
        j += 8
    }
    var m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    while j < n { m = max(m, term(j)); j += 1 }
    return m
}

/// Turns `dP` into `dS = P ⊙ (dP − rowsum(dP ⊙ P))` in place for an (L × L) block.
///
/// Zero rows of `P` (padded or fully masked queries) give zero rows of `dS`.
@inlinable
func softmaxBackwardRows<T: Real>(_ grad: UnsafeMutablePointer<T>, _ probs: UnsafePointer<T>, length l: Int) {
    for i in 0..<l {
        let g = grad + i * l, p = probs + i * l
        let dot = rowSum(l) { g[$0] * p[$0] }
        for j in 0..<l { g[j] = p[j] * (g[j] - dot) }
    }
}

/// Sets rows `r` of `t`, viewed as (rows × width), to zero where `mask[r] = 0`.
@inlinable
func zeroPaddedRows<T: Real>(_ t: inout Tensor<T>, _ mask: Tensor<T>, width: Int) {
    precondition(t.count == mask.count * width, "mask \(mask.shape) does not fit \(t.shape)")
    t.data.withUnsafeMutableBufferPointer { pt in
        for r in 0..<mask.count where mask.data[r] == 0 {
            // Safe: r < mask.count and t holds mask.count rows of `width`.
            (pt.baseAddress! + r * width).update(repeating: 0, count: width)
        }
    }
}
