/// What `feedForwardForward` saves for `feedForwardBackward`, plus scratch; reused across steps.
public struct FeedForwardCache<T: Real>: Sendable {
    /// (N × F) `x · W1 + b1`.
    public var preActivation = Tensor<T>.empty
    /// (N × F) `ReLU(preActivation)`.
    public var hidden = Tensor<T>.empty
    /// (N × F) backward scratch: gradient of `hidden`, then (in place) of `preActivation`.
    @usableFromInline var dHidden = Tensor<T>.empty

    /// An empty cache; the first forward allocates it.
    public init() {}
}
