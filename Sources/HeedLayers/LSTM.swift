// LSTM (see `LSTMParameters`) unrolled over a batch of padded sequences.
//
// Padding: as for the GRU, a step with `mask[b, t] = 0` leaves both hidden and cell state
// unchanged and outputs zeros, so the final state is the one after each sequence's last real
// step (right padding, left padding and gaps alike).

/// LSTM forward over all steps.
///
/// The input projection of every step is one (B·L × D_in)·(D_in × 4H) GEMM; each step then does
/// one (B × H)·(H × 4H) GEMM for the recurrent projection.
///
/// - Parameters:
///   - out: (B × L × H), overwritten: `h_t` at real steps, zeros at padded steps.
///   - finalHidden: (B × H), overwritten with `h_L`.
///   - finalCell: (B × H), overwritten with `c_L`.
///   - cache: filled for `lstmBackward`.
///   - x: (B × L × D_in).
///   - mask: (B × L) of 0/1 (1 = real step), or `.empty` for no padding.
///   - initialHidden: (B × H) `h_0`, or `.empty` for zeros.
///   - initialCell: (B × H) `c_0`, or `.empty` for zeros.
///   - params: the cell's weights.
@inlinable
public func lstmForward<T: Real>(_ out: inout Tensor<T>, _ finalHidden: inout Tensor<T>, _ finalCell: inout Tensor<T>,
                                 _ cache: inout LSTMCache<T>, _ x: Tensor<T>, _ mask: Tensor<T>,
                                 _ initialHidden: Tensor<T>, _ initialCell: Tensor<T>, _ params: LSTMParameters<T>) {
    precondition(x.shape.count == 3 && x.shape[2] == params.inputSize,
                 "lstm: x must be (B × L × \(params.inputSize)), got \(x.shape)")
    let b = x.shape[0], l = x.shape[1], hs = params.hiddenSize, g = 4 * hs
    precondition(mask.count == 0 || mask.count == b * l, "lstm: mask \(mask.shape) does not fit x \(x.shape)")
    precondition(initialHidden.count == 0 || initialHidden.count == b * hs, "lstm: initial hidden \(initialHidden.shape) is not (\(b) × \(hs))")
    precondition(initialCell.count == 0 || initialCell.count == b * hs, "lstm: initial cell \(initialCell.shape) is not (\(b) × \(hs))")
    denseForward(&cache.inputProjection, x, params.inputWeight, params.bias)
    cache.inputProjection.shape = [b, l, g]
    prepareOutput(&cache.states, like: [l + 1, b, hs])
    prepareOutput(&cache.cells, like: [l + 1, b, hs])
    prepareOutput(&cache.gates, like: [l, b, g])
    prepareOutput(&cache.cellTanh, like: [l, b, hs])
    prepareOutput(&cache.hiddenProjection, like: [b, g])
    prepareOutput(&out, like: [b, l, hs])
    setInitialState(&cache.states, initialHidden, count: b * hs)
    setInitialState(&cache.cells, initialCell, count: b * hs)

    cache.inputProjection.data.withUnsafeBufferPointer { pxp in
    cache.states.data.withUnsafeMutableBufferPointer { pst in
    cache.cells.data.withUnsafeMutableBufferPointer { pc in
    cache.gates.data.withUnsafeMutableBufferPointer { pg in
    cache.cellTanh.data.withUnsafeMutableBufferPointer { ptc in
    cache.hiddenProjection.data.withUnsafeMutableBufferPointer { php in
    out.data.withUnsafeMutableBufferPointer { po in
    params.hiddenWeight.data.withUnsafeBufferPointer { pwh in
        for t in 0..<l {
            // Safe: every offset below stays inside the buffers sized just above.
            T.gemm(transA: false, transB: false, m: b, n: g, k: hs, alpha: 1,
                   a: pst.baseAddress! + t * b * hs, lda: hs, b: pwh.baseAddress!, ldb: g,
                   beta: 0, c: php.baseAddress!, ldc: g)
            for s in 0..<b {
                let row = t * b + s
                let hPrev = pst.baseAddress! + row * hs, hNext = pst.baseAddress! + (row + b) * hs
                let cPrev = pc.baseAddress! + row * hs, cNext = pc.baseAddress! + (row + b) * hs
                let gate = pg.baseAddress! + row * g, tc = ptc.baseAddress! + row * hs
                let o = po.baseAddress! + (s * l + t) * hs
                if mask.count > 0 && mask.data[s * l + t] == 0 {
                    hNext.update(from: hPrev, count: hs)
                    cNext.update(from: cPrev, count: hs)
                    o.update(repeating: 0, count: hs)
                    gate.update(repeating: 0, count: g)
                    tc.update(repeating: 0, count: hs)
                    continue
                }
                let xp = pxp.baseAddress! + (s * l + t) * g, hp = php.baseAddress! + s * g
                for k in 0..<hs {
                    let i = sigmoid(xp[k] + hp[k])
                    let f = sigmoid(xp[hs + k] + hp[hs + k])
                    let c̃ = T.tanh(xp[2 * hs + k] + hp[2 * hs + k])
                    let og = sigmoid(xp[3 * hs + k] + hp[3 * hs + k])
                    let c = f * cPrev[k] + i * c̃
                    let ct = T.tanh(c)
                    let h = og * ct
                    gate[k] = i; gate[hs + k] = f; gate[2 * hs + k] = c̃; gate[3 * hs + k] = og
                    tc[k] = ct
                    cNext[k] = c
                    hNext[k] = h
                    o[k] = h
                }
            }
        }
    }}}}}}}}
    finalHidden = Tensor(shape: [b, hs], data: Array(cache.states.data[(l * b * hs)...]))
    finalCell = Tensor(shape: [b, hs], data: Array(cache.cells.data[(l * b * hs)...]))
}

/// Backward through time of `lstmForward`; accumulates into every gradient buffer.
///
/// Per real step, with `gh = ∂L/∂h_t` and `gc = ∂L/∂c_t + gh ⊙ o ⊙ (1 − tanh²c_t)`:
/// `da = [gc·g·i(1−i), gc·c_{t−1}·f(1−f), gc·i·(1−g²), gh·tanh(c_t)·o(1−o)]`,
/// `∂L/∂c_{t−1} = gc ⊙ f`, `∂L/∂h_{t−1} = da · Whᵀ`. A padded step passes both gradients
/// through unchanged. Weight gradients are summed over all steps with one GEMM each.
///
/// - Parameters:
///   - dx: (B × L × D_in), `+=`; `.empty` to skip.
///   - dInitialHidden: (B × H), `+=`; `.empty` to skip.
///   - dInitialCell: (B × H), `+=`; `.empty` to skip.
///   - grads: gradients of the weights, `+=`.
///   - dout: (B × L × H), gradient of `out` (ignored at padded steps), or `.empty` if none.
///   - dFinalHidden: (B × H) or `.empty`.
///   - dFinalCell: (B × H) or `.empty`.
///   - x: (B × L × D_in), the forward input.
///   - mask: the forward mask (or `.empty`).
///   - params: the forward weights.
///   - cache: the forward cache (its scratch is reused).
@inlinable
public func lstmBackward<T: Real>(_ dx: inout Tensor<T>, _ dInitialHidden: inout Tensor<T>, _ dInitialCell: inout Tensor<T>,
                                  _ grads: inout LSTMParameters<T>,
                                  _ dout: Tensor<T>, _ dFinalHidden: Tensor<T>, _ dFinalCell: Tensor<T>,
                                  _ x: Tensor<T>, _ mask: Tensor<T>, _ params: LSTMParameters<T>, _ cache: inout LSTMCache<T>) {
    let b = x.shape[0], l = x.shape[1], hs = params.hiddenSize, g = 4 * hs
    precondition(cache.gates.count == l * b * g, "lstm: cache does not match x \(x.shape)")
    precondition(dout.count == 0 || dout.count == b * l * hs, "lstm: dout \(dout.shape) is not (\(b) × \(l) × \(hs))")
    precondition(dFinalHidden.count == 0 || dFinalHidden.count == b * hs, "lstm: dFinalHidden \(dFinalHidden.shape) is not (\(b) × \(hs))")
    precondition(dFinalCell.count == 0 || dFinalCell.count == b * hs, "lstm: dFinalCell \(dFinalCell.shape) is not (\(b) × \(hs))")
    prepareOutput(&cache.dInputProjection, like: [b, l, g])
    prepareOutput(&cache.dHiddenProjection, like: [l, b, g])
    if dFinalHidden.count > 0 { cache.dState = dFinalHidden; cache.dState.shape = [b, hs] } else { cache.dState = Tensor(zeros: [b, hs]) }
    if dFinalCell.count > 0 { cache.dCell = dFinalCell; cache.dCell.shape = [b, hs] } else { cache.dCell = Tensor(zeros: [b, hs]) }

    cache.gates.data.withUnsafeBufferPointer { pg in
    cache.cellTanh.data.withUnsafeBufferPointer { ptc in
    cache.cells.data.withUnsafeBufferPointer { pc in
    cache.states.data.withUnsafeBufferPointer { pst in
    cache.dInputProjection.data.withUnsafeMutableBufferPointer { pdxp in
    cache.dHiddenProjection.data.withUnsafeMutableBufferPointer { pdhp in
    cache.dState.data.withUnsafeMutableBufferPointer { pdh in
    cache.dCell.data.withUnsafeMutableBufferPointer { pdc in
    dout.data.withUnsafeBufferPointer { pdo in
    params.hiddenWeight.data.withUnsafeBufferPointer { pwh in
        for t in stride(from: l - 1, through: 0, by: -1) {
            for s in 0..<b {
                // Safe: offsets as in the forward; dout is read only when present.
                let row = t * b + s
                let dxp = pdxp.baseAddress! + (s * l + t) * g, dhp = pdhp.baseAddress! + row * g
                if mask.count > 0 && mask.data[s * l + t] == 0 {
                    dxp.update(repeating: 0, count: g)
                    dhp.update(repeating: 0, count: g)
                    continue
                }
                let gate = pg.baseAddress! + row * g, tc = ptc.baseAddress! + row * hs
                let cPrev = pc.baseAddress! + row * hs
                let dh = pdh.baseAddress! + s * hs, dc = pdc.baseAddress! + s * hs
                for k in 0..<hs {
                    let gh = dh[k] + (pdo.isEmpty ? 0 : pdo[(s * l + t) * hs + k])
                    let i = gate[k], f = gate[hs + k], c̃ = gate[2 * hs + k], og = gate[3 * hs + k], ct = tc[k]
                    let gc = dc[k] + gh * og * (1 - ct * ct)
                    let dai = gc * c̃ * i * (1 - i)
                    let daf = gc * cPrev[k] * f * (1 - f)
                    let dag = gc * i * (1 - c̃ * c̃)
                    let dao = gh * ct * og * (1 - og)
                    dxp[k] = dai; dxp[hs + k] = daf; dxp[2 * hs + k] = dag; dxp[3 * hs + k] = dao
                    dhp[k] = dai; dhp[hs + k] = daf; dhp[2 * hs + k] = dag; dhp[3 * hs + k] = dao
                    dc[k] = gc * f
                    dh[k] = 0
                }
            }
            T.gemm(transA: false, transB: true, m: b, n: hs, k: g, alpha: 1,
                   a: pdhp.baseAddress! + t * b * g, lda: g, b: pwh.baseAddress!, ldb: g,
                   beta: 1, c: pdh.baseAddress!, ldc: hs)
        }
        // dWh += Σ_t h_{t−1}ᵀ · da_t as one (H × L·B)·(L·B × 4H) product over the time-major states.
        grads.hiddenWeight.data.withUnsafeMutableBufferPointer { pdwh in
            T.gemm(transA: true, transB: false, m: hs, n: g, k: l * b, alpha: 1,
                   a: pst.baseAddress!, lda: hs, b: pdhp.baseAddress!, ldb: g,
                   beta: 1, c: pdwh.baseAddress!, ldc: g)
        }
    }}}}}}}}}}
    denseBackward(&dx, &grads.inputWeight, &grads.bias, cache.dInputProjection, x, params.inputWeight)
    addInPlace(&dInitialHidden, cache.dState)
    addInPlace(&dInitialCell, cache.dCell)
}
