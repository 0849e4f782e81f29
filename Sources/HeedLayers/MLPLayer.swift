import HeedCore

/// A multi-layer perceptron: dense layers `sizes[0] → sizes[1] → … → sizes.last` with one
/// activation kind between consecutive layers and none after the last (the output is raw
/// scores/logits).
///
/// The layer owns every intermediate buffer and reuses them across steps, so a training step
/// at a fixed batch size allocates nothing; the only per-step work outside CBLAS is one
/// elementwise pass per hidden layer forward and one backward (bias gradient fused into it).
public struct MLPLayer<T: Real>: Sendable {
    /// Layer widths, input first: `[in, hidden…, out]`.
    public let sizes: [Int]
    /// The activation between dense layers.
    public let activation: ActivationKind
    /// Per dense layer l: (sizes[l] × sizes[l+1]), row-major.
    public var weights: [Tensor<T>]
    /// Per dense layer l: (sizes[l+1]).
    public var biases: [Tensor<T>]
    /// Gradients of `weights`, accumulated by `backward`.
    public var dWeights: [Tensor<T>]
    /// Gradients of `biases`, accumulated by `backward`.
    public var dBiases: [Tensor<T>]
    /// The activations after each hidden layer (sizes.count − 2 of them), owning PReLU/Dice parameters.
    public var activations: [ActivationLayer<T>]

    @usableFromInline var input: Tensor<T> = .empty
    @usableFromInline var trainedForward = false
    /// Rows of the last `forward(_:firstDense:…)` (−1 otherwise): that path keeps no input.
    @usableFromInline var firstDenseRows = -1
    /// Per hidden layer l: (B × sizes[l+1]) dense outputs before the activation.
    @usableFromInline var pre: [Tensor<T>]
    /// Per hidden layer l: (B × sizes[l+1]) activation outputs (unused for `.identity`).
    @usableFromInline var post: [Tensor<T>]
    /// Per hidden layer l: (B × sizes[l+1]) gradient scratch.
    @usableFromInline var grad: [Tensor<T>]
    /// Per hidden layer l: second gradient buffer, used by Dice (whose backward cannot run in place).
    @usableFromInline var gradSpare: [Tensor<T>]

    /// Number of dense layers.
    @inlinable public var layerCount: Int { sizes.count - 1 }

    /// An MLP with Glorot-normal weights (std `sqrt(2 / (fan_in + fan_out))`) and zero biases.
    ///
    /// - Parameters:
    ///   - sizes: at least two widths, `[in, hidden…, out]`.
    ///   - activation: applied after every dense layer but the last.
    ///   - generator: the seeded source of the initial weights.
    public init(sizes: [Int], activation: ActivationKind, generator: inout SeededGenerator) {
        precondition(sizes.count >= 2 && sizes.allSatisfy { $0 > 0 }, "mlp: sizes \(sizes) need an input and an output width")
        self.sizes = sizes
        self.activation = activation
        let layers = sizes.count - 1
        weights = (0..<layers).map { l in
            Tensor(gaussian: [sizes[l], sizes[l + 1]], std: (2.0 / Double(sizes[l] + sizes[l + 1])).squareRoot(), generator: &generator)
        }
        biases = (0..<layers).map { Tensor(zeros: [sizes[$0 + 1]]) }
        dWeights = weights.map { Tensor(zeros: $0.shape) }
        dBiases = biases.map { Tensor(zeros: $0.shape) }
        activations = (0..<(layers - 1)).map { ActivationLayer(activation, features: sizes[$0 + 1]) }
        pre = Array(repeating: .empty, count: layers - 1)
        post = pre
        grad = pre
        gradSpare = pre
    }

    /// Runs the MLP. In training it keeps a reference to `x` until `backward`.
    ///
    /// - Parameters:
    ///   - out: (B × sizes.last), overwritten.
    ///   - x: (B × sizes[0]).
    ///   - training: Dice uses batch statistics; required before `backward`.
    ///   - rowMask: (B) of 0/1 rows entering Dice statistics, or `.empty` for all.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, training: Bool, rowMask: Tensor<T> = .empty) {
        precondition(x.lastDim == sizes[0], "mlp: input \(x.shape) does not have \(sizes[0]) features")
        let last = layerCount - 1
        for l in 0..<layerCount {
            if l == last {
                denseForward(&out, hiddenOutput(l - 1, x), weights[l], biases[l])
            } else {
                denseForward(&pre[l], hiddenOutput(l - 1, x), weights[l], biases[l])
                if activation != .identity {
                    activations[l].apply(&post[l], pre[l], training: training, rowMask: rowMask)
                }
            }
        }
        input = training ? x : .empty
        trainedForward = training
    }

    /// The input of dense layer `l + 1`: `x` for l = −1, else hidden layer l's activation output.
    @inlinable
    func hiddenOutput(_ l: Int, _ x: Tensor<T>) -> Tensor<T> {
        l < 0 ? x : (activation == .identity ? pre[l] : post[l])
    }

    /// Backward of the last (training) `forward`; accumulates into `dx` and every parameter
    /// gradient, then releases the reference to the input.
    ///
    /// - Parameters:
    ///   - dx: (B × sizes[0]), accumulated; pass `.empty` when the input needs no gradient.
    ///   - dout: (B × sizes.last).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(trainedForward, "mlp: backward needs a forward with training: true")
        let b = input.rows, last = layerCount - 1
        precondition(dout.count == b * sizes[layerCount], "mlp: dout \(dout.shape) does not fit output (\(b) × \(sizes[layerCount]))")
        for l in stride(from: last, through: 0, by: -1) {
            let inDim = sizes[l], outDim = sizes[l + 1]
            let g = l == last ? dout : grad[l]
            let x = hiddenOutput(l - 1, input)
            // dW_l += xᵀ · g
            x.data.withUnsafeBufferPointer { px in
                g.data.withUnsafeBufferPointer { pg in
                    dWeights[l].data.withUnsafeMutableBufferPointer { pdw in
                        // Safe: x is (b × inDim), g (b × outDim), dW (inDim × outDim).
                        T.gemm(transA: true, transB: false, m: inDim, n: outDim, k: b, alpha: 1,
                               a: px.baseAddress!, lda: inDim, b: pg.baseAddress!, ldb: outDim,
                               beta: 1, c: pdw.baseAddress!, ldc: outDim)
                    }
                }
            }
            // The top layer's bias gradient; hidden layers get theirs fused into the activation pass.
            if l == last { addColumnSums(&dBiases[l], g) }
            if l > 0 {
                // dPost_{l−1} = g · W_lᵀ, overwriting the scratch buffer (beta 0).
                let h = sizes[l]
                prepareOutput(&grad[l - 1], like: [b, h])
                g.data.withUnsafeBufferPointer { pg in
                    weights[l].data.withUnsafeBufferPointer { pw in
                        grad[l - 1].data.withUnsafeMutableBufferPointer { pd in
                            // Safe: g is (b × outDim), W (h × outDim), grad (b × h).
                            T.gemm(transA: false, transB: true, m: b, n: h, k: outDim, alpha: 1,
                                   a: pg.baseAddress!, lda: outDim, b: pw.baseAddress!, ldb: outDim,
                                   beta: 0, c: pd.baseAddress!, ldc: h)
                        }
                    }
                }
                activationBackward(layer: l - 1)
            } else if dx.count > 0 {
                precondition(dx.count == b * inDim, "mlp: dx \(dx.shape) does not fit input \(input.shape)")
                g.data.withUnsafeBufferPointer { pg in
                    weights[0].data.withUnsafeBufferPointer { pw in
                        dx.data.withUnsafeMutableBufferPointer { pdx in
                            // Safe: g is (b × outDim), W (inDim × outDim), dx (b × inDim).
                            T.gemm(transA: false, transB: true, m: b, n: inDim, k: outDim, alpha: 1,
                                   a: pg.baseAddress!, lda: outDim, b: pw.baseAddress!, ldb: outDim,
                                   beta: 1, c: pdx.baseAddress!, ldc: inDim)
                        }
                    }
                }
            }
        }
        input = .empty
        trainedForward = false
    }

    /// Turns `grad[l]` from ∂L/∂post into ∂L/∂pre of hidden layer `l` and adds its column sums
    /// to the bias gradient, in one pass for the elementwise kinds.
    @inlinable
    mutating func activationBackward(layer l: Int) {
        switch activation {
        case .dice:
            // Dice's statistics path needs all of ∂L/∂post before any ∂L/∂pre is written.
            prepareOutput(&gradSpare[l], like: grad[l].shape)
            gradSpare[l].zero()
            activations[l].applyBackward(&gradSpare[l], grad[l], input: pre[l], output: post[l])
            swap(&grad[l], &gradSpare[l])
            addColumnSums(&dBiases[l], grad[l])
        case .prelu:
            let d = sizes[l + 1], rows = grad[l].rows, alpha = activations[l].alpha
            grad[l].data.withUnsafeMutableBufferPointer { pg in
                pre[l].data.withUnsafeBufferPointer { px in
                    alpha.data.withUnsafeBufferPointer { pa in
                        activations[l].dAlpha.data.withUnsafeMutableBufferPointer { pda in
                            dBiases[l].data.withUnsafeMutableBufferPointer { pdb in
                                // Safe: grad and pre hold rows·d, alpha/dAlpha/dBias d. Every operand
                                // is loaded before the selects so the loop vectorises.
                                let a = pa.baseAddress!, da = pda.baseAddress!, db = pdb.baseAddress!
                                for r in 0..<rows {
                                    let g = pg.baseAddress! + r &* d, xs = px.baseAddress! + r &* d
                                    for j in 0..<d {
                                        let x = xs[j], gv = g[j], neg = gv * x, scaled = a[j] * gv
                                        let v = x > 0 ? gv : scaled
                                        da[j] += x > 0 ? 0 : neg
                                        g[j] = v
                                        db[j] += v
                                    }
                                }
                            }
                        }
                    }
                }
            }
        case .relu, .sigmoid, .tanh, .identity:
            let d = sizes[l + 1], rows = grad[l].rows, kind = activation
            grad[l].data.withUnsafeMutableBufferPointer { pg in
                (kind == .relu || kind == .identity ? pre[l] : post[l]).data.withUnsafeBufferPointer { ps in
                    dBiases[l].data.withUnsafeMutableBufferPointer { pdb in
                        // Safe: grad and the saved buffer hold rows·d, dBias d. One loop per kind
                        // (not a switch per element) so each vectorises.
                        let db = pdb.baseAddress!
                        switch kind {
                        case .relu:
                            for r in 0..<rows {
                                let g = pg.baseAddress! + r &* d, xs = ps.baseAddress! + r &* d
                                for j in 0..<d { let gv = g[j]; let v = xs[j] > 0 ? gv : 0; g[j] = v; db[j] += v }
                            }
                        case .sigmoid:
                            for r in 0..<rows {
                                let g = pg.baseAddress! + r &* d, ys = ps.baseAddress! + r &* d
                                for j in 0..<d { let y = ys[j]; let v = g[j] * y * (1 - y); g[j] = v; db[j] += v }
                            }
                        case .tanh:
                            for r in 0..<rows {
                                let g = pg.baseAddress! + r &* d, ys = ps.baseAddress! + r &* d
                                for j in 0..<d { let y = ys[j]; let v = g[j] * (1 - y * y); g[j] = v; db[j] += v }
                            }
                        default:
                            for r in 0..<rows {
                                let g = pg.baseAddress! + r &* d
                                for j in 0..<d { db[j] += g[j] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Visits parameters in a fixed order: for each dense layer l, `dense{l}.weight`,
    /// `dense{l}.bias`, then `activation{l}.alpha` when its activation has one.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        for l in 0..<layerCount {
            body("dense\(l).weight", &weights[l], &dWeights[l])
            body("dense\(l).bias", &biases[l], &dBiases[l])
            if l < activations.count {
                activations[l].visitParameters { name, value, grad in body("activation\(l).\(name)", &value, &grad) }
            }
        }
    }

    /// Visits the Dice running statistics, `activation{l}.runningMean` / `.runningVar`.
    public mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        for l in 0..<activations.count {
            activations[l].visitStatistics { name, value in body("activation\(l).\(name)", &value) }
        }
    }

    /// Sets every parameter gradient to zero.
    public mutating func zeroGradients() {
        for l in 0..<layerCount { dWeights[l].zero(); dBiases[l].zero() }
        for l in 0..<activations.count { activations[l].zeroGradients() }
    }
}

/// `sums[j] += Σ_rows m[r, j]`.
///
/// - Parameters:
///   - sums: (D), accumulated.
///   - m: (N × D).
@inlinable
func addColumnSums<T: Real>(_ sums: inout Tensor<T>, _ m: Tensor<T>) {
    let d = sums.count
    precondition(m.lastDim == d, "column sums: \(m.shape) does not have \(d) columns")
    sums.data.withUnsafeMutableBufferPointer { ps in
        m.data.withUnsafeBufferPointer { pm in
            // Safe: m holds rows·d elements, sums d.
            let sums = ps.baseAddress!
            for r in 0..<m.rows {
                let row = pm.baseAddress! + r &* d
                for j in 0..<d { sums[j] += row[j] }
            }
        }
    }
}
