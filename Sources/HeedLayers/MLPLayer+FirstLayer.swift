// An MLP whose first dense layer the caller computes itself. DIN's attention unit uses this:
// its first layer reads `[e, v, e − v, e ⊙ v]`, whose product with the weight blocks
// `[W1; W2; W3; W4]` equals `e·(W1 + W3) + v·(W2 − W3) + (e ⊙ v)·W4`, so the `v` term is
// computed once per sample instead of once per behaviour (TargetAttentionLayer). The layer's
// weights, biases and gradients stay in the MLP, in the usual flat order.

extension MLPLayer {
    /// Runs the MLP from the first layer's dense output, which the caller computed (bias
    /// included): the first activation, then every later layer as `forward` does.
    ///
    /// - Parameters:
    ///   - out: (N × sizes.last), overwritten.
    ///   - firstDense: (N × sizes[1]); swapped with the layer's own buffer (no copy), so on
    ///     return it holds storage the caller may reuse for the next step.
    ///   - training: Dice uses batch statistics; required before `backwardToFirstDense`.
    ///   - rowMask: (N) of 0/1 rows entering Dice statistics, or `.empty` for all.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, firstDense: inout Tensor<T>, training: Bool, rowMask: Tensor<T> = .empty) {
        precondition(layerCount >= 2, "mlp: a caller-computed first layer needs at least two dense layers")
        precondition(firstDense.lastDim == sizes[1], "mlp: first dense output \(firstDense.shape) does not have \(sizes[1]) features")
        swap(&pre[0], &firstDense)
        let last = layerCount - 1
        for l in 0..<layerCount {
            if l > 0 {
                let x = hiddenOutput(l - 1, .empty)
                if l == last {
                    denseForward(&out, x, weights[l], biases[l])
                } else {
                    denseForward(&pre[l], x, weights[l], biases[l])
                }
            }
            if l < last && activation != .identity {
                activations[l].apply(&post[l], pre[l], training: training, rowMask: rowMask)
            }
        }
        input = .empty
        firstDenseRows = pre[0].rows
        trainedForward = training
    }

    /// Backward of `forward(_:firstDense:training:rowMask:)` down to the first layer's dense
    /// output: accumulates every later layer's gradients and the first layer's bias gradient
    /// (the caller adds the first layer's weight gradient and its input gradient).
    ///
    /// - Parameters:
    ///   - dFirstDense: (N × sizes[1]), overwritten with ∂L/∂(first dense output); its old
    ///     storage is swapped in for reuse.
    ///   - dout: (N × sizes.last).
    @inlinable
    public mutating func backwardToFirstDense(_ dFirstDense: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(trainedForward && firstDenseRows >= 0, "mlp: backwardToFirstDense needs a training forward from a first dense output")
        let b = firstDenseRows, last = layerCount - 1
        precondition(dout.count == b * sizes[layerCount], "mlp: dout \(dout.shape) does not fit output (\(b) × \(sizes[layerCount]))")
        for l in stride(from: last, through: 1, by: -1) {
            let inDim = sizes[l], outDim = sizes[l + 1]
            let g = l == last ? dout : grad[l]
            let x = hiddenOutput(l - 1, .empty)
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
            if l == last { addColumnSums(&dBiases[l], g) }
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
        }
        swap(&grad[0], &dFirstDense)
        firstDenseRows = -1
        trainedForward = false
    }
}
