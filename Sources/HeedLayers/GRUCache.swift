/// What `gruForward` saves for `gruBackward`, plus scratch; reallocated only when shapes change.
public struct GRUCache<T: Real>: Sendable {
    /// (B × L × 3H) `x·Wi + bi` for every step, computed by one GEMM.
    public var inputProjection = Tensor<T>.empty
    /// ((L + 1) × B × H) time-major hidden states; entry 0 is the initial state.
    public var states = Tensor<T>.empty
    /// (L × B × 3H) gate activations [r | z | n] per step (zero at padded steps).
    public var gates = Tensor<T>.empty
    /// (L × B × H) `h·Wh_n + bh_n` per step, which the reset gate multiplies.
    public var hiddenCandidate = Tensor<T>.empty

    /// (B × 3H) scratch: one step's recurrent projection.
    @usableFromInline var hiddenProjection = Tensor<T>.empty
    /// (B × L × 3H) scratch: gradient of `inputProjection`.
    @usableFromInline var dInputProjection = Tensor<T>.empty
    /// (L × B × 3H) scratch: gradient of each step's recurrent projection.
    @usableFromInline var dHiddenProjection = Tensor<T>.empty
    /// (B × H) scratch: gradient flowing into the previous hidden state.
    @usableFromInline var dState = Tensor<T>.empty

    /// An empty cache; the first forward allocates it.
    public init() {}
}
