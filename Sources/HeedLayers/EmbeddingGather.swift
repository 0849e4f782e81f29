// Plain embedding gather for sequence models: positions of a (B × L) index grid pick rows from
// the batch's (U × D) unique rows; the padding index gives a zero row and receives no gradient.
// The backward pass is a scatter-add into a (U × D) gradient for the pulled rows only.

/// Gathers rows into a (B × L × D) sequence tensor.
///
/// - Parameters:
///   - out: (shape… × D), overwritten; positions holding `paddingIndex` are zero rows.
///   - rows: (U × D) unique embedding rows.
///   - indices: (B·L) row indices into `rows`, row-major over `shape`, or `paddingIndex`.
///   - shape: the index grid, e.g. `[B, L]`.
///   - paddingIndex: marks padded positions (default −1, outside every valid row range).
@inlinable
public func embeddingGatherForward<T: Real>(_ out: inout Tensor<T>, _ rows: Tensor<T>, indices: [Int],
                                            shape: [Int], paddingIndex: Int = -1) {
    let d = rows.lastDim, u = rows.rows, n = indices.count
    precondition(shape.reduce(1, *) == n, "embedding gather: \(n) indices do not fill shape \(shape)")
    prepareOutput(&out, like: shape + [d])
    out.data.withUnsafeMutableBufferPointer { po in
        rows.data.withUnsafeBufferPointer { pr in
            for (p, i) in indices.enumerated() {
                let dst = po.baseAddress! + p * d
                if i == paddingIndex { dst.update(repeating: 0, count: d); continue }
                precondition(i >= 0 && i < u, "embedding gather: index \(i) at position \(p) is outside 0..<\(u)")
                // Safe: i < U checked above; out holds n·d.
                dst.update(from: pr.baseAddress! + i * d, count: d)
            }
        }
    }
}

/// Backward of `embeddingGatherForward`: scatter-adds `dout` into the pulled rows' gradient.
///
/// - Parameters:
///   - dRows: (U × D), accumulated; padded positions add nothing.
///   - dout: (shape… × D).
///   - indices, paddingIndex: as in the forward pass.
@inlinable
public func embeddingGatherBackward<T: Real>(_ dRows: inout Tensor<T>, _ dout: Tensor<T>, indices: [Int], paddingIndex: Int = -1) {
    let d = dRows.lastDim, u = dRows.rows
    precondition(dout.count == indices.count * d, "embedding gather: dout \(dout.shape) does not fit \(indices.count) indices of dim \(d)")
    dRows.data.withUnsafeMutableBufferPointer { pdr in
        dout.data.withUnsafeBufferPointer { pd in
            for (p, i) in indices.enumerated() where i != paddingIndex {
                precondition(i >= 0 && i < u, "embedding gather: index \(i) at position \(p) is outside 0..<\(u)")
                // Safe: i < U checked above; dout holds indices.count·d.
                let dst = pdr.baseAddress! + i * d, src = pd.baseAddress! + p * d
                for j in 0..<d { dst[j] += src[j] }
            }
        }
    }
}

/// The (shape…) 0/1 padding mask of an index grid (1 = real position), in the layers' mask convention.
///
/// - Parameters:
///   - indices: row-major over `shape`.
///   - shape: e.g. `[B, L]`.
@inlinable
public func paddingMask<T: Real>(indices: [Int], shape: [Int], paddingIndex: Int = -1) -> Tensor<T> {
    precondition(shape.reduce(1, *) == indices.count, "padding mask: \(indices.count) indices do not fill shape \(shape)")
    return Tensor(shape: shape, data: indices.map { $0 == paddingIndex ? 0 : 1 })
}
