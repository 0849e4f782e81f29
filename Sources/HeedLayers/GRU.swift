// GRU (Cho et al. 2014, in PyTorch's formulation; see `GRUParameters`) unrolled over a batch
// of padded sequences.
//
// Padding: a step with `mask[b, t] = 0` leaves the state unchanged (h_t = h_{t−1}) and outputs
// zeros. This works for right padding, left padding and gaps alike: the final state is the state
// after each sequence's last real step, and padded inputs never influence anything.

/// GRU forward over all steps.
///
/// The input projection of every step is one (B·L × D_in)·(D_in × 3H) GEMM; each step then does
/// one (B × H)·(H × 3H) GEMM for the recurrent projection.
///
/// - Parameters:
///   - out: (B × L × H), overwritten: `h_t` at real steps, zeros at padded steps.
///   - finalState: (B × H), overwritten with `h_L` (the state after the last real step).
///   - cache: filled for `gruBackward`.
///   - x: (B × L × D_in).
///   - mask: (B × L) of 0/1 (1 = real step), or `.empty` for no padding.
///   - initialState: (B × H) `h_0`, or `.empty` for zeros.
///   - params: the cell's weights.
@inlinable
public func gruForward<T: Real>(_ out: inout Tensor<T>, _ finalState: inout Tensor<T>, _ cache: inout GRUCache<T>,
                                _ x: Tensor<T>, _ mask: Tensor<T>, _ initialState: Tensor<T>, _ params: GRUParameters<T>) {
    precondition(x.shape.count == 3 && x.shape[2] == params.inputSize,
                 "gru: x must be (B × L × \(params.inputSize)), got \(x.shape)")
    let b = x.shape[0], l = x.shape[1], hs = params.hiddenSize, g = 3 * hs
    precondition(mask.count == 0 || mask.count == b * l, "gru: mask \(mask.shape) does not fit x \(x.shape)")
    precondition(initialState.count == 0 || initialState.count == b * hs, "gru: initial state \(initialState.shape) is not (\(b) × \(hs))")
    denseForward(&cache.inputProjection, x, params.inputWeight, params.inputBias)
    cache.inputProjection.shape = [b, l, g]
    prepareOutput(&cache.states, like: [l + 1, b, hs])
    prepareOutput(&cache.gates, like: [l, b, g])
    prepareOutput(&cache.hiddenCandidate, like: [l, b, hs])
    prepareOutput(&cache.hiddenProjection, like: [b, g])
    prepareOutput(&out, like: [b, l, hs])
    setInitialState(&cache.states, initialState, count: b * hs)

    cache.inputProjection.data.withUnsafeBufferPointer { pxp in
    cache.states.data.withUnsafeMutableBufferPointer { pst in
    cache.gates.data.withUnsafeMutableBufferPointer { pg in
    cache.hiddenCandidate.data.withUnsafeMutableBufferPointer { phn in
    cache.hiddenProjection.data.withUnsafeMutableBufferPointer { php in
    out.data.withUnsafeMutableBufferPointer { po in
    params.hiddenWeight.data.withUnsafeBufferPointer { pwh in
    params.hiddenBias.data.withUnsafeBufferPointer { pbh in
        for t in 0..<l {
            // Safe: every offset below stays inside the buffers sized just above.
            for s in 0..<b { (php.baseAddress! + s * g).update(from: pbh.baseAddress!, count: g) }
            T.gemm(transA: false, transB: false, m: b, n: g, k: hs, alpha: 1,
                   a: pst.baseAddress! + t * b * hs, lda: hs, b: pwh.baseAddress!, ldb: g,
                   beta: 1, c: php.baseAddress!, ldc: g)
            for s in 0..<b {
                let hPrev = pst.baseAddress! + (t * b + s) * hs, hNext = pst.baseAddress! + ((t + 1) * b + s) * hs
                let gate = pg.baseAddress! + (t * b + s) * g, cand = phn.baseAddress! + (t * b + s) * hs
                let o = po.baseAddress! + (s * l + t) * hs
                if mask.count > 0 && mask.data[s * l + t] == 0 {
                    hNext.update(from: hPrev, count: hs)
                    o.update(repeating: 0, count: hs)
                    gate.update(repeating: 0, count: g)
                    cand.update(repeating: 0, count: hs)
                    continue
                }
                let xp = pxp.baseAddress! + (s * l + t) * g, hp = php.baseAddress! + s * g
                for k in 0..<hs {
                    let r = sigmoid(xp[k] + hp[k])
                    let z = sigmoid(xp[hs + k] + hp[hs + k])
                    let hn = hp[2 * hs + k]
                    let n = T.tanh(xp[2 * hs + k] + r * hn)
                    let h = (1 - z) * n + z * hPrev[k]
                    gate[k] = r; gate[hs + k] = z; gate[2 * hs + k] = n
                    cand[k] = hn
                    hNext[k] = h
                    o[k] = h
                }
            }
        }
    }}}}}}}}
    finalState = Tensor(shape: [b, hs], data: Array(cache.states.data[(l * b * hs)...]))
}

/// Backward through time of `gruForward`; accumulates into every gradient buffer.
///
/// Per real step, with `g = ∂L/∂h_t`: `dn = g(1 − z)`, `dz = g(h_{t−1} − n)`,
/// `da_n = dn(1 − n²)`, `da_r = da_n · hn · r(1 − r)`, `da_z = dz · z(1 − z)`;
/// the input projection receives `[da_r, da_z, da_n]`, the recurrent one `[da_r, da_z, da_n ⊙ r]`,
/// and `∂L/∂h_{t−1} = g ⊙ z + [da_r, da_z, da_n ⊙ r] · Whᵀ`. A padded step passes `g` through
/// unchanged. Weight gradients are summed over all steps with one GEMM each.
///
/// - Parameters:
///   - dx: (B × L × D_in), `+=`; `.empty` to skip.
///   - dInitialState: (B × H), `+=`; `.empty` to skip.
///   - grads: gradients of the weights, `+=`.
///   - dout: (B × L × H), gradient of `out` (ignored at padded steps), or `.empty` if none.
///   - dFinalState: (B × H), gradient of `finalState`, or `.empty` if none.
///   - x: (B × L × D_in), the forward input.
///   - mask: the forward mask (or `.empty`).
///   - params: the forward weights.
///   - cache: the forward cache (its scratch is reused).
@inlinable
public func gruBackward<T: Real>(_ dx: inout Tensor<T>, _ dInitialState: inout Tensor<T>, _ grads: inout GRUParameters<T>,
                                 _ dout: Tensor<T>, _ dFinalState: Tensor<T>,
                                 _ x: Tensor<T>, _ mask: Tensor<T>, _ params: GRUParameters<T>, _ cache: inout GRUCache<T>) {
    let b = x.shape[0], l = x.shape[1], hs = params.hiddenSize, g = 3 * hs
    precondition(cache.gates.count == l * b * g, "gru: cache does not match x \(x.shape)")
    precondition(dout.count == 0 || dout.count == b * l * hs, "gru: dout \(dout.shape) is not (\(b) × \(l) × \(hs))")
    precondition(dFinalState.count == 0 || dFinalState.count == b * hs, "gru: dFinalState \(dFinalState.shape) is not (\(b) × \(hs))")
    prepareOutput(&cache.dInputProjection, like: [b, l, g])
    prepareOutput(&cache.dHiddenProjection, like: [l, b, g])
    if dFinalState.count > 0 { cache.dState = dFinalState; cache.dState.shape = [b, hs] } else { cache.dState = Tensor(zeros: [b, hs]) }

    cache.gates.data.withUnsafeBufferPointer { pg in
    cache.hiddenCandidate.data.withUnsafeBufferPointer { phn in
    cache.states.data.withUnsafeBufferPointer { pst in
    cache.dInputProjection.data.withUnsafeMutableBufferPointer { pdxp in
    cache.dHiddenProjection.data.withUnsafeMutableBufferPointer { pdhp in
    cache.dState.data.withUnsafeMutableBufferPointer { pdh in
    dout.data.withUnsafeBufferPointer { pdo in
    params.hiddenWeight.data.withUnsafeBufferPointer { pwh in
        for t in stride(from: l - 1, through: 0, by: -1) {
            for s in 0..<b {
                // Safe: offsets as in the forward; dout is read only when present.
                let dxp = pdxp.baseAddress! + (s * l + t) * g, dhp = pdhp.baseAddress! + (t * b + s) * g
                if mask.count > 0 && mask.data[s * l + t] == 0 {
                    dxp.update(repeating: 0, count: g)
                    dhp.update(repeating: 0, count: g)
                    continue
                }
                let gate = pg.baseAddress! + (t * b + s) * g, cand = phn.baseAddress! + (t * b + s) * hs
                let hPrev = pst.baseAddress! + (t * b + s) * hs, dh = pdh.baseAddress! + s * hs
                for k in 0..<hs {
                    let grad = dh[k] + (pdo.isEmpty ? 0 : pdo[(s * l + t) * hs + k])
                    let r = gate[k], z = gate[hs + k], n = gate[2 * hs + k]
                    let dan = grad * (1 - z) * (1 - n * n)
                    let dar = dan * cand[k] * r * (1 - r)
                    let daz = grad * (hPrev[k] - n) * z * (1 - z)
                    dxp[k] = dar; dxp[hs + k] = daz; dxp[2 * hs + k] = dan
                    dhp[k] = dar; dhp[hs + k] = daz; dhp[2 * hs + k] = dan * r
                    dh[k] = grad * z
                }
            }
            T.gemm(transA: false, transB: true, m: b, n: hs, k: g, alpha: 1,
                   a: pdhp.baseAddress! + t * b * g, lda: g, b: pwh.baseAddress!, ldb: g,
                   beta: 1, c: pdh.baseAddress!, ldc: hs)
        }
        // dWh += Σ_t h_{t−1}ᵀ · dA_t as one (H × L·B)·(L·B × 3H) product over the time-major states.
        grads.hiddenWeight.data.withUnsafeMutableBufferPointer { pdwh in
            T.gemm(transA: true, transB: false, m: hs, n: g, k: l * b, alpha: 1,
                   a: pst.baseAddress!, lda: hs, b: pdhp.baseAddress!, ldb: g,
                   beta: 1, c: pdwh.baseAddress!, ldc: g)
        }
    }}}}}}}}
    addColumnSums(&grads.hiddenBias, cache.dHiddenProjection)
    denseBackward(&dx, &grads.inputWeight, &grads.inputBias, cache.dInputProjection, x, params.inputWeight)
    addInPlace(&dInitialState, cache.dState)
}

/// Writes `initial` (or zeros when it is empty) into the first `count` elements of `states`.
@inlinable
func setInitialState<T: Real>(_ states: inout Tensor<T>, _ initial: Tensor<T>, count: Int) {
    states.data.withUnsafeMutableBufferPointer { ps in
        // Safe: states holds (L + 1)·count ≥ count elements; initial holds count when present.
        if initial.count > 0 {
            initial.data.withUnsafeBufferPointer { pi in ps.baseAddress!.update(from: pi.baseAddress!, count: count) }
        } else {
            ps.baseAddress!.update(repeating: 0, count: count)
        }
    }
}
