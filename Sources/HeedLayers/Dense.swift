/// Affine layer `out = x · W + b`.
///
/// - Parameters:
///   - out: (B × O), overwritten.
///   - x: (B × I).
///   - weight: (I × O), row-major.
///   - bias: (O).
@inlinable
public func denseForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, _ weight: Tensor<T>, _ bias: Tensor<T>) {
    let b = x.rows, i = x.lastDim, o = weight.lastDim
    precondition(weight.count == i * o && bias.count == o, "dense: weight \(weight.shape) / bias \(bias.shape) do not fit input \(x.shape)")
    if out.count != b * o { out = Tensor(zeros: [b, o]) }
    out.data.withUnsafeMutableBufferPointer { po in
        // Broadcast the bias into every row, then accumulate the product on top (beta = 1).
        bias.data.withUnsafeBufferPointer { pb in
            for r in 0..<b { (po.baseAddress! + r * o).update(from: pb.baseAddress!, count: o) }
        }
        x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
                // Safe: counts checked above; CBLAS reads (B×I), (I×O) and writes (B×O).
                T.gemm(transA: false, transB: false, m: b, n: o, k: i, alpha: 1,
                       a: px.baseAddress!, lda: i, b: pw.baseAddress!, ldb: o,
                       beta: 1, c: po.baseAddress!, ldc: o)
            }
        }
    }
}

/// Backward of `denseForward`; accumulates into the gradient buffers.
///
/// - Parameters:
///   - dx: (B × I), `+= dout · Wᵀ`; pass an empty tensor (`.empty`) to skip it
///     (e.g. when the input is raw features).
///   - dWeight: (I × O), `+= xᵀ · dout`.
///   - dBias: (O), `+= Σ_rows dout`.
///   - dout: (B × O).
///   - x: (B × I), the forward input.
///   - weight: (I × O).
@inlinable
public func denseBackward<T: Real>(_ dx: inout Tensor<T>, _ dWeight: inout Tensor<T>, _ dBias: inout Tensor<T>,
                                   _ dout: Tensor<T>, _ x: Tensor<T>, _ weight: Tensor<T>) {
    let b = x.rows, i = x.lastDim, o = weight.lastDim
    dout.data.withUnsafeBufferPointer { pd in
        x.data.withUnsafeBufferPointer { px in
            dWeight.data.withUnsafeMutableBufferPointer { pdw in
                T.gemm(transA: true, transB: false, m: i, n: o, k: b, alpha: 1,
                       a: px.baseAddress!, lda: i, b: pd.baseAddress!, ldb: o,
                       beta: 1, c: pdw.baseAddress!, ldc: o)
            }
        }
        dBias.data.withUnsafeMutableBufferPointer { pdb in
            for r in 0..<b {
                let row = pd.baseAddress! + r * o
                for j in 0..<o { pdb[j] += row[j] }
            }
        }
        if dx.count > 0 {
            precondition(dx.count == b * i, "dense: dx \(dx.shape) does not fit input \(x.shape)")
            weight.data.withUnsafeBufferPointer { pw in
                dx.data.withUnsafeMutableBufferPointer { pdx in
                    T.gemm(transA: false, transB: true, m: b, n: i, k: o, alpha: 1,
                           a: pd.baseAddress!, lda: o, b: pw.baseAddress!, ldb: o,
                           beta: 1, c: pdx.baseAddress!, ldc: i)
                }
            }
        }
    }
}
