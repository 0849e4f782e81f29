// The factored first layer of DIN's attention unit (TargetAttentionLayer).
//
// The unit's MLP reads f_j = [e_j, v, e_j − v, e_j ⊙ v] (4D) per real behaviour j of a sample
// with target v. Splitting the first weight W (4D × H) into row blocks W1…W4:
//
//   f_j·W + b = e_j·(W1 + W3) + (e_j ⊙ v)·W4 + [v·(W2 − W3) + b]
//             = [e_j, e_j ⊙ v]·P + s            P = [W1 + W3; W4] (2D × H), s per sample
//
// so the per-behaviour product has K = 2D instead of 4D, and the v terms are computed once
// per sample. With G = ∂L/∂(f·W + b) (N × H) and S_b = Σ_{j in b} G_j (B × H):
//
//   ∂W1 = Σ e_jᵀG_j,  ∂W2 = Σ vᵀS,  ∂W3 = ∂W1 − ∂W2,  ∂W4 = Σ (e_j ⊙ v)ᵀG_j
//   ∂e_j = (G·Pᵀ)[:, :D] + (G·Pᵀ)[:, D:] ⊙ v
//   ∂v   = Σ_j (G·Pᵀ)[j, D:] ⊙ e_j + S·(W2 − W3)ᵀ
//
// The same function and gradients as the unfactored MLP, up to float rounding.

/// Builds `[e_j, e_j ⊙ v]` for every real position.
///
/// - Parameters:
///   - pairs: (N × 2D), overwritten, N = number of real positions.
///   - positions: overwritten with N flat positions `b·L + j`, in increasing order.
///   - behaviours: (B × L × D) behaviour embeddings `e`.
///   - target: (B × D) target embedding `v`.
///   - mask: (B × L) of 0/1 (1 = real), or `.empty` for no padding.
@inlinable
public func targetAttentionPairsForward<T: Real>(_ pairs: inout Tensor<T>, _ positions: inout [Int],
                                                 _ behaviours: Tensor<T>, _ target: Tensor<T>, _ mask: Tensor<T>) {
    precondition(behaviours.shape.count == 3, "target attention: behaviours must be (B × L × D), got \(behaviours.shape)")
    let b = behaviours.shape[0], l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(target.count == b * d, "target attention: target \(target.shape) does not fit behaviours \(behaviours.shape)")
    precondition(mask.count == 0 || mask.count == b * l, "target attention: mask \(mask.shape) does not fit behaviours \(behaviours.shape)")
    positions.removeAll(keepingCapacity: true)
    mask.data.withUnsafeBufferPointer { pm in
        for p in 0..<b * l where mask.count == 0 || pm[p] != 0 { positions.append(p) }
    }
    prepareOutput(&pairs, like: [positions.count, 2 * d])
    pairs.data.withUnsafeMutableBufferPointer { pf in
        behaviours.data.withUnsafeBufferPointer { pe in
            target.data.withUnsafeBufferPointer { pv in
                for (n, p) in positions.enumerated() {
                    // Safe: p < B·L and p / L < B, so both source rows exist; row n of pairs has 2D slots.
                    let e = pe.baseAddress! + p * d, v = pv.baseAddress! + (p / l) * d
                    let f = pf.baseAddress! + n * 2 * d
                    for k in 0..<d {
                        f[k] = e[k]
                        f[d + k] = e[k] * v[k]
                    }
                }
            }
        }
    }
}

extension TargetAttentionLayer {
    /// `firstDense` (N × H) = pairs·[W1 + W3; W4] + (v·(W2 − W3) + b)[sample], from `features`
    /// (the pairs), `positions`, `target` and the MLP's first weight and bias.
    @inlinable
    mutating func factoredFirstLayerForward() {
        let d = dim, h = mlp.sizes[1], n = positions.count, b = target.rows, l = behaviours.shape[1]
        prepareOutput(&pairWeight, like: [2 * d, h])
        prepareOutput(&targetWeight, like: [d, h])
        prepareOutput(&perSample, like: [b, h])
        prepareOutput(&firstDense, like: [n, h])
        mlp.weights[0].data.withUnsafeBufferPointer { pw in
            pairWeight.data.withUnsafeMutableBufferPointer { pp in
                targetWeight.data.withUnsafeMutableBufferPointer { pt in
                    // Safe: W is (4D × H); pairWeight (2D × H), targetWeight (D × H).
                    let w = pw.baseAddress!, p = pp.baseAddress!, t = pt.baseAddress!
                    for i in 0..<(d * h) {
                        p[i] = w[i] + w[2 * d * h + i]
                        p[d * h + i] = w[3 * d * h + i]
                        t[i] = w[d * h + i] - w[2 * d * h + i]
                    }
                }
            }
        }
        mlp.biases[0].data.withUnsafeBufferPointer { pb in
            perSample.data.withUnsafeMutableBufferPointer { ps in
                // Safe: perSample is (B × H), the bias (H).
                for r in 0..<b { (ps.baseAddress! + r * h).update(from: pb.baseAddress!, count: h) }
            }
        }
        target.data.withUnsafeBufferPointer { pv in
            targetWeight.data.withUnsafeBufferPointer { pt in
                perSample.data.withUnsafeMutableBufferPointer { ps in
                    // Safe: target (B × D), targetWeight (D × H), perSample (B × H).
                    T.gemm(transA: false, transB: false, m: b, n: h, k: d, alpha: 1, a: pv.baseAddress!, lda: d,
                           b: pt.baseAddress!, ldb: h, beta: 1, c: ps.baseAddress!, ldc: h)
                }
            }
        }
        features.data.withUnsafeBufferPointer { pf in
            pairWeight.data.withUnsafeBufferPointer { pp in
                firstDense.data.withUnsafeMutableBufferPointer { po in
                    // Safe: pairs (N × 2D), pairWeight (2D × H), firstDense (N × H).
                    T.gemm(transA: false, transB: false, m: n, n: h, k: 2 * d, alpha: 1, a: pf.baseAddress!, lda: 2 * d,
                           b: pp.baseAddress!, ldb: h, beta: 0, c: po.baseAddress!, ldc: h)
                }
            }
        }
        perSample.data.withUnsafeBufferPointer { ps in
            firstDense.data.withUnsafeMutableBufferPointer { po in
                for (row, p) in positions.enumerated() {
                    // Safe: row < N and p / L < B.
                    let o = po.baseAddress! + row * h, s = ps.baseAddress! + (p / l) * h
                    for k in 0..<h { o[k] += s[k] }
                }
            }
        }
    }

    /// Backward of `factoredFirstLayerForward` from `dFirstDense` (N × H): accumulates the
    /// first weight's gradient (its bias gradient came with the activation backward) and
    /// the behaviours' and target's gradients.
    ///
    /// - Parameters:
    ///   - dBehaviours: (B × L × D), accumulated at real positions; `.empty` to skip.
    ///   - dTarget: (B × D), accumulated; `.empty` to skip.
    @inlinable
    mutating func factoredFirstLayerBackward(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>) {
        let d = dim, h = mlp.sizes[1], n = positions.count, b = target.rows, l = behaviours.shape[1]
        precondition(dBehaviours.count == 0 || dBehaviours.count == behaviours.count, "target attention: dBehaviours \(dBehaviours.shape) does not fit \(behaviours.shape)")
        precondition(dTarget.count == 0 || dTarget.count == target.count, "target attention: dTarget \(dTarget.shape) does not fit \(target.shape)")
        // S (B × H): per-sample sums of G, reusing perSample's storage.
        prepareOutput(&perSample, like: [b, h])
        perSample.zero()
        dFirstDense.data.withUnsafeBufferPointer { pg in
            perSample.data.withUnsafeMutableBufferPointer { ps in
                for (row, p) in positions.enumerated() {
                    // Safe: row < N and p / L < B.
                    let g = pg.baseAddress! + row * h, s = ps.baseAddress! + (p / l) * h
                    for k in 0..<h { s[k] += g[k] }
                }
            }
        }
        // [∂W1; ∂W4] = pairsᵀ·G and ∂W2 = vᵀ·S, then scattered into the (4D × H) gradient.
        prepareOutput(&dPairWeight, like: [2 * d, h])
        prepareOutput(&dTargetWeight, like: [d, h])
        features.data.withUnsafeBufferPointer { pf in
            dFirstDense.data.withUnsafeBufferPointer { pg in
                dPairWeight.data.withUnsafeMutableBufferPointer { pd in
                    // Safe: pairs (N × 2D), G (N × H), dPairWeight (2D × H).
                    T.gemm(transA: true, transB: false, m: 2 * d, n: h, k: n, alpha: 1, a: pf.baseAddress!, lda: 2 * d,
                           b: pg.baseAddress!, ldb: h, beta: 0, c: pd.baseAddress!, ldc: h)
                }
            }
        }
        target.data.withUnsafeBufferPointer { pv in
            perSample.data.withUnsafeBufferPointer { ps in
                dTargetWeight.data.withUnsafeMutableBufferPointer { pd in
                    // Safe: target (B × D), S (B × H), dTargetWeight (D × H).
                    T.gemm(transA: true, transB: false, m: d, n: h, k: b, alpha: 1, a: pv.baseAddress!, lda: d,
                           b: ps.baseAddress!, ldb: h, beta: 0, c: pd.baseAddress!, ldc: h)
                }
            }
        }
        dPairWeight.data.withUnsafeBufferPointer { pp in
            dTargetWeight.data.withUnsafeBufferPointer { pt in
                mlp.dWeights[0].data.withUnsafeMutableBufferPointer { pw in
                    // Safe: dW is (4D × H); the scratch (2D × H) and (D × H).
                    let w = pw.baseAddress!, p = pp.baseAddress!, t = pt.baseAddress!
                    for i in 0..<(d * h) {
                        w[i] += p[i]
                        w[d * h + i] += t[i]
                        w[2 * d * h + i] += p[i] - t[i]
                        w[3 * d * h + i] += p[d * h + i]
                    }
                }
            }
        }
        guard dBehaviours.count > 0 || dTarget.count > 0 else { return }
        // ∂pairs = G·Pᵀ (N × 2D).
        prepareOutput(&dPairs, like: [n, 2 * d])
        dFirstDense.data.withUnsafeBufferPointer { pg in
            pairWeight.data.withUnsafeBufferPointer { pp in
                dPairs.data.withUnsafeMutableBufferPointer { pd in
                    // Safe: G (N × H), pairWeight (2D × H), dPairs (N × 2D).
                    T.gemm(transA: false, transB: true, m: n, n: 2 * d, k: h, alpha: 1, a: pg.baseAddress!, lda: h,
                           b: pp.baseAddress!, ldb: h, beta: 0, c: pd.baseAddress!, ldc: 2 * d)
                }
            }
        }
        dPairs.data.withUnsafeBufferPointer { pd in
            behaviours.data.withUnsafeBufferPointer { pe in
                target.data.withUnsafeBufferPointer { pv in
                    if dBehaviours.count > 0 {
                        dBehaviours.data.withUnsafeMutableBufferPointer { pde in
                            for (row, p) in positions.enumerated() {
                                // Safe: p < B·L, p / L < B; dBehaviours has the behaviours' shape.
                                let f = pd.baseAddress! + row * 2 * d, v = pv.baseAddress! + (p / l) * d
                                let de = pde.baseAddress! + p * d
                                for k in 0..<d { de[k] += f[k] + f[d + k] * v[k] }
                            }
                        }
                    }
                    if dTarget.count > 0 {
                        dTarget.data.withUnsafeMutableBufferPointer { pdv in
                            for (row, p) in positions.enumerated() {
                                // Safe: as above; dTarget has the target's shape.
                                let f = pd.baseAddress! + row * 2 * d, e = pe.baseAddress! + p * d
                                let dv = pdv.baseAddress! + (p / l) * d
                                for k in 0..<d { dv[k] += f[d + k] * e[k] }
                            }
                        }
                    }
                }
            }
        }
        if dTarget.count > 0 {
            perSample.data.withUnsafeBufferPointer { ps in
                targetWeight.data.withUnsafeBufferPointer { pt in
                    dTarget.data.withUnsafeMutableBufferPointer { pdv in
                        // Safe: S (B × H), targetWeight (D × H), dTarget (B × D).
                        T.gemm(transA: false, transB: true, m: b, n: d, k: h, alpha: 1, a: ps.baseAddress!, lda: h,
                               b: pt.baseAddress!, ldb: h, beta: 1, c: pdv.baseAddress!, ldc: d)
                    }
                }
            }
        }
    }
}
