import HeedCore

/// Multi-head self-attention with its parameters, gradients and forward cache
/// (see `selfAttentionForward` for the maths and masking rules).
public struct SelfAttentionLayer<T: Real>: Sendable {
    /// The Q/K/V/O projections, width D.
    public var params: SelfAttentionParameters<T>
    /// Accumulated gradients, same shapes as `params`.
    public var grads: SelfAttentionParameters<T>
    /// Number of heads H (divides D).
    public let heads: Int
    /// Whether query `i` may only attend to keys `j ≤ i` (SASRec's next-item setting).
    public let causal: Bool
    /// Saved forward state; `cache.probabilities` (B × H × L × L) holds the last attention weights.
    public var cache = SelfAttentionCache<T>()
    /// (B × L × D) the last forward input.
    @usableFromInline var input = Tensor<T>.empty
    /// (B × L) the last forward mask (or empty).
    @usableFromInline var mask = Tensor<T>.empty

    /// A layer of width `dim` with `heads` heads, Xavier-initialised from `generator`.
    public init(dim: Int, heads: Int, causal: Bool, generator: inout SeededGenerator) {
        precondition(heads > 0 && dim % heads == 0, "self-attention: \(heads) heads do not divide width \(dim)")
        self.params = SelfAttentionParameters(dim: dim, generator: &generator)
        self.grads = SelfAttentionParameters(zeros: dim)
        self.heads = heads
        self.causal = causal
    }

    /// Runs the forward pass and remembers what the backward needs.
    /// - Parameters:
    ///   - out: (B × L × D), overwritten.
    ///   - x: (B × L × D).
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, mask: Tensor<T>) {
        input = x
        self.mask = mask
        selfAttentionForward(&out, &cache, x, mask, params, heads: heads, causal: causal)
    }

    /// Back-propagates `dout` (B × L × D) from the last forward: `dx += …`, `grads += …`.
    /// Pass `.empty` as `dx` when the input needs no gradient. Releases the reference to the
    /// input, so the caller can overwrite that buffer in place without a copy: each forward
    /// serves one backward (as for `MLPLayer`).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(input.shape.count == 3, "self-attention: backward needs a forward first (each forward serves one backward)")
        selfAttentionBackward(&dx, &grads, dout, input, mask, params, &cache, heads: heads)
        input = .empty
        mask = .empty
    }

    /// Visits (name, value, gradient) in a fixed order.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        params.visit(with: &grads, prefix: "", body)
    }

    /// Zeroes the accumulated gradients.
    public mutating func zeroGradients() { grads.zero() }
}
