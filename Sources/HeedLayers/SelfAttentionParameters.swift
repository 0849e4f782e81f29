import HeedCore

/// The query/key/value/output projections of multi-head self-attention, or their gradients.
///
/// Every projection maps the model width onto itself, `y = x · W + b`, with `W` (D × D)
/// row-major and `b` (D). Heads are contiguous column blocks of width `D / H` in the
/// projected Q, K and V (head `h` owns columns `h·D/H ..< (h+1)·D/H`).
public struct SelfAttentionParameters<T: Real>: Sendable {
    /// (D × D) query projection.
    public var queryWeight: Tensor<T>
    /// (D) query bias.
    public var queryBias: Tensor<T>
    /// (D × D) key projection.
    public var keyWeight: Tensor<T>
    /// (D) key bias.
    public var keyBias: Tensor<T>
    /// (D × D) value projection.
    public var valueWeight: Tensor<T>
    /// (D) value bias.
    public var valueBias: Tensor<T>
    /// (D × D) output projection applied to the concatenated heads.
    public var outputWeight: Tensor<T>
    /// (D) output bias.
    public var outputBias: Tensor<T>

    /// All-zero parameters of width `dim` (the shape gradient buffers take).
    public init(zeros dim: Int) {
        queryWeight = Tensor(zeros: [dim, dim]); queryBias = Tensor(zeros: [dim])
        keyWeight = Tensor(zeros: [dim, dim]); keyBias = Tensor(zeros: [dim])
        valueWeight = Tensor(zeros: [dim, dim]); valueBias = Tensor(zeros: [dim])
        outputWeight = Tensor(zeros: [dim, dim]); outputBias = Tensor(zeros: [dim])
    }

    /// Xavier-normal weights (`std = √(2 / (D + D))`) and zero biases, drawn in the fixed
    /// order query, key, value, output.
    public init(dim: Int, generator: inout SeededGenerator) {
        let std = (1.0 / Double(dim)).squareRoot()
        self.init(zeros: dim)
        queryWeight = Tensor(gaussian: [dim, dim], std: std, generator: &generator)
        keyWeight = Tensor(gaussian: [dim, dim], std: std, generator: &generator)
        valueWeight = Tensor(gaussian: [dim, dim], std: std, generator: &generator)
        outputWeight = Tensor(gaussian: [dim, dim], std: std, generator: &generator)
    }

    /// Model width D.
    @inlinable public var dim: Int { queryBias.count }

    /// Sets every tensor to zero, keeping the allocations.
    public mutating func zero() {
        queryWeight.zero(); queryBias.zero(); keyWeight.zero(); keyBias.zero()
        valueWeight.zero(); valueBias.zero(); outputWeight.zero(); outputBias.zero()
    }

    /// Visits (name, value, matching gradient) in the fixed order q.w, q.b, k.w, k.b, v.w, v.b, o.w, o.b.
    public mutating func visit(with grads: inout SelfAttentionParameters<T>, prefix: String,
                               _ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body(prefix + "query.weight", &queryWeight, &grads.queryWeight)
        body(prefix + "query.bias", &queryBias, &grads.queryBias)
        body(prefix + "key.weight", &keyWeight, &grads.keyWeight)
        body(prefix + "key.bias", &keyBias, &grads.keyBias)
        body(prefix + "value.weight", &valueWeight, &grads.valueWeight)
        body(prefix + "value.bias", &valueBias, &grads.valueBias)
        body(prefix + "output.weight", &outputWeight, &grads.outputWeight)
        body(prefix + "output.bias", &outputBias, &grads.outputBias)
    }
}
