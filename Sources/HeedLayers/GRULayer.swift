import HeedCore

/// A GRU unrolled over padded sequences, with its weights, gradients and forward cache
/// (see `gruForward` for the padding rule: padded steps carry the state and output zeros).
public struct GRULayer<T: Real>: Sendable {
    /// The cell's weights.
    public var params: GRUParameters<T>
    /// Accumulated gradients, same shapes as `params`.
    public var grads: GRUParameters<T>
    /// Saved forward state.
    public var cache = GRUCache<T>()
    /// (B × L × D_in) the last forward input.
    @usableFromInline var input = Tensor<T>.empty
    /// (B × L) the last forward mask (or empty).
    @usableFromInline var mask = Tensor<T>.empty

    /// A GRU from `inputSize` features to `hiddenSize` units, initialised from `generator`.
    public init(inputSize: Int, hiddenSize: Int, generator: inout SeededGenerator) {
        params = GRUParameters(input: inputSize, hidden: hiddenSize, generator: &generator)
        grads = GRUParameters(zerosInput: inputSize, hidden: hiddenSize)
    }

    /// Runs the sequence.
    /// - Parameters:
    ///   - out: (B × L × H), overwritten (zeros at padded steps).
    ///   - finalState: (B × H), overwritten with the state after the last real step.
    ///   - x: (B × L × D_in).
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    ///   - initialState: (B × H), or `.empty` for zeros.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ finalState: inout Tensor<T>, _ x: Tensor<T>,
                                 mask: Tensor<T>, initialState: Tensor<T> = .empty) {
        input = x
        self.mask = mask
        gruForward(&out, &finalState, &cache, x, mask, initialState, params)
    }

    /// Back-propagates through time from the last forward.
    /// - Parameters:
    ///   - dx: (B × L × D_in), `+=`; `.empty` to skip.
    ///   - dInitialState: (B × H), `+=`; `.empty` to skip.
    ///   - dout: (B × L × H) or `.empty`.
    ///   - dFinalState: (B × H) or `.empty`.
    ///
    /// Releases the reference to the input (each forward serves one backward).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dInitialState: inout Tensor<T>,
                                  _ dout: Tensor<T>, _ dFinalState: Tensor<T>) {
        precondition(input.shape.count == 3, "gru: backward needs a forward first (each forward serves one backward)")
        gruBackward(&dx, &dInitialState, &grads, dout, dFinalState, input, mask, params, &cache)
        input = .empty
        mask = .empty
    }

    /// Visits (name, value, gradient): inputWeight, hiddenWeight, inputBias, hiddenBias.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        params.visit(with: &grads, body)
    }

    /// Zeroes the accumulated gradients.
    public mutating func zeroGradients() { grads.zero() }
}
