// Residual connections (He et al. 2016) as used around every sub-layer of a Transformer /
// SASRec block: `out = x + f(x)`. The backward passes `dout` to both branches unchanged.

/// Residual sum `out = x + y`.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten.
///   - x: the skip branch, any shape.
///   - y: the sub-layer branch, same count as `x`.
@inlinable
public func residualForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, _ y: Tensor<T>) {
    precondition(x.count == y.count, "residual: branches \(x.shape) and \(y.shape) differ")
    prepareOutput(&out, like: x.shape)
    let n = x.count
    out.data.withUnsafeMutableBufferPointer { po in
        x.data.withUnsafeBufferPointer { px in
            y.data.withUnsafeBufferPointer { py in
                // Safe: all three hold n elements.
                for i in 0..<n { po[i] = px[i] + py[i] }
            }
        }
    }
}

/// Backward of `residualForward`: `dx += dout`, `dy += dout`; either may be `.empty` to skip.
@inlinable
public func residualBackward<T: Real>(_ dx: inout Tensor<T>, _ dy: inout Tensor<T>, _ dout: Tensor<T>) {
    addInPlace(&dx, dout)
    addInPlace(&dy, dout)
}

/// `acc += g` elementwise; a no-op when `acc` is empty (a gradient nobody asked for).
@inlinable
func addInPlace<T: Real>(_ acc: inout Tensor<T>, _ g: Tensor<T>) {
    guard acc.count > 0 else { return }
    precondition(acc.count == g.count, "gradient \(acc.shape) does not fit \(g.shape)")
    acc.data.withUnsafeMutableBufferPointer { pa in
        g.data.withUnsafeBufferPointer { pg in
            // Safe: equal counts (checked above).
            for i in 0..<pg.count { pa[i] += pg[i] }
        }
    }
}
