// Dice, the data-adaptive activation of Deep Interest Network (Zhou et al., KDD 2018, eq. 9):
//
//   ŝ = (s − E[s]) / sqrt(Var[s] + ε),   p(s) = sigmoid(ŝ),
//   f(s) = p(s)·s + (1 − p(s))·α·s  =  s·(α + (1 − α)·p(s)),
//
// per feature, with E/Var over the mini-batch in training and moving averages in inference,
// and one learnable α per feature. In training the backward pass goes through the batch
// statistics (like batch normalisation), so every row's gradient depends on the whole batch.
//
// In Float the elementwise passes run in C (CKernels: built for AVX-512, AVX and the baseline,
// same operations in the same order, so the results equal the Swift loops bit for bit):
// Swift compiles these loops for the baseline's 4-lane SSE only.

import CKernels

/// What `diceForward` saves for `diceBackward`; reused across steps to avoid reallocating.
public struct DiceCache<T: Real>: Sendable {
    /// (N × D) normalised input ŝ.
    public var normalized: Tensor<T>
    /// (N × D) gate p = sigmoid(ŝ).
    public var gate: Tensor<T>
    /// (D) mean that was subtracted (batch or running).
    public var mean: Tensor<T>
    /// (D) `1 / sqrt(var + ε)` of the statistics used.
    public var invStd: Tensor<T>
    /// Rows the batch statistics were taken over; 0 when running statistics were used,
    /// in which case the backward pass has no statistics path.
    public var statisticsRows: Int
    /// (N) 0/1 mask of the rows that entered the statistics, or empty for all rows.
    public var rowMask: Tensor<T>

    /// An empty cache; `diceForward` sizes it.
    public init() {
        normalized = .empty; gate = .empty; mean = .empty; invStd = .empty
        statisticsRows = 0; rowMask = .empty
    }
}

/// Dice forward.
///
/// In training the per-feature mean and (biased) variance are taken over the rows whose
/// `rowMask` is 1 (all rows when `rowMask` is empty) — so padded positions of a sequence do not
/// skew the statistics — and the running statistics move towards them by `momentum`
/// (the running variance uses the unbiased estimate, as batch normalisation does). If no row
/// is real, the running statistics are used instead and left unchanged. Masked rows are still
/// transformed with the statistics, so the output is defined everywhere.
///
/// - Parameters:
///   - out: (N × D), overwritten.
///   - cache: filled for `diceBackward`.
///   - runningMean: (D), updated in training.
///   - runningVar: (D), updated in training.
///   - x: (N × D).
///   - alpha: (D), the learnable slope of the "off" side.
///   - rowMask: (N) of 0/1, or `.empty` for all rows.
///   - training: batch statistics (true) or running statistics (false).
///   - momentum: weight of the new batch in the running averages.
///   - epsilon: ε added to the variance.
@inlinable
public func diceForward<T: Real>(_ out: inout Tensor<T>, _ cache: inout DiceCache<T>,
                                 _ runningMean: inout Tensor<T>, _ runningVar: inout Tensor<T>,
                                 _ x: Tensor<T>, _ alpha: Tensor<T>, rowMask: Tensor<T> = .empty,
                                 training: Bool, momentum: T = 0.01, epsilon: T = 1e-8) {
    let d = x.lastDim, rows = x.rows
    precondition(alpha.count == d && runningMean.count == d && runningVar.count == d,
                 "dice: alpha \(alpha.shape) / running statistics do not fit input \(x.shape)")
    precondition(rowMask.count == 0 || rowMask.count == rows, "dice: rowMask \(rowMask.shape) does not fit \(rows) rows")
    prepareOutput(&out, like: x.shape)
    prepareOutput(&cache.normalized, like: x.shape)
    prepareOutput(&cache.gate, like: x.shape)
    prepareOutput(&cache.mean, like: [d])
    prepareOutput(&cache.invStd, like: [d])
    cache.rowMask = rowMask

    var statRows = 0
    if training {
        rowMask.data.withUnsafeBufferPointer { pm in
            statRows = rowMask.count == 0 ? rows : pm.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        }
    }
    cache.statisticsRows = statRows

    x.data.withUnsafeBufferPointer { px in
        cache.mean.data.withUnsafeMutableBufferPointer { pmean in
            cache.invStd.data.withUnsafeMutableBufferPointer { pr in
                runningMean.data.withUnsafeMutableBufferPointer { prm in
                    runningVar.data.withUnsafeMutableBufferPointer { prv in
                        // Safe: x holds rows·d, every (D) buffer d, the mask rows (checked above).
                        let mean = pmean.baseAddress!, r = pr.baseAddress!
                        if statRows > 0 {
                            rowMask.data.withUnsafeBufferPointer { pm in
                                let masked = rowMask.count > 0
                                pmean.update(repeating: 0)
                                for row in 0..<rows where !masked || pm[row] != 0 {
                                    let xs = px.baseAddress! + row &* d
                                    for j in 0..<d { mean[j] += xs[j] }
                                }
                                let inv = 1 / T(statRows)
                                for j in 0..<d { mean[j] *= inv }
                                // Two-pass variance: E[(x − mean)²] avoids the cancellation of E[x²] − mean².
                                pr.update(repeating: 0)
                                for row in 0..<rows where !masked || pm[row] != 0 {
                                    let xs = px.baseAddress! + row &* d
                                    for j in 0..<d { let c = xs[j] - mean[j]; r[j] += c * c }
                                }
                                let unbias = statRows > 1 ? T(statRows) / T(statRows - 1) : 1
                                for j in 0..<d {
                                    let v = r[j] * inv
                                    prm[j] = (1 - momentum) * prm[j] + momentum * mean[j]
                                    prv[j] = (1 - momentum) * prv[j] + momentum * v * unbias
                                    r[j] = 1 / T.sqrt(v + epsilon)
                                }
                            }
                        } else {
                            for j in 0..<d { mean[j] = prm[j]; r[j] = 1 / T.sqrt(prv[j] + epsilon) }
                        }
                    }
                }
            }
        }
    }

    x.data.withUnsafeBufferPointer { px in
        alpha.data.withUnsafeBufferPointer { pa in
            cache.mean.data.withUnsafeBufferPointer { pmean in
                cache.invStd.data.withUnsafeBufferPointer { pr in
                    cache.normalized.data.withUnsafeMutableBufferPointer { ps in
                        cache.gate.data.withUnsafeMutableBufferPointer { pp in
                            out.data.withUnsafeMutableBufferPointer { po in
                                // Safe: (N × D) buffers hold rows·d, (D) buffers d. Three simple
                                // loops per row so each vectorises (the sigmoid included, for Float).
                                let a = pa.baseAddress!, mean = pmean.baseAddress!, r = pr.baseAddress!
                                if T.self == Float.self, rows > 0 {
                                    // Safe: T is Float, so each rebinding is the identity on the same memory.
                                    func f(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
                                    func m(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
                                    heed_dice_apply(m(po.baseAddress!), m(ps.baseAddress!), m(pp.baseAddress!), f(px.baseAddress!),
                                                    f(mean), f(r), f(a), Int64(rows), Int64(d))
                                    return
                                }
                                for row in 0..<rows {
                                    let off = row &* d
                                    let xs = px.baseAddress! + off, sh = ps.baseAddress! + off
                                    let gate = pp.baseAddress! + off, o = po.baseAddress! + off
                                    for j in 0..<d { sh[j] = (xs[j] - mean[j]) * r[j] }
                                    sigmoidRow(gate, sh, count: d)
                                    for j in 0..<d { o[j] = xs[j] * (a[j] + (1 - a[j]) * gate[j]) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Backward of `diceForward`, including the path through the batch statistics in training.
///
/// With g = ∂L/∂ŝ = dout·x·(1 − α)·p·(1 − p), r = 1/sqrt(var + ε) and M statistics rows:
/// `dx = dout·(α + (1 − α)·p) + r·g − [row in statistics]·(r/M)·(Σ g + ŝ·Σ g·ŝ)`,
/// the sums running over all rows (every row's ŝ depends on the statistics).
///
/// - Parameters:
///   - dx: (N × D), accumulated; pass `.empty` to skip.
///   - dAlpha: (D), `+= Σ_rows dout·x·(1 − p)`; pass `.empty` to skip.
///   - dout: (N × D).
///   - x: (N × D), the forward input.
///   - alpha: (D).
///   - cache: from the matching `diceForward`.
@inlinable
public func diceBackward<T: Real>(_ dx: inout Tensor<T>, _ dAlpha: inout Tensor<T>,
                                  _ dout: Tensor<T>, _ x: Tensor<T>, _ alpha: Tensor<T>, _ cache: DiceCache<T>) {
    let d = x.lastDim, rows = x.rows, n = x.count
    precondition(dout.count == n && cache.gate.count == n && alpha.count == d,
                 "dice: dout \(dout.shape) / cache do not fit input \(x.shape)")
    precondition(dx.count == 0 || dx.count == n, "dice: dx \(dx.shape) does not fit input \(x.shape)")
    precondition(dAlpha.count == 0 || dAlpha.count == d, "dice: dAlpha \(dAlpha.shape) does not fit \(alpha.shape)")
    let statRows = cache.statisticsRows, wantAlpha = dAlpha.count > 0, wantX = dx.count > 0
    var sumG = [T](repeating: 0, count: d)
    var sumGS = [T](repeating: 0, count: d)
    var scratch = [T](repeating: 0, count: dAlpha.count > 0 ? 0 : d)

    dout.data.withUnsafeBufferPointer { pd in
        x.data.withUnsafeBufferPointer { px in
            alpha.data.withUnsafeBufferPointer { pa in
                cache.gate.data.withUnsafeBufferPointer { pp in
                    cache.normalized.data.withUnsafeBufferPointer { ps in
                        cache.invStd.data.withUnsafeBufferPointer { pr in
                            sumG.withUnsafeMutableBufferPointer { s1p in
                                sumGS.withUnsafeMutableBufferPointer { s2p in
                                    dAlpha.data.withUnsafeMutableBufferPointer { pga in
                                        scratch.withUnsafeMutableBufferPointer { psc in
                                            // Safe: (N × D) buffers hold rows·d, (D) buffers d (checked above).
                                            let a = pa.baseAddress!, s1 = s1p.baseAddress!, s2 = s2p.baseAddress!
                                            // dAlpha goes to a scratch row when not wanted, so one loop serves both.
                                            let ga = wantAlpha ? pga.baseAddress! : psc.baseAddress!
                                            if T.self == Float.self, rows > 0 {
                                                // Safe: T is Float, so each rebinding is the identity on the same memory.
                                                func f(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
                                                func m(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
                                                let pass1: Int32 = wantAlpha || (wantX && statRows > 0) ? 1 : 0
                                                let invM: Float = statRows > 0 ? 1 / Float(statRows) : 0
                                                cache.rowMask.data.withUnsafeBufferPointer { pm in
                                                    dx.data.withUnsafeMutableBufferPointer { pdx in
                                                        let mask = cache.rowMask.count > 0 ? f(pm.baseAddress!) : nil
                                                        let out = wantX ? m(pdx.baseAddress!) : nil
                                                        heed_dice_backward(out, m(ga), m(s1), m(s2), f(pd.baseAddress!), f(px.baseAddress!), f(a),
                                                                           f(pp.baseAddress!), f(ps.baseAddress!), f(pr.baseAddress!), mask, invM,
                                                                           Int64(rows), Int64(d), pass1)
                                                    }
                                                }
                                                return
                                            }
                                            // Pass 1: dAlpha and, in training, Σ g and Σ g·ŝ per feature.
                                            if wantAlpha || (wantX && statRows > 0) {
                                                for row in 0..<rows {
                                                    let off = row &* d
                                                    let dy = pd.baseAddress! + off, xs = px.baseAddress! + off
                                                    let gate = pp.baseAddress! + off, sh = ps.baseAddress! + off
                                                    for j in 0..<d {
                                                        let p = gate[j], dyx = dy[j] * xs[j]
                                                        let g = dyx * (1 - a[j]) * p * (1 - p)
                                                        ga[j] += dyx * (1 - p)
                                                        s1[j] += g
                                                        s2[j] += g * sh[j]
                                                    }
                                                }
                                            }
                                            guard wantX else { return }
                                            // Pass 2: dx. Rows outside the statistics skip the batch terms.
                                            cache.rowMask.data.withUnsafeBufferPointer { pm in
                                                dx.data.withUnsafeMutableBufferPointer { pdx in
                                                    let masked = cache.rowMask.count > 0, r = pr.baseAddress!
                                                    let invM = statRows > 0 ? 1 / T(statRows) : 0
                                                    for row in 0..<rows {
                                                        let off = row &* d
                                                        let dy = pd.baseAddress! + off, xs = px.baseAddress! + off
                                                        let gate = pp.baseAddress! + off, sh = ps.baseAddress! + off
                                                        let out = pdx.baseAddress! + off
                                                        let batchTerms: T = statRows > 0 && (!masked || pm[row] != 0) ? invM : 0
                                                        for j in 0..<d {
                                                            let p = gate[j], dyv = dy[j]
                                                            let g = dyv * xs[j] * (1 - a[j]) * p * (1 - p)
                                                            out[j] += dyv * (a[j] + (1 - a[j]) * p)
                                                                + r[j] * (g - batchTerms * (s1[j] + sh[j] * s2[j]))
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
