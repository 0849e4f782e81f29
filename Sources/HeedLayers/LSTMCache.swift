/// What `lstmForward` saves for `lstmBackward`, plus scratch; reallocated only when shapes change.
public struct LSTMCache<T: Real>: Sendable {
    /// (B × L × 4H) `x·Wi + b` for every step, computed by one GEMM.
    public var inputProjection = Tensor<T>.empty
    /// ((L + 1) × B × H) time-major hidden states; entry 0 is the initial state.
    public var states = Tensor<T>.empty
    /// ((L + 1) × B × H) time-major cell states; entry 0 is the initial cell.
    public var cells = Tensor<T>.empty
    /// (L × B × 4H) gate activations [i | f | g | o] per step (zero at padded steps).
    public var gates = Tensor<T>.empty
    /// (L × B × H) `tanh(c_t)` per step.
    public var cellTanh = Tensor<T>.empty

    /// (B × 4H) scratch: one step's recurrent projection.
    @usableFromInline var hiddenProjection = Tensor<T>.empty
    /// (B × L × 4H) scratch: gradient of the gate pre-activations, batch-major.
    @usableFromInline var dInputProjection = Tensor<T>.empty
    /// (L × B × 4H) scratch: the same gradient, time-major, for the recurrent weight GEMM.
    @usableFromInline var dHiddenProjection = Tensor<T>.empty
    /// (B × H) scratch: gradient flowing into the previous hidden state.
    @usableFromInline var dState = Tensor<T>.empty
    /// (B × H) scratch: gradient flowing into the previous cell state.
    @usableFromInline var dCell = Tensor<T>.empty

    /// An empty cache; the first forward allocates it.
    public init() {}
}
