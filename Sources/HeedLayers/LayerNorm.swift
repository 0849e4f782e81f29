// Layer normalisation (Ba et al. 2016) over the last dimension:
//   x̂ = (x − mean_row) / sqrt(var_row + ε),   out = x̂ ⊙ gain + bias.
// A constant row (e.g. an all-zero padded position) has var 0 and gives x̂ = 0, out = bias.

/// Layer normalisation forward.
///
/// - Parameters:
///   - out: (N × D), overwritten.
///   - normalized: (N × D), overwritten with x̂ for the backward pass.
///   - invStd: (N), overwritten with `1 / sqrt(var_row + ε)` for the backward pass.
///   - x: (N × D).
///   - gain: (D).
///   - bias: (D).
///   - epsilon: ε added to each row's (biased) variance.
@inlinable
public func layerNormForward<T: Real>(_ out: inout Tensor<T>, _ normalized: inout Tensor<T>, _ invStd: inout Tensor<T>,
                                      _ x: Tensor<T>, _ gain: Tensor<T>, _ bias: Tensor<T>, epsilon: T = 1e-5) {
    let d = x.lastDim, rows = x.rows
    precondition(gain.count == d && bias.count == d, "layerNorm: gain \(gain.shape) / bias \(bias.shape) do not fit input \(x.shape)")
    prepareOutput(&out, like: x.shape)
    prepareOutput(&normalized, like: x.shape)
    prepareOutput(&invStd, like: [rows])
    let invD = 1 / T(d)
    x.data.withUnsafeBufferPointer { px in
        gain.data.withUnsafeBufferPointer { pg in
            bias.data.withUnsafeBufferPointer { pb in
                normalized.data.withUnsafeMutableBufferPointer { pn in
                    invStd.data.withUnsafeMutableBufferPointer { pr in
                        out.data.withUnsafeMutableBufferPointer { po in
                            // Safe: (N × D) buffers hold rows·d, gain/bias d, invStd rows.
                            for r in 0..<rows {
                                let base = r * d
                                var mean: T = 0
                                for j in 0..<d { mean += px[base + j] }
                                mean *= invD
                                var variance: T = 0
                                for j in 0..<d { let c = px[base + j] - mean; variance += c * c }
                                let rstd = 1 / T.sqrt(variance * invD + epsilon)
                                pr[r] = rstd
                                for j in 0..<d {
                                    let n = (px[base + j] - mean) * rstd
                                    pn[base + j] = n
                                    po[base + j] = n * pg[j] + pb[j]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Backward of `layerNormForward`.
///
/// With g = dout ⊙ gain: `dx = rstd · (g − mean_row(g) − x̂ · mean_row(g ⊙ x̂))`.
///
/// - Parameters:
///   - dx: (N × D), accumulated; pass `.empty` to skip.
///   - dGain: (D), `+= Σ_rows dout ⊙ x̂`.
///   - dBias: (D), `+= Σ_rows dout`.
///   - dout: (N × D).
///   - normalized: (N × D) x̂ from the forward pass.
///   - invStd: (N) from the forward pass.
///   - gain: (D).
@inlinable
public func layerNormBackward<T: Real>(_ dx: inout Tensor<T>, _ dGain: inout Tensor<T>, _ dBias: inout Tensor<T>,
                                       _ dout: Tensor<T>, _ normalized: Tensor<T>, _ invStd: Tensor<T>, _ gain: Tensor<T>) {
    let d = normalized.lastDim, rows = normalized.rows, n = normalized.count
    precondition(dout.count == n && invStd.count == rows && gain.count == d,
                 "layerNorm: dout \(dout.shape) / invStd \(invStd.shape) / gain \(gain.shape) do not fit \(normalized.shape)")
    precondition(dx.count == 0 || dx.count == n, "layerNorm: dx \(dx.shape) does not fit \(normalized.shape)")
    precondition(dGain.count == d && dBias.count == d, "layerNorm: dGain \(dGain.shape) / dBias \(dBias.shape) do not fit \(gain.shape)")
    let invD = 1 / T(d)
    dout.data.withUnsafeBufferPointer { pd in
        normalized.data.withUnsafeBufferPointer { pn in
            dGain.data.withUnsafeMutableBufferPointer { pdg in
                dBias.data.withUnsafeMutableBufferPointer { pdb in
                    // Safe: counts checked above.
                    for r in 0..<rows {
                        let base = r * d
                        for j in 0..<d {
                            pdg[j] += pd[base + j] * pn[base + j]
                            pdb[j] += pd[base + j]
                        }
                    }
                }
            }
            guard dx.count > 0 else { return }
            gain.data.withUnsafeBufferPointer { pg in
                invStd.data.withUnsafeBufferPointer { pr in
                    dx.data.withUnsafeMutableBufferPointer { pdx in
                        // Safe: counts checked above.
                        for r in 0..<rows {
                            let base = r * d
                            var meanG: T = 0, meanGN: T = 0
                            for j in 0..<d {
                                let g = pd[base + j] * pg[j]
                                meanG += g
                                meanGN += g * pn[base + j]
                            }
                            meanG *= invD
                            meanGN *= invD
                            let rstd = pr[r]
                            for j in 0..<d {
                                pdx[base + j] += rstd * (pd[base + j] * pg[j] - meanG - pn[base + j] * meanGN)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Layer normalisation over the last dimension with learnable gain (init 1) and bias (init 0).
public struct LayerNormLayer<T: Real>: Sendable {
    /// Feature count D.
    public let features: Int
    /// ε added to each row's variance.
    public let epsilon: T
    /// (D) learnable gain, initialised to 1.
    public var gain: Tensor<T>
    /// (D) learnable bias, initialised to 0.
    public var bias: Tensor<T>
    /// (D) gradient of `gain`.
    public var dGain: Tensor<T>
    /// (D) gradient of `bias`.
    public var dBias: Tensor<T>
    @usableFromInline var normalized: Tensor<T> = .empty
    @usableFromInline var invStd: Tensor<T> = .empty

    /// Layer normalisation over `features` features.
    public init(features: Int, epsilon: T = 1e-5) {
        self.features = features
        self.epsilon = epsilon
        gain = Tensor(shape: [features], data: [T](repeating: 1, count: features))
        bias = Tensor(zeros: [features])
        dGain = Tensor(zeros: [features])
        dBias = Tensor(zeros: [features])
    }

    /// Normalises each row of `x`.
    ///
    /// - Parameters:
    ///   - out: (N × D), overwritten.
    ///   - x: (N × D).
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>) {
        layerNormForward(&out, &normalized, &invStd, x, gain, bias, epsilon: epsilon)
    }

    /// Backward of the last `forward`; accumulates into `dx`, `dGain`, `dBias`.
    ///
    /// - Parameters:
    ///   - dx: (N × D), accumulated; pass `.empty` to skip.
    ///   - dout: (N × D).
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        layerNormBackward(&dx, &dGain, &dBias, dout, normalized, invStd, gain)
    }

    /// Visits ("gain", gain, dGain) then ("bias", bias, dBias).
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("gain", &gain, &dGain)
        body("bias", &bias, &dBias)
    }

    /// Sets the parameter gradients to zero.
    public mutating func zeroGradients() { dGain.zero(); dBias.zero() }
}
