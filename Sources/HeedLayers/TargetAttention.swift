// Kernels of DIN's local activation unit (Zhou et al. KDD 2018, §4.3 and Fig. 2): the
// feature builder feeding the attention MLP and the weighted pooling after it. The MLP in
// between is run by `TargetAttentionLayer`.
//
// Only real positions enter the MLP: the feature builder packs them into N compact rows and
// records each row's flat position `b·L + j` in `positions`. Padded positions thus cost
// nothing, get weight 0, and cannot leak into Dice's batch statistics.

/// How the attention MLP's outputs become pooling weights.
public enum TargetAttentionWeighting: String, CaseIterable, Sendable {
    /// The MLP outputs are the weights, unnormalised, as in the DIN paper (so the pooled
    /// vector's size keeps the intensity of the user's interest).
    case raw
    /// A softmax over each sequence's real positions (the self-attention model's choice).
    case softmax
}

/// Builds the attention MLP's input `[e_j, v, e_j − v, e_j ⊙ v]` for every real position.
///
/// - Parameters:
///   - features: (N × 4D), overwritten, N = number of real positions.
///   - positions: overwritten with N flat positions `b·L + j`, in increasing order.
///   - behaviours: (B × L × D) behaviour embeddings `e`.
///   - target: (B × D) target embedding `v`.
///   - mask: (B × L) of 0/1 (1 = real), or `.empty` for no padding.
@inlinable
public func targetAttentionFeaturesForward<T: Real>(_ features: inout Tensor<T>, _ positions: inout [Int],
                                                    _ behaviours: Tensor<T>, _ target: Tensor<T>, _ mask: Tensor<T>) {
    precondition(behaviours.shape.count == 3, "target attention: behaviours must be (B × L × D), got \(behaviours.shape)")
    let b = behaviours.shape[0], l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(target.count == b * d, "target attention: target \(target.shape) does not fit behaviours \(behaviours.shape)")
    precondition(mask.count == 0 || mask.count == b * l, "target attention: mask \(mask.shape) does not fit behaviours \(behaviours.shape)")
    positions.removeAll(keepingCapacity: true)
    for p in 0..<b * l where mask.count == 0 || mask.data[p] != 0 { positions.append(p) }
    prepareOutput(&features, like: [positions.count, 4 * d])
    features.data.withUnsafeMutableBufferPointer { pf in
        behaviours.data.withUnsafeBufferPointer { pe in
            target.data.withUnsafeBufferPointer { pv in
                for (n, p) in positions.enumerated() {
                    // Safe: p < B·L and p / L < B, so both source rows exist; row n of features has 4D slots.
                    let e = pe.baseAddress! + p * d, v = pv.baseAddress! + (p / l) * d
                    let f = pf.baseAddress! + n * 4 * d
                    for k in 0..<d {
                        f[k] = e[k]
                        f[d + k] = v[k]
                        f[2 * d + k] = e[k] - v[k]
                        f[3 * d + k] = e[k] * v[k]
                    }
                }
            }
        }
    }
}

/// Backward of `targetAttentionFeaturesForward`: with `dF = [a, b, c, d]`,
/// `de_j += a + c + d ⊙ v` and `dv += b − c + d ⊙ e_j`.
///
/// - Parameters:
///   - dBehaviours: (B × L × D), accumulated at real positions only; `.empty` to skip.
///   - dTarget: (B × D), accumulated; `.empty` to skip.
///   - dFeatures: (N × 4D).
///   - behaviours: (B × L × D), the forward input.
///   - target: (B × D), the forward input.
///   - positions: (N) from the forward.
@inlinable
public func targetAttentionFeaturesBackward<T: Real>(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>,
                                                     _ dFeatures: Tensor<T>, _ behaviours: Tensor<T>, _ target: Tensor<T>,
                                                     _ positions: [Int]) {
    let l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(dFeatures.count == positions.count * 4 * d, "target attention: dFeatures \(dFeatures.shape) does not fit \(positions.count) rows")
    precondition(dBehaviours.count == 0 || dBehaviours.count == behaviours.count, "target attention: dBehaviours \(dBehaviours.shape) does not fit \(behaviours.shape)")
    precondition(dTarget.count == 0 || dTarget.count == target.count, "target attention: dTarget \(dTarget.shape) does not fit \(target.shape)")
    dFeatures.data.withUnsafeBufferPointer { pf in
        behaviours.data.withUnsafeBufferPointer { pe in
            target.data.withUnsafeBufferPointer { pv in
                if dBehaviours.count > 0 {
                    dBehaviours.data.withUnsafeMutableBufferPointer { pde in
                        for (n, p) in positions.enumerated() {
                            // Safe: as in the forward; dBehaviours has the behaviours' shape.
                            let f = pf.baseAddress! + n * 4 * d, v = pv.baseAddress! + (p / l) * d
                            let de = pde.baseAddress! + p * d
                            for k in 0..<d { de[k] += f[k] + f[2 * d + k] + f[3 * d + k] * v[k] }
                        }
                    }
                }
                if dTarget.count > 0 {
                    dTarget.data.withUnsafeMutableBufferPointer { pdv in
                        for (n, p) in positions.enumerated() {
                            // Safe: as above; dTarget has the target's shape.
                            let f = pf.baseAddress! + n * 4 * d, e = pe.baseAddress! + p * d
                            let dv = pdv.baseAddress! + (p / l) * d
                            for k in 0..<d { dv[k] += f[d + k] - f[2 * d + k] + f[3 * d + k] * e[k] }
                        }
                    }
                }
            }
        }
    }
}

/// Weighted pooling `out_b = Σ_j w_bj e_bj` with weights from the attention MLP's logits.
///
/// With `.raw` the weight of a real position is its logit; with `.softmax` the logits of each
/// sequence's real positions are softmax-normalised (max subtracted for stability). Padded
/// positions weigh exactly 0; a fully padded sequence pools to the zero vector.
///
/// - Parameters:
///   - out: (B × D), overwritten.
///   - weights: (B × L), overwritten with the attention weights (for explanations and backward).
///   - logits: (N) or (N × 1), the MLP output for each compact row.
///   - behaviours: (B × L × D).
///   - positions: (N) from `targetAttentionFeaturesForward`.
///   - weighting: raw or softmax.
@inlinable
public func targetAttentionPoolForward<T: Real>(_ out: inout Tensor<T>, _ weights: inout Tensor<T>,
                                                _ logits: Tensor<T>, _ behaviours: Tensor<T>, _ positions: [Int],
                                                weighting: TargetAttentionWeighting) {
    let b = behaviours.shape[0], l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(logits.count == positions.count, "target attention: \(logits.count) logits for \(positions.count) positions")
    prepareOutput(&out, like: [b, d])
    prepareOutput(&weights, like: [b, l])
    weights.zero()
    out.zero()
    weights.data.withUnsafeMutableBufferPointer { pw in
        // Safe: every p < B·L (built by the feature kernel for these behaviours).
        for (n, p) in positions.enumerated() { pw[p] = logits.data[n] }
        if weighting == .softmax {
            var start = 0
            while start < positions.count {
                // Compact rows of one sequence are contiguous because positions increase.
                let s = positions[start] / l
                var end = start
                var maxLogit = -T.infinity
                while end < positions.count && positions[end] / l == s { maxLogit = max(maxLogit, pw[positions[end]]); end += 1 }
                var sum: T = 0
                for n in start..<end { let e = T.exp(pw[positions[n]] - maxLogit); pw[positions[n]] = e; sum += e }
                for n in start..<end { pw[positions[n]] /= sum }
                start = end
            }
        }
        out.data.withUnsafeMutableBufferPointer { po in
            behaviours.data.withUnsafeBufferPointer { pe in
                for p in positions {
                    // Safe: p < B·L, so row p of behaviours and row p / L of out exist.
                    let w = pw[p], e = pe.baseAddress! + p * d, o = po.baseAddress! + (p / l) * d
                    for k in 0..<d { o[k] += w * e[k] }
                }
            }
        }
    }
}

/// Backward of `targetAttentionPoolForward`.
///
/// `de_bj += w_bj · dout_b`; `g_bj = dout_b · e_bj`; raw: `dlogit = g`;
/// softmax: `dlogit = w ⊙ (g − Σ_j w_j g_j)` per sequence.
///
/// - Parameters:
///   - dBehaviours: (B × L × D), accumulated (the direct path through the pooling); `.empty` to skip.
///   - dLogits: (N) or (N × 1), accumulated.
///   - dout: (B × D).
///   - behaviours: (B × L × D), the forward input.
///   - weights: (B × L), from the forward.
///   - positions: (N) from the forward.
///   - weighting: as in the forward.
@inlinable
public func targetAttentionPoolBackward<T: Real>(_ dBehaviours: inout Tensor<T>, _ dLogits: inout Tensor<T>,
                                                 _ dout: Tensor<T>, _ behaviours: Tensor<T>, _ weights: Tensor<T>,
                                                 _ positions: [Int], weighting: TargetAttentionWeighting) {
    let l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(dLogits.count == positions.count, "target attention: dLogits \(dLogits.shape) does not fit \(positions.count) positions")
    precondition(dout.count == behaviours.shape[0] * d, "target attention: dout \(dout.shape) does not fit \(behaviours.shape)")
    precondition(dBehaviours.count == 0 || dBehaviours.count == behaviours.count, "target attention: dBehaviours \(dBehaviours.shape) does not fit \(behaviours.shape)")
    var dWeights = [T](repeating: 0, count: positions.count)
    dout.data.withUnsafeBufferPointer { pd in
        behaviours.data.withUnsafeBufferPointer { pe in
            for (n, p) in positions.enumerated() {
                // Safe: p < B·L and p / L < B.
                let e = pe.baseAddress! + p * d, g = pd.baseAddress! + (p / l) * d
                var dot: T = 0
                for k in 0..<d { dot += g[k] * e[k] }
                dWeights[n] = dot
            }
            if dBehaviours.count > 0 {
                dBehaviours.data.withUnsafeMutableBufferPointer { pde in
                    for p in positions {
                        // Safe: as above; dBehaviours has the behaviours' shape.
                        let w = weights.data[p], g = pd.baseAddress! + (p / l) * d, de = pde.baseAddress! + p * d
                        for k in 0..<d { de[k] += w * g[k] }
                    }
                }
            }
        }
    }
    switch weighting {
    case .raw:
        for n in 0..<positions.count { dLogits.data[n] += dWeights[n] }
    case .softmax:
        var start = 0
        while start < positions.count {
            let s = positions[start] / l
            var end = start
            var dot: T = 0
            while end < positions.count && positions[end] / l == s { dot += weights.data[positions[end]] * dWeights[end]; end += 1 }
            for n in start..<end { dLogits.data[n] += weights.data[positions[n]] * (dWeights[n] - dot) }
            start = end
        }
    }
}
