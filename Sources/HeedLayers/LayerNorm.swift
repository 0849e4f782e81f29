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
    guard rows > 0 && d > 0 else { return }
    let invD = 1 / T(d)
    x.data.withUnsafeBufferPointer { px in
        gain.data.withUnsafeBufferPointer { pg in
            bias.data.withUnsafeBufferPointer { pb in
                normalized.data.withUnsafeMutableBufferPointer { pn in
                    invStd.data.withUnsafeMutableBufferPointer { pr in
                        out.data.withUnsafeMutableBufferPointer { po in
                            // Safe: (N × D) buffers hold rows·d, gain/bias d, invStd rows.
                            let g = pg.baseAddress!, b = pb.baseAddress!
                            for r in 0..<rows {
                                let xr = px.baseAddress! + r * d
                                let nr = pn.baseAddress! + r * d, or = po.baseAddress! + r * d
                                // Two passes over a row that sits in L1 (mean, then centred variance)
                                // keep the numerics of the textbook form; the split accumulators make
                                // each reduction vectorise instead of waiting on one add chain.
                                let mean = rowSum(d) { xr[$0] } * invD
                                let variance = rowSum(d) { let c = xr[$0] - mean; return c * c } * invD
                                let rstd = 1 / T.sqrt(variance + epsilon)
                                pr[r] = rstd
                                for j in 0..<d {
                                    let n = (xr[j] - mean) * rstd
                                    nr[j] = n
                                    or[j] = n * g[j] + b[j]
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
    guard rows > 0 && d > 0 else { return }
    let invD = 1 / T(d)
    let wantsDx = dx.count > 0
    // One sweep over the rows: each row of dout and x̂ is read from memory once and serves the
    // parameter gradients, the two row means and dx while it is in L1.
    dout.data.withUnsafeBufferPointer { pd in
        normalized.data.withUnsafeBufferPointer { pn in
            gain.data.withUnsafeBufferPointer { pg in
                invStd.data.withUnsafeBufferPointer { pr in
                    dGain.data.withUnsafeMutableBufferPointer { pdg in
                        dBias.data.withUnsafeMutableBufferPointer { pdb in
                            dx.data.withUnsafeMutableBufferPointer { pdx in
                                // Safe: counts checked above; dx is only touched when it holds n.
                                let g = pg.baseAddress!, dg = pdg.baseAddress!, db = pdb.baseAddress!
                                for r in 0..<rows {
                                    let dr = pd.baseAddress! + r * d, nr = pn.baseAddress! + r * d
                                    for j in 0..<d {
                                        dg[j] += dr[j] * nr[j]
                                        db[j] += dr[j]
                                    }
                                    guard wantsDx else { continue }
                                    let meanG = rowSum(d) { dr[$0] * g[$0] } * invD
                                    let meanGN = rowSum(d) { dr[$0] * g[$0] * nr[$0] } * invD
                                    let rstd = pr[r]
                                    let xr = pdx.baseAddress! + r * d
                                    for j in 0..<d {
                                        xr[j] += rstd * (dr[j] * g[j] - meanG - nr[j] * meanGN)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `Σ_{j < n} term(j)` with eight interleaved partial sums.
///
/// A single running sum is one chain of dependent adds (a strict order the compiler may not
/// reorder for floats); eight independent partials let it use vector adds. The result differs
/// from the sequential sum only by rounding.
@inlinable @inline(__always)
public func rowSum<T: Real>(_ n: Int, _ term: (Int) -> T) -> T {
    var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0, s4: T = 0, s5: T = 0, s6: T = 0, s7: T = 0
    var j = 0
    while j + 8 <= n {
        s0 += term(j); s1 += term(j + 1); s2 += term(j + 2); s3 += term(j + 3)
        s4 += term(j + 4); s5 += term(j + 5); s6 += term(j + 6); s7 += term(j + 7)
        j += 8
    }
    var s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while j < n { s += term(j); j += 1 }
    return s
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
