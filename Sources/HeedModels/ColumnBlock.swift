import HeedLayers

// Concatenation along the feature axis, one block at a time: a model writes each part of
// its MLP input (target, pooled behaviours, …) into its columns of one (B × W) matrix.

/// Copies `x` into columns `column ..< column + E` of `out`; other columns are untouched.
///
/// - Parameters:
///   - out: (B × W), allocated by the caller; the block is overwritten.
///   - x: (B × E).
///   - column: first column of the block; `column + E <= W`.
@inlinable
func columnBlockForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, column: Int) {
    let e = x.lastDim, w = out.lastDim, b = x.rows
    precondition(out.rows == b && column >= 0 && column + e <= w,
                 "column block: out \(out.shape) cannot take \(x.shape) at column \(column)")
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            for r in 0..<b {
                // Safe: row r of out has w ≥ column + e slots; x holds b·e.
                (po.baseAddress! + r * w + column).update(from: px.baseAddress! + r * e, count: e)
            }
        }
    }
}

/// Backward of `columnBlockForward`: `dx += dout[:, column ..< column + E]`.
///
/// - Parameters:
///   - dx: (B × E), accumulated.
///   - dout: (B × W).
///   - column: as in the forward pass.
@inlinable
func columnBlockBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, column: Int) {
    let e = dx.lastDim, w = dout.lastDim, b = dx.rows
    precondition(dout.rows == b && column >= 0 && column + e <= w,
                 "column block: dout \(dout.shape) does not hold \(dx.shape) at column \(column)")
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            for r in 0..<b {
                // Safe: as in the forward pass.
                let dst = pdx.baseAddress! + r * e, src = pd.baseAddress! + r * w + column
                for j in 0..<e { dst[j] += src[j] }
            }
        }
    }
}
