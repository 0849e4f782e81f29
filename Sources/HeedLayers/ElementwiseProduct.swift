// Elementwise (Hadamard) product of two equally shaped matrices: the `attention-price`
// model's product fusion `f = (Xᵀa) ⊙ p` of the attention-pooled interest and the
// purchasing-power vector (source document 3's `f_UI = Xᵀ a_UI p_UI`).

/// `out = x ⊙ y`.
///
/// - Parameters:
///   - out: (B × E), overwritten.
///   - x: (B × E).
///   - y: (B × E).
@inlinable
public func elementwiseProductForward<T: Real>(_ out: inout Tensor<T>, _ x: Tensor<T>, _ y: Tensor<T>) {
    precondition(x.count == y.count, "elementwise product: \(x.shape) and \(y.shape) differ")
    prepareOutput(&out, like: x.shape)
    for i in 0..<x.count { out.data[i] = x.data[i] * y.data[i] }
}

/// Backward of `elementwiseProductForward`: `dx += dout ⊙ y`, `dy += dout ⊙ x`.
///
/// - Parameters:
///   - dx: (B × E), accumulated; `.empty` to skip.
///   - dy: (B × E), accumulated; `.empty` to skip.
///   - dout: (B × E).
///   - x: (B × E), the forward input.
///   - y: (B × E), the forward input.
@inlinable
public func elementwiseProductBackward<T: Real>(_ dx: inout Tensor<T>, _ dy: inout Tensor<T>, _ dout: Tensor<T>,
                                                _ x: Tensor<T>, _ y: Tensor<T>) {
    precondition(dout.count == x.count && x.count == y.count, "elementwise product: dout \(dout.shape), x \(x.shape), y \(y.shape)")
    precondition(dx.count == 0 || dx.count == x.count, "elementwise product: dx \(dx.shape) does not fit \(x.shape)")
    precondition(dy.count == 0 || dy.count == y.count, "elementwise product: dy \(dy.shape) does not fit \(y.shape)")
    if dx.count > 0 { for i in 0..<x.count { dx.data[i] += dout.data[i] * y.data[i] } }
    if dy.count > 0 { for i in 0..<y.count { dy.data[i] += dout.data[i] * x.data[i] } }
}
