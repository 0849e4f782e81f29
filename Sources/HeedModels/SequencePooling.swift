import HeedLayers

// Masked pooling of a padded behaviour sequence: the DIN paper's Base model sums the
// behaviour embeddings (Zhou et al. 2018, §4.2); mean pooling divides by the real length.

/// `out_b = Σ_j m_bj x_bj` (sum) or that divided by `Σ_j m_bj` (mean); a fully padded row
/// pools to zeros in both modes.
///
/// - Parameters:
///   - out: (B × E), overwritten.
///   - x: (B × L × E).
///   - mask: (B × L) of 0/1, 1 = real position.
///   - mode: sum or mean.
@inlinable
func maskedSequencePoolForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, _ mask: Tensor<T>, mode: PoolingMode) {
    precondition(x.shape.count == 3, "sequence pool: x must be (B × L × E), got \(x.shape)")
    let b = x.shape[0], l = x.shape[1], e = x.shape[2]
    precondition(mask.count == b * l, "sequence pool: mask \(mask.shape) does not fit \(x.shape)")
    out.resizeZeroed([b, e])
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            mask.data.withUnsafeBufferPointer { pm in
                for s in 0..<b {
                    // Safe: s < B, j < L; x holds B·L·E, mask B·L, out B·E.
                    let dst = po.baseAddress! + s * e
                    var count: T = 0
                    for j in 0..<l where pm[s * l + j] != 0 {
                        count += 1
                        let src = px.baseAddress! + (s * l + j) * e
                        for k in 0..<e { dst[k] += src[k] }
                    }
                    if mode == .mean && count > 0 {
                        let inv = 1 / count
                        for k in 0..<e { dst[k] *= inv }
                    }
                }
            }
        }
    }
}

/// Backward of `maskedSequencePoolForward`: `dx_bj += m_bj · dout_b` (sum), divided by the
/// real length for mean; padded positions get nothing.
///
/// - Parameters:
///   - dx: (B × L × E), accumulated.
///   - dout: (B × E).
///   - mask: (B × L), as in the forward pass.
///   - mode: as in the forward pass.
@inlinable
func maskedSequencePoolBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, _ mask: Tensor<T>, mode: PoolingMode) {
    precondition(dx.shape.count == 3, "sequence pool: dx must be (B × L × E), got \(dx.shape)")
    let b = dx.shape[0], l = dx.shape[1], e = dx.shape[2]
    precondition(mask.count == b * l && dout.count == b * e, "sequence pool: mask \(mask.shape) / dout \(dout.shape) do not fit \(dx.shape)")
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            mask.data.withUnsafeBufferPointer { pm in
                for s in 0..<b {
                    // Safe: as in the forward pass.
                    var count: T = 0
                    for j in 0..<l where pm[s * l + j] != 0 { count += 1 }
                    guard count > 0 else { continue }
                    let scale: T = mode == .mean ? 1 / count : 1
                    let g = pd.baseAddress! + s * e
                    for j in 0..<l where pm[s * l + j] != 0 {
                        let dst = pdx.baseAddress! + (s * l + j) * e
                        for k in 0..<e { dst[k] += scale * g[k] }
                    }
                }
            }
        }
    }
}
