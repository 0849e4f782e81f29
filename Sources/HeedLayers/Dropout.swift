import HeedCore

// Inverted dropout: in training each element is kept with probability 1 − rate and scaled by
// 1 / (1 − rate), so the expected activation is unchanged and inference is the identity.

/// Dropout forward in training: draws a keep mask from `generator` and applies it.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten with `x ⊙ mask`.
///   - mask: same shape as `x`, overwritten with 0 (dropped) or `1 / (1 − rate)` (kept);
///     `dropoutBackward` needs it.
///   - x: any shape.
///   - rate: drop probability in [0, 1).
///   - generator: the seeded source of the mask.
@inlinable
public func dropoutForward<T: Real>(_ out: inout Tensor<T>, _ mask: inout Tensor<T>, _ x: Tensor<T>,
                                    rate: Double, generator: inout SeededGenerator) {
    dropoutApply(&out, &mask, x, residual: nil, rate: rate, generator: &generator)
}

/// Dropout forward in training fused with the residual add that follows it in a pre-norm block:
/// `out = residual + x ⊙ mask`, in one pass and without a separate dropped tensor.
///
/// The mask is the one `dropoutForward` would draw from the same generator state.
///
/// - Parameters:
///   - out: same shape as `x`, overwritten.
///   - mask: same shape as `x`, overwritten with 0 or `1 / (1 − rate)`.
///   - x: the branch to drop, any shape.
///   - residual: the skip path, same count as `x`.
///   - rate: drop probability in [0, 1).
///   - generator: the seeded source of the mask.
@inlinable
public func dropoutResidualForward<T: Real>(_ out: inout Tensor<T>, _ mask: inout Tensor<T>, _ x: Tensor<T>,
                                            residual: Tensor<T>, rate: Double, generator: inout SeededGenerator) {
    precondition(residual.count == x.count, "dropout: residual \(residual.shape) does not fit \(x.shape)")
    dropoutApply(&out, &mask, x, residual: residual, rate: rate, generator: &generator)
}

/// Shared body of the two forwards: `out = (residual ?? 0) + x ⊙ mask`.
@inlinable
func dropoutApply<T: Real>(_ out: inout Tensor<T>, _ mask: inout Tensor<T>, _ x: Tensor<T>,
                           residual: Tensor<T>?, rate: Double, generator: inout SeededGenerator) {
    precondition(rate >= 0 && rate < 1, "dropout: rate \(rate) is not in [0, 1)")
    prepareOutput(&out, like: x.shape)
    prepareOutput(&mask, like: x.shape)
    let n = x.count
    let scale = T(1 / (1 - rate))
    let threshold = UInt32(min((rate * 4_294_967_296).rounded(), 4_294_967_295))
    guard n > 0 else { return }
    // Each 64-bit draw gives two 32-bit uniforms (low half for the even element, high half for
    // the odd one): half the generator calls of one draw per element. The keep test becomes a
    // 0/1 integer converted to a float and scaled, which compiles without a branch (a select
    // here becomes a jump that mispredicts on the random outcome). rate < 1, so the threshold
    // fits in 32 bits.
    mask.data.withUnsafeMutableBufferPointer { pm in
        out.data.withUnsafeMutableBufferPointer { po in
            x.data.withUnsafeBufferPointer { px in
                // Safe: all three buffers hold n elements (prepareOutput), and
                // `forEachDropoutFactor` passes indices below n.
                let m = pm.baseAddress!, o = po.baseAddress!, xs = px.baseAddress!
                if let residual {
                    residual.data.withUnsafeBufferPointer { pr in
                        // Safe: residual holds n elements (checked by the caller).
                        let skip = pr.baseAddress!
                        forEachDropoutFactor(n, threshold, scale, &generator) { i, k in
                            m[i] = k; o[i] = skip[i] + xs[i] * k
                        }
                    }
                } else {
                    forEachDropoutFactor(n, threshold, scale, &generator) { i, k in
                        m[i] = k; o[i] = xs[i] * k
                    }
                }
            }
        }
    }
}

/// Calls `body(i, factor)` for `i` in `0..<n` in order, with factor 0 (dropped) or `scale`.
///
/// The generator is stepped in a local copy so its state stays in registers across the loop
/// (through the `inout` it would be stored and reloaded each step, lengthening the chain).
@inlinable @inline(__always)
func forEachDropoutFactor<T: Real>(_ n: Int, _ threshold: UInt32, _ scale: T, _ generator: inout SeededGenerator,
                                   _ body: (Int, T) -> Void) {
    var rng = generator
    var i = 0
    while i + 2 <= n {
        let bits = rng.next()
        body(i, dropoutFactor(UInt32(truncatingIfNeeded: bits), threshold, scale))
        body(i + 1, dropoutFactor(UInt32(truncatingIfNeeded: bits >> 32), threshold, scale))
        i += 2
    }
    if i < n { body(i, dropoutFactor(UInt32(truncatingIfNeeded: rng.next()), threshold, scale)) }
    generator = rng
}

/// `scale` when the uniform `bits` is at or above `threshold` (kept), else 0, without a branch.
@inlinable @inline(__always)
func dropoutFactor<T: Real>(_ bits: UInt32, _ threshold: UInt32, _ scale: T) -> T {
    T(Int32(bits >= threshold ? 1 : 0)) * scale
}

/// Backward of `dropoutForward`: `dx += dout ⊙ mask`.
///
/// - Parameters:
///   - dx: same shape as `mask`, accumulated.
///   - dout: same shape as `mask`.
///   - mask: from the matching forward.
@inlinable
public func dropoutBackward<T: Real>(_ dx: inout Tensor<T>, _ dout: Tensor<T>, _ mask: Tensor<T>) {
    let n = mask.count
    precondition(dx.count == n && dout.count == n, "dropout: dx \(dx.shape) / dout \(dout.shape) do not fit mask \(mask.shape)")
    guard n > 0 else { return }
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            mask.data.withUnsafeBufferPointer { pm in
                // Safe: all three hold n elements (checked above).
                let g = pdx.baseAddress!, d = pd.baseAddress!, k = pm.baseAddress!
                for i in 0..<n { g[i] += d[i] * k[i] }
            }
        }
    }
}

/// Inverted dropout owning its seeded generator and the mask of the last training forward;
/// the identity in evaluation.
public struct DropoutLayer<T: Real>: Sendable {
    /// Drop probability in [0, 1).
    public let rate: Double
    /// Source of the masks; seeded at construction so runs are reproducible.
    public var generator: SeededGenerator
    @usableFromInline var mask: Tensor<T> = .empty
    @usableFromInline var dropped = false

    /// Dropout with drop probability `rate`, masks drawn from a generator seeded with `seed`.
    public init(rate: Double, seed: UInt64) {
        precondition(rate >= 0 && rate < 1, "dropout: rate \(rate) is not in [0, 1)")
        self.rate = rate
        self.generator = SeededGenerator(seed: seed)
    }

    /// Applies dropout in training (with a fresh mask), the identity otherwise.
    ///
    /// - Parameters:
    ///   - out: same shape as `x`, overwritten.
    ///   - x: any shape.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, training: Bool) {
        dropped = training && rate > 0
        if dropped {
            dropoutForward(&out, &mask, x, rate: rate, generator: &generator)
        } else {
            out = x
        }
    }

    /// Applies dropout to `x` and adds the skip path: `out = residual + Dropout(x)`, one pass.
    ///
    /// - Parameters:
    ///   - out: same shape as `x`, overwritten.
    ///   - x: the branch, any shape.
    ///   - residual: the skip path, same count as `x`.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, addingTo residual: Tensor<T>, training: Bool) {
        dropped = training && rate > 0
        if dropped {
            dropoutResidualForward(&out, &mask, x, residual: residual, rate: rate, generator: &generator)
        } else {
            residualForward(&out, residual, x)
        }
    }

    /// Backward of the last `forward` that overwrites instead of accumulating: `dx = dout ⊙ mask`.
    ///
    /// Spares the caller zeroing a scratch buffer only to add into it.
    /// - Parameters:
    ///   - dx: takes `dout`'s shape, overwritten.
    ///   - dout: same shape as the input.
    @inlinable
    public mutating func backward(overwriting dx: inout Tensor<T>, _ dout: Tensor<T>) {
        prepareOutput(&dx, like: dout.shape)
        let n = dout.count, dropped = self.dropped
        precondition(!dropped || mask.count == n, "dropout: dout \(dout.shape) does not fit mask \(mask.shape)")
        guard n > 0 else { return }
        dx.data.withUnsafeMutableBufferPointer { pdx in
            dout.data.withUnsafeBufferPointer { pd in
                mask.data.withUnsafeBufferPointer { pm in
                    // Safe: dx and dout hold n (prepareOutput); the mask too when it is read.
                    let g = pdx.baseAddress!, d = pd.baseAddress!
                    if dropped {
                        let k = pm.baseAddress!
                        for i in 0..<n { g[i] = d[i] * k[i] }
                    } else {
                        g.update(from: d, count: n)
                    }
                }
            }
        }
    }

    /// Backward of the last `forward`.
    ///
    /// - Parameters:
    ///   - dx: same shape as the input, accumulated.
    ///   - dout: same shape as the input.
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        if dropped {
            dropoutBackward(&dx, dout, mask)
        } else {
            precondition(dx.count == dout.count, "dropout: dx \(dx.shape) does not fit dout \(dout.shape)")
            dx.data.withUnsafeMutableBufferPointer { pdx in
                dout.data.withUnsafeBufferPointer { pd in
                    // Safe: equal counts (checked above).
                    for i in 0..<pd.count { pdx[i] += pd[i] }
                }
            }
        }
    }

    /// Dropout has no parameters; present so models can treat every layer alike.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {}

    /// Dropout has no gradients to zero.
    public mutating func zeroGradients() {}
}
