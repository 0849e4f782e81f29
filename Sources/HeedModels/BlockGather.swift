import HeedLayers

// Embedding lookup into a column block of a wider matrix: models concatenate several
// features' embeddings per row (item ‖ category, user ‖ target ‖ pooled), and gathering
// each table straight into its block saves a copy per feature and step. Rows come from the
// batch's (U × D) pulled rows; the backward pass scatter-adds into a (U × D) gradient for
// those rows only, never a table-sized one.

/// Copies `rows[indices[p]]` into row p of `out`, columns `column ..< column + D`; an index
/// of −1 (padding) writes zeros. Other columns are left untouched.
///
/// - Parameters:
///   - out: (N × W), allocated by the caller; the block is overwritten.
///   - rows: (U × D) pulled embedding rows.
///   - indices: (N) row indices into `rows`, or −1.
///   - column: first column of the block; `column + D <= W`.
@inlinable
func blockGatherForward<T: Real>(_ out: inout Tensor<T>, _ rows: Tensor<T>, indices: [Int], column: Int) {
    let d = rows.lastDim, w = out.lastDim, n = indices.count, u = rows.rows
    precondition(out.count == n * w && column >= 0 && column + d <= w,
                 "block gather: out \(out.shape) cannot take \(n) rows of width \(d) at column \(column)")
    out.data.withUnsafeMutableBufferPointer { po in
        rows.data.withUnsafeBufferPointer { pr in
            indices.withUnsafeBufferPointer { idx in
                for p in 0..<n {
                    let dst = po.baseAddress! + p * w + column
                    let i = idx[p]
                    if i < 0 { dst.update(repeating: 0, count: d); continue }
                    precondition(i < u, "block gather: index \(i) at position \(p) is outside 0..<\(u)")
                    // Safe: i < U checked above; row p of out has w ≥ column + d slots.
                    dst.update(from: pr.baseAddress! + i * d, count: d)
                }
            }
        }
    }
}

/// Backward of `blockGatherForward`: `dRows[indices[p]] += dout[p, column ..< column + D]`;
/// positions with index −1 add nothing.
///
/// - Parameters:
///   - dRows: (U × D), accumulated, aligned with the pulled rows.
///   - dout: (N × W).
///   - indices: (N) as in the forward pass.
///   - column: as in the forward pass.
@inlinable
func blockGatherBackward<T: Real>(_ dRows: inout Tensor<T>, _ dout: Tensor<T>, indices: [Int], column: Int) {
    let d = dRows.lastDim, w = dout.lastDim, n = indices.count, u = dRows.rows
    precondition(dout.count == n * w && column >= 0 && column + d <= w,
                 "block gather: dout \(dout.shape) does not hold \(n) rows of width \(d) at column \(column)")
    dRows.data.withUnsafeMutableBufferPointer { pg in
        dout.data.withUnsafeBufferPointer { pd in
            indices.withUnsafeBufferPointer { idx in
                for p in 0..<n {
                    let i = idx[p]
                    if i < 0 { continue }
                    precondition(i < u, "block gather: index \(i) at position \(p) is outside 0..<\(u)")
                    // Safe: i < U checked above; row p of dout has w ≥ column + d slots.
                    let dst = pg.baseAddress! + i * d, src = pd.baseAddress! + p * w + column
                    for j in 0..<d { dst[j] += src[j] }
                }
            }
        }
    }
}
