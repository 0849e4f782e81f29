import HeedCore

/// An LSTM unrolled over padded sequences, with its weights, gradients and forward cache
/// (see `lstmForward` for the padding rule: padded steps carry both states and output zeros).
public struct LSTMLayer<T: Real>: Sendable {
    /// The cell's weights.
    public var params: LSTMParameters<T>
    /// Accumulated gradients, same shapes as `params`.
    public var grads: LSTMParameters<T>
    /// Saved forward state.
    public var cache = LSTMCache<T>()
    /// (B × L × D_in) the last forward input.
    @usableFromInline var input = Tensor<T>.empty
    /// (B × L) the last forward mask (or empty).
    @usableFromInline var mask = Tensor<T>.empty

    /// An LSTM from `inputSize` features to `hiddenSize` units, initialised from `generator`.
    public init(inputSize: Int, hiddenSize: Int, generator: inout SeededGenerator) {
        params = LSTMParameters(input: inputSize, hidden: hiddenSize, generator: &generator)
        grads = LSTMParameters(zerosInput: inputSize, hidden: hiddenSize)
    }

    /// Runs the sequence.
    /// - Parameters:
    ///   - out: (B × L × H), overwritten (zeros at padded steps).
    ///   - finalHidden: (B × H), overwritten with `h` after the last real step.
    ///   - finalCell: (B × H), overwritten with `c` after the last real step.
    ///   - x: (B × L × D_in).
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    ///   - initialHidden: (B × H), or `.empty` for zeros.
    ///   - initialCell: (B × H), or `.empty` for zeros.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ finalHidden: inout Tensor<T>, _ finalCell: inout Tensor<T>,
                                 _ x: Tensor<T>, mask: Tensor<T>,
                                 initialHidden: Tensor<T> = .empty, initialCell: Tensor<T> = .empty) {
        input = x
        self.mask = mask
        lstmForward(&out, &finalHidden, &finalCell, &cache, x, mask, initialHidden, initialCell, params)
    }

    /// Back-propagates through time from the last forward.
    /// - Parameters:
    ///   - dx: (B × L × D_in), `+=`; `.empty` to skip.
    ///   - dInitialHidden: (B × H), `+=`; `.empty` to skip.
    ///   - dInitialCell: (B × H), `+=`; `.empty` to skip.
    ///   - dout: (B × L × H) or `.empty`.
    ///   - dFinalHidden: (B × H) or `.empty`.
    ///   - dFinalCell: (B × H) or `.empty`.
    ///
    /// Releases the reference to the input (each forward serves one backward).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dInitialHidden: inout Tensor<T>, _ dInitialCell: inout Tensor<T>,
                                  _ dout: Tensor<T>, _ dFinalHidden: Tensor<T>, _ dFinalCell: Tensor<T>) {
        precondition(input.shape.count == 3, "lstm: backward needs a forward first (each forward serves one backward)")
        lstmBackward(&dx, &dInitialHidden, &dInitialCell, &grads, dout, dFinalHidden, dFinalCell, input, mask, params, &cache)
        input = .empty
        mask = .empty
    }

    /// Visits (name, value, gradient): inputWeight, hiddenWeight, bias.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        params.visit(with: &grads, body)
    }

    /// Zeroes the accumulated gradients.
    public mutating func zeroGradients() { grads.zero() }
}
