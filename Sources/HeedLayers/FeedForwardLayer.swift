import HeedCore

/// Point-wise feed-forward network `ReLU(x · W1 + b1) · W2 + b2` with its parameters,
/// gradients and forward cache (see `feedForwardForward`).
public struct FeedForwardLayer<T: Real>: Sendable {
    /// (D × F) first projection.
    public var w1: Tensor<T>
    /// (F) first bias.
    public var b1: Tensor<T>
    /// (F × D) second projection.
    public var w2: Tensor<T>
    /// (D) second bias.
    public var b2: Tensor<T>
    /// Accumulated gradient of `w1`.
    public var dW1: Tensor<T>
    /// Accumulated gradient of `b1`.
    public var dB1: Tensor<T>
    /// Accumulated gradient of `w2`.
    public var dW2: Tensor<T>
    /// Accumulated gradient of `b2`.
    public var dB2: Tensor<T>
    /// Saved forward state and backward scratch.
    public var cache = FeedForwardCache<T>()
    /// (N × D) the last forward input.
    @usableFromInline var input = Tensor<T>.empty

    /// A network of width `dim` with `hidden` inner units; He-normal `W1` (it feeds a ReLU),
    /// Xavier-normal `W2`, zero biases, drawn in that order.
    public init(dim: Int, hidden: Int, generator: inout SeededGenerator) {
        w1 = Tensor(gaussian: [dim, hidden], std: (2.0 / Double(dim)).squareRoot(), generator: &generator)
        w2 = Tensor(gaussian: [hidden, dim], std: (2.0 / Double(dim + hidden)).squareRoot(), generator: &generator)
        b1 = Tensor(zeros: [hidden]); b2 = Tensor(zeros: [dim])
        dW1 = Tensor(zeros: [dim, hidden]); dB1 = Tensor(zeros: [hidden])
        dW2 = Tensor(zeros: [hidden, dim]); dB2 = Tensor(zeros: [dim])
    }

    /// Applies the network to every row.
    /// - Parameters:
    ///   - out: (N × D) or `x`'s shape, overwritten.
    ///   - x: (N × D) or (B × L × D).
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>) {
        input = x
        feedForwardForward(&out, &cache, x, w1, b1, w2, b2)
    }

    /// Back-propagates `dout` (shape of the last input): `dx += …` (`.empty` to skip), gradients
    /// `+= …`. Releases the reference to the input (each forward serves one backward).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(input.count > 0, "feed-forward: backward needs a forward first (each forward serves one backward)")
        feedForwardBackward(&dx, &dW1, &dB1, &dW2, &dB2, dout, input, w1, w2, &cache)
        input = .empty
    }

    /// Visits ("w1", "b1", "w2", "b2") with their gradients, in that order.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("w1", &w1, &dW1)
        body("b1", &b1, &dB1)
        body("w2", &w2, &dW2)
        body("b2", &b2, &dB2)
    }

    /// Zeroes the accumulated gradients.
    public mutating func zeroGradients() { dW1.zero(); dB1.zero(); dW2.zero(); dB2.zero() }
}
