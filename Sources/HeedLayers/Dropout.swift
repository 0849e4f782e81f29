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
    precondition(rate >= 0 && rate < 1, "dropout: rate \(rate) is not in [0, 1)")
    prepareOutput(&out, like: x.shape)
    prepareOutput(&mask, like: x.shape)
    let n = x.count
    let scale = T(1 / (1 - rate))
    // Compare 24-bit integers rather than floats: one multiply-free test per element.
    let threshold = UInt64((rate * 16_777_216).rounded())
    mask.data.withUnsafeMutableBufferPointer { pm in
        out.data.withUnsafeMutableBufferPointer { po in
            x.data.withUnsafeBufferPointer { px in
                // Safe: all three buffers hold n elements (prepareOutput).
                for i in 0..<n {
                    let keep: T = (generator.next() >> 40) >= threshold ? scale : 0
                    pm[i] = keep
                    po[i] = px[i] * keep
                }
            }
        }
    }
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
    dx.data.withUnsafeMutableBufferPointer { pdx in
        dout.data.withUnsafeBufferPointer { pd in
            mask.data.withUnsafeBufferPointer { pm in
                // Safe: all three hold n elements (checked above).
                for i in 0..<n { pdx[i] += pd[i] * pm[i] }
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
