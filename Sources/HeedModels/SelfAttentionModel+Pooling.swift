import HeedLayers

// Attention-weighted pooling of an encoded behaviour sequence (source document 2: the
// behaviours are weighed by `α = softmax(e)`, weights summing to one, and their weighted sum
// feeds the MLP). The score of each behaviour is its dot product with a learned query:
//
//     e_bj = (h_bj · q) / √E  for real j,   α_b = softmax over the real positions of e_b,
//     out_b = Σ_j α_bj h_bj.
//
// A fully padded sequence pools to zeros with all-zero weights (instead of 0/0).

/// Forward of the attention pooling.
///
/// - Parameters:
///   - out: (B × E), overwritten.
///   - weights: (B × L), overwritten with α (0 at padding), kept for the backward pass.
///   - h: (B × L × E) encoded behaviours.
///   - mask: (B × L) of 0/1, 1 = real position.
///   - query: (E) the learned query.
@inlinable
func attentionPoolForward<T: Real>(_ out: inout Tensor<T>, _ weights: inout Tensor<T>, _ h: Tensor<T>, _ mask: Tensor<T>, _ query: Tensor<T>) {
    precondition(h.shape.count == 3, "attention pool: h must be (B × L × E), got \(h.shape)")
    let b = h.shape[0], l = h.shape[1], e = h.shape[2]
    precondition(mask.count == b * l && query.count == e, "attention pool: mask \(mask.shape) / query \(query.shape) do not fit \(h.shape)")
    out.resizeZeroed([b, e])
    weights.resizeZeroed([b, l])
    let scale = 1 / T.sqrt(T(e))
    for s in 0..<b {
        var maxScore = -T.infinity
        for j in 0..<l where mask.data[s * l + j] != 0 {
            var dot: T = 0
            for k in 0..<e { dot += h.data[(s * l + j) * e + k] * query.data[k] }
            weights.data[s * l + j] = dot * scale
            maxScore = max(maxScore, dot * scale)
        }
        guard maxScore > -T.infinity else { continue }
        var total: T = 0
        for j in 0..<l where mask.data[s * l + j] != 0 {
            let w = T.exp(weights.data[s * l + j] - maxScore)
            weights.data[s * l + j] = w
            total += w
        }
        for j in 0..<l where mask.data[s * l + j] != 0 {
            let w = weights.data[s * l + j] / total
            weights.data[s * l + j] = w
            for k in 0..<e { out.data[s * e + k] += w * h.data[(s * l + j) * e + k] }
        }
    }
}

/// Backward of `attentionPoolForward`: with `g_bj = dout_b · h_bj` and
/// `de_bj = α_bj (g_bj − Σ_k α_bk g_bk)`, accumulates `dh_bj += α_bj dout_b + de_bj q / √E`
/// and `dQuery += Σ_bj de_bj h_bj / √E`. Padded positions get nothing.
///
/// - Parameters:
///   - dh: (B × L × E), accumulated.
///   - dQuery: (E), accumulated.
///   - dout: (B × E).
///   - weights: (B × L) α from the forward pass.
///   - h: (B × L × E) as in the forward pass.
///   - query: (E) as in the forward pass.
@inlinable
func attentionPoolBackward<T: Real>(_ dh: inout Tensor<T>, _ dQuery: inout Tensor<T>, _ dout: Tensor<T>,
                                    _ weights: Tensor<T>, _ h: Tensor<T>, _ query: Tensor<T>) {
    let b = h.shape[0], l = h.shape[1], e = h.shape[2]
    precondition(dh.count == h.count && dQuery.count == e && dout.count == b * e && weights.count == b * l,
                 "attention pool: gradient shapes do not fit h \(h.shape)")
    let scale = 1 / T.sqrt(T(e))
    var g = [T](repeating: 0, count: l)
    for s in 0..<b {
        var weighted: T = 0
        for j in 0..<l {
            let a = weights.data[s * l + j]
            guard a != 0 else { g[j] = 0; continue }
            var dot: T = 0
            for k in 0..<e { dot += dout.data[s * e + k] * h.data[(s * l + j) * e + k] }
            g[j] = dot
            weighted += a * dot
        }
        for j in 0..<l {
            let a = weights.data[s * l + j]
            // A zero weight (padding, or a score that underflowed) contributes nothing.
            guard a != 0 else { continue }
            let de = a * (g[j] - weighted) * scale
            let row = (s * l + j) * e
            for k in 0..<e {
                dh.data[row + k] += a * dout.data[s * e + k] + de * query.data[k]
                dQuery.data[k] += de * h.data[row + k]
            }
        }
    }
}
