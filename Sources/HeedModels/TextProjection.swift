import HeedCore
import HeedLayers

/// The trained dense layer of the `text-tower` model that maps pre-trained item text
/// vectors (width Dt, e.g. 384 for MiniLM) to the model's embedding width D:
/// `z = t · W + b`, applied to the batch's unique text rows only.
///
/// The projection runs once per pulled row (U rows), not once per position (B·(L+1)): the
/// rows are then gathered into targets and behaviours like any embedding table, and the
/// gathers' gradients are summed per row before coming back through this layer.
struct TextProjection<T: Real>: Sendable {
    /// (Dt × D), Glorot-normal.
    var weight: Tensor<T>
    /// (D), zeros.
    var bias: Tensor<T>
    /// Gradients with the shapes of `weight` and `bias` (accumulated by `backward`).
    var dWeight: Tensor<T>
    var dBias: Tensor<T>

    /// Input width Dt.
    var inputWidth: Int { weight.shape[0] }
    /// Output width D.
    var outputWidth: Int { weight.shape[1] }

    /// A projection `inputWidth → outputWidth` with Glorot-normal weights
    /// (std `sqrt(2 / (Dt + D))`) and zero bias.
    init(inputWidth: Int, outputWidth: Int, generator: inout SeededGenerator) {
        precondition(inputWidth > 0 && outputWidth > 0, "text projection: widths must be positive")
        weight = Tensor(gaussian: [inputWidth, outputWidth], std: (2.0 / Double(inputWidth + outputWidth)).squareRoot(), generator: &generator)
        bias = Tensor(zeros: [outputWidth])
        dWeight = Tensor(zeros: weight.shape)
        dBias = Tensor(zeros: bias.shape)
    }

    /// `out = rows · W + b`.
    /// - Parameters:
    ///   - out: (U × D), overwritten.
    ///   - rows: (U × Dt) text rows.
    func forward(_ out: inout Tensor<T>, _ rows: Tensor<T>) {
        precondition(rows.lastDim == inputWidth || rows.count == 0, "text projection: rows \(rows.shape) are not \(inputWidth) wide")
        out.resize([rows.rows, outputWidth])
        guard rows.rows > 0 else { return }
        denseForward(&out, rows, weight, bias)
    }

    /// Backward of `forward`: `dRows += dOut · Wᵀ`, `dW += rowsᵀ · dOut`, `db += Σ dOut`.
    /// - Parameters:
    ///   - dRows: (U × Dt), accumulated; `.empty` to skip (frozen rows still need dW).
    ///   - dOut: (U × D).
    ///   - rows: (U × Dt), the forward input.
    mutating func backward(_ dRows: inout Tensor<T>, _ dOut: Tensor<T>, _ rows: Tensor<T>) {
        guard rows.rows > 0 else { return }
        denseBackward(&dRows, &dWeight, &dBias, dOut, rows, weight)
    }

    /// Visits (name, value, gradient): `weight`, then `bias`.
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("weight", &weight, &dWeight)
        body("bias", &bias, &dBias)
    }

    /// Sets both gradients to zero.
    mutating func zeroGradients() {
        dWeight.zero()
        dBias.zero()
    }
}
