// Kernels of target attention whose scoring MLP also reads a per-sample context vector: the
// `attention-price` model's attention signal, where the context is the user's purchasing
// power against the candidate's price (source document 3). Each real behaviour position gets
// the MLP input `[e_j, v, e_j − v, e_j ⊙ v, c]`: DIN's local activation unit (see
// `TargetAttention.swift`) with `c` appended, so the weight a behaviour receives can depend
// on whether the candidate fits the user's budget. With an empty context it is DIN's unit.
//
// The pooling after the MLP is DIN's (`targetAttentionPoolForward`/`Backward`); only the
// feature builder differs.

/// Builds `[e_j, v, e_j − v, e_j ⊙ v, c_b]` for every real position `b·L + j`.
///
/// - Parameters:
///   - features: (N × (4D + C)), overwritten, N = number of real positions.
///   - positions: overwritten with N flat positions `b·L + j`, in increasing order.
///   - behaviours: (B × L × D) behaviour embeddings `e`.
///   - target: (B × D) target embedding `v`.
///   - context: (B × C) per-sample context `c`; C = 0 (`.empty`) gives DIN's features.
///   - mask: (B × L) of 0/1 (1 = real), or `.empty` for no padding.
@inlinable
public func contextAttentionFeaturesForward<T: Real>(_ features: inout Tensor<T>, _ positions: inout [Int],
                                                     _ behaviours: Tensor<T>, _ target: Tensor<T>, _ context: Tensor<T>,
                                                     _ mask: Tensor<T>) {
    precondition(behaviours.shape.count == 3, "context attention: behaviours must be (B × L × D), got \(behaviours.shape)")
    let b = behaviours.shape[0], l = behaviours.shape[1], d = behaviours.shape[2]
    precondition(target.count == b * d, "context attention: target \(target.shape) does not fit behaviours \(behaviours.shape)")
    precondition(mask.count == 0 || mask.count == b * l, "context attention: mask \(mask.shape) does not fit behaviours \(behaviours.shape)")
    let c = contextWidth(context, samples: b)
    let w = 4 * d + c
    positions.removeAll(keepingCapacity: true)
    for p in 0..<b * l where mask.count == 0 || mask.data[p] != 0 { positions.append(p) }
    prepareOutput(&features, like: [positions.count, w])
    features.data.withUnsafeMutableBufferPointer { pf in
        behaviours.data.withUnsafeBufferPointer { pe in
            target.data.withUnsafeBufferPointer { pv in
                context.data.withUnsafeBufferPointer { pc in
                    for (n, p) in positions.enumerated() {
                        // Safe: p < B·L and p / L < B, so both source rows exist; row n of
                        // features has 4D + C slots; the context row p / L has C.
                        let e = pe.baseAddress! + p * d, v = pv.baseAddress! + (p / l) * d
                        let f = pf.baseAddress! + n * w
                        for k in 0..<d {
                            f[k] = e[k]
                            f[d + k] = v[k]
                            f[2 * d + k] = e[k] - v[k]
                            f[3 * d + k] = e[k] * v[k]
                        }
                        if c > 0 { (f + 4 * d).update(from: pc.baseAddress! + (p / l) * c, count: c) }
                    }
                }
            }
        }
    }
}

/// Backward of `contextAttentionFeaturesForward`: with `dF = [a, b, c, d, g]`,
/// `de_j += a + c + d ⊙ v`, `dv += b − c + d ⊙ e_j` and `dc_b += Σ_j g` over the sample's
/// real positions.
///
/// - Parameters:
///   - dBehaviours: (B × L × D), accumulated at real positions only; `.empty` to skip.
///   - dTarget: (B × D), accumulated; `.empty` to skip.
///   - dContext: (B × C), accumulated; `.empty` to skip.
///   - dFeatures: (N × (4D + C)).
///   - behaviours: (B × L × D), the forward input.
///   - target: (B × D), the forward input.
///   - contextWidth: C of the forward's context.
///   - positions: (N) from the forward.
@inlinable
public func contextAttentionFeaturesBackward<T: Real>(_ dBehaviours: inout Tensor<T>, _ dTarget: inout Tensor<T>,
                                                      _ dContext: inout Tensor<T>, _ dFeatures: Tensor<T>,
                                                      _ behaviours: Tensor<T>, _ target: Tensor<T>, contextWidth c: Int,
                                                      _ positions: [Int]) {
    let b = behaviours.shape[0], l = behaviours.shape[1], d = behaviours.shape[2]
    let w = 4 * d + c
    precondition(dFeatures.count == positions.count * w, "context attention: dFeatures \(dFeatures.shape) does not fit \(positions.count) rows of \(w)")
    precondition(dBehaviours.count == 0 || dBehaviours.count == behaviours.count, "context attention: dBehaviours \(dBehaviours.shape) does not fit \(behaviours.shape)")
    precondition(dTarget.count == 0 || dTarget.count == target.count, "context attention: dTarget \(dTarget.shape) does not fit \(target.shape)")
    precondition(dContext.count == 0 || dContext.count == b * c, "context attention: dContext \(dContext.shape) does not fit (\(b) × \(c))")
    dFeatures.data.withUnsafeBufferPointer { pf in
        behaviours.data.withUnsafeBufferPointer { pe in
            target.data.withUnsafeBufferPointer { pv in
                if dBehaviours.count > 0 {
                    dBehaviours.data.withUnsafeMutableBufferPointer { pde in
                        for (n, p) in positions.enumerated() {
                            // Safe: as in the forward; dBehaviours has the behaviours' shape.
                            let f = pf.baseAddress! + n * w, v = pv.baseAddress! + (p / l) * d
                            let de = pde.baseAddress! + p * d
                            for k in 0..<d { de[k] += f[k] + f[2 * d + k] + f[3 * d + k] * v[k] }
                        }
                    }
                }
                if dTarget.count > 0 {
                    dTarget.data.withUnsafeMutableBufferPointer { pdv in
                        for (n, p) in positions.enumerated() {
                            // Safe: as above; dTarget has the target's shape.
                            let f = pf.baseAddress! + n * w, e = pe.baseAddress! + p * d
                            let dv = pdv.baseAddress! + (p / l) * d
                            for k in 0..<d { dv[k] += f[d + k] - f[2 * d + k] + f[3 * d + k] * e[k] }
                        }
                    }
                }
            }
        }
        if c > 0 && dContext.count > 0 {
            dContext.data.withUnsafeMutableBufferPointer { pdc in
                for (n, p) in positions.enumerated() {
                    // Safe: row n of dFeatures has w = 4D + C slots; row p / L < B of dContext has C.
                    let g = pf.baseAddress! + n * w + 4 * d, dc = pdc.baseAddress! + (p / l) * c
                    for k in 0..<c { dc[k] += g[k] }
                }
            }
        }
    }
}

/// C of a (B × C) context tensor; 0 for `.empty`.
@inlinable
func contextWidth<T: Real>(_ context: Tensor<T>, samples b: Int) -> Int {
    if context.count == 0 { return 0 }
    precondition(b > 0 && context.count % b == 0, "context attention: context \(context.shape) does not fit \(b) samples")
    return context.count / b
}
