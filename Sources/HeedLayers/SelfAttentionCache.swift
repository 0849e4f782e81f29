/// What `selfAttentionForward` saves for `selfAttentionBackward`, plus backward scratch.
///
/// Reused across steps: kernels reallocate a buffer only when the batch shape changes.
public struct SelfAttentionCache<T: Real>: Sendable {
    /// (B × L × D) projected queries `x · Wq + bq`.
    public var query = Tensor<T>.empty
    /// (B × L × D) projected keys.
    public var key = Tensor<T>.empty
    /// (B × L × D) projected values.
    public var value = Tensor<T>.empty
    /// (B × H × L × L) attention weights: row `i` of head `h` is query `i`'s softmax over keys;
    /// rows of padded queries and fully masked rows are all zero. Exposed for explanations.
    public var probabilities = Tensor<T>.empty
    /// (B × L × D) concatenated head outputs before the output projection.
    public var context = Tensor<T>.empty

    /// (B × L × D) backward scratch: gradient of `context`.
    @usableFromInline var dContext = Tensor<T>.empty
    /// (B × L × D) backward scratch: gradient of `query`.
    @usableFromInline var dQuery = Tensor<T>.empty
    /// (B × L × D) backward scratch: gradient of `key`.
    @usableFromInline var dKey = Tensor<T>.empty
    /// (B × L × D) backward scratch: gradient of `value`.
    @usableFromInline var dValue = Tensor<T>.empty
    /// (L × L) backward scratch: gradient of one head's weights, then of its scores.
    @usableFromInline var dScores = Tensor<T>.empty

    /// An empty cache; the first forward allocates it.
    public init() {}
}
