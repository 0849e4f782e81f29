import HeedCore

/// Weights of an LSTM cell (Hochreiter & Schmidhuber 1997, with a forget gate, Gers et al.
/// 2000), or their gradients; gates in PyTorch's order input, forget, cell, output.
///
///     [i, f, g, o] = [σ, σ, tanh, σ](x·Wi + h·Wh + b)
///     c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')
///
/// One bias only: PyTorch's second (recurrent) bias is redundant, only the sum matters.
public struct LSTMParameters<T: Real>: Sendable {
    /// (D_in × 4H) input projection, column blocks [i | f | g | o].
    public var inputWeight: Tensor<T>
    /// (H × 4H) recurrent projection, column blocks [i | f | g | o].
    public var hiddenWeight: Tensor<T>
    /// (4H) gate bias.
    public var bias: Tensor<T>

    /// All-zero parameters (the shape gradient buffers take).
    public init(zerosInput inputSize: Int, hidden hiddenSize: Int) {
        inputWeight = Tensor(zeros: [inputSize, 4 * hiddenSize])
        hiddenWeight = Tensor(zeros: [hiddenSize, 4 * hiddenSize])
        bias = Tensor(zeros: [4 * hiddenSize])
    }

    /// Normal weights with `std = 1/√H`, input weights drawn first; bias 0 except the forget
    /// gate's, which starts at 1 so early training does not forget everything
    /// (Jozefowicz et al. 2015).
    public init(input inputSize: Int, hidden hiddenSize: Int, generator: inout SeededGenerator) {
        let std = 1 / Double(hiddenSize).squareRoot()
        inputWeight = Tensor(gaussian: [inputSize, 4 * hiddenSize], std: std, generator: &generator)
        hiddenWeight = Tensor(gaussian: [hiddenSize, 4 * hiddenSize], std: std, generator: &generator)
        bias = Tensor(zeros: [4 * hiddenSize])
        for k in hiddenSize..<(2 * hiddenSize) { bias.data[k] = 1 }
    }

    /// Input width D_in.
    @inlinable public var inputSize: Int { inputWeight.shape[0] }
    /// Hidden width H.
    @inlinable public var hiddenSize: Int { hiddenWeight.shape[0] }

    /// Sets every tensor to zero.
    public mutating func zero() { inputWeight.zero(); hiddenWeight.zero(); bias.zero() }

    /// Visits (name, value, gradient) in the order inputWeight, hiddenWeight, bias.
    public mutating func visit(with grads: inout LSTMParameters<T>,
                               _ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("inputWeight", &inputWeight, &grads.inputWeight)
        body("hiddenWeight", &hiddenWeight, &grads.hiddenWeight)
        body("bias", &bias, &grads.bias)
    }
}
