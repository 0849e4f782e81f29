import HeedCore

/// Weights of a GRU cell, or their gradients, with gates in the order reset, update, new
/// (PyTorch's layout, so trained weights map one-to-one).
///
///     r = σ(x·Wi_r + bi_r + h·Wh_r + bh_r)
///     z = σ(x·Wi_z + bi_z + h·Wh_z + bh_z)
///     n = tanh(x·Wi_n + bi_n + r ⊙ (h·Wh_n + bh_n))
///     h' = (1 − z) ⊙ n + z ⊙ h
///
/// The hidden bias is separate from the input bias because `bh_n` sits inside `r ⊙ (…)`.
public struct GRUParameters<T: Real>: Sendable {
    /// (D_in × 3H) input projection, column blocks [r | z | n].
    public var inputWeight: Tensor<T>
    /// (H × 3H) recurrent projection, column blocks [r | z | n].
    public var hiddenWeight: Tensor<T>
    /// (3H) input bias.
    public var inputBias: Tensor<T>
    /// (3H) recurrent bias.
    public var hiddenBias: Tensor<T>

    /// All-zero parameters (the shape gradient buffers take).
    public init(zerosInput inputSize: Int, hidden hiddenSize: Int) {
        inputWeight = Tensor(zeros: [inputSize, 3 * hiddenSize])
        hiddenWeight = Tensor(zeros: [hiddenSize, 3 * hiddenSize])
        inputBias = Tensor(zeros: [3 * hiddenSize])
        hiddenBias = Tensor(zeros: [3 * hiddenSize])
    }

    /// Normal weights with `std = 1/√H` (the scale of PyTorch's uniform(±1/√H) init) and zero
    /// biases; input weights are drawn before recurrent ones.
    public init(input inputSize: Int, hidden hiddenSize: Int, generator: inout SeededGenerator) {
        let std = 1 / Double(hiddenSize).squareRoot()
        inputWeight = Tensor(gaussian: [inputSize, 3 * hiddenSize], std: std, generator: &generator)
        hiddenWeight = Tensor(gaussian: [hiddenSize, 3 * hiddenSize], std: std, generator: &generator)
        inputBias = Tensor(zeros: [3 * hiddenSize])
        hiddenBias = Tensor(zeros: [3 * hiddenSize])
    }

    /// Input width D_in.
    @inlinable public var inputSize: Int { inputWeight.shape[0] }
    /// Hidden width H.
    @inlinable public var hiddenSize: Int { hiddenWeight.shape[0] }

    /// Sets every tensor to zero.
    public mutating func zero() { inputWeight.zero(); hiddenWeight.zero(); inputBias.zero(); hiddenBias.zero() }

    /// Visits (name, value, gradient) in the order inputWeight, hiddenWeight, inputBias, hiddenBias.
    public mutating func visit(with grads: inout GRUParameters<T>,
                               _ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("inputWeight", &inputWeight, &grads.inputWeight)
        body("hiddenWeight", &hiddenWeight, &grads.hiddenWeight)
        body("inputBias", &inputBias, &grads.inputBias)
        body("hiddenBias", &hiddenBias, &grads.hiddenBias)
    }
}
