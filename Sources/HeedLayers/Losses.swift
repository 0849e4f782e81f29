// Training losses. Each returns the scalar loss and ADDS ∂loss/∂input into the gradient
// buffer (pass `.empty` to only evaluate), so a loss is its own forward/backward pair.

/// Binary cross-entropy on logits, mean over the batch:
/// `L = (1/B) Σ wᵢ·(max(zᵢ, 0) − zᵢ·yᵢ + log(1 + e^−|zᵢ|))`, which equals
/// `−(1/B) Σ wᵢ·(yᵢ log σ(zᵢ) + (1 − yᵢ) log(1 − σ(zᵢ)))` without overflow for any logit.
///
/// - Parameters:
///   - dLogits: (B) or (B × 1), `+= wᵢ·(σ(zᵢ) − yᵢ)/B`; pass `.empty` to skip.
///   - logits: (B) or (B × 1), the pre-sigmoid scores z.
///   - labels: same count, targets y in [0, 1].
///   - weights: (B) per-sample weights, or `.empty` for all ones. The divisor stays B, so
///     weights rescale samples rather than renormalise the batch.
/// - Returns: the mean loss.
@inlinable
@discardableResult
public func binaryCrossEntropyWithLogits<T: Real>(_ dLogits: inout Tensor<T>, _ logits: Tensor<T>, _ labels: Tensor<T>,
                                                  weights: Tensor<T> = .empty) -> T {
    let b = logits.count
    precondition(labels.count == b, "bce: \(labels.count) labels for \(b) logits")
    precondition(weights.count == 0 || weights.count == b, "bce: \(weights.count) weights for \(b) logits")
    precondition(dLogits.count == 0 || dLogits.count == b, "bce: dLogits \(dLogits.shape) does not fit logits \(logits.shape)")
    guard b > 0 else { return 0 }
    let invB = 1 / T(b), weighted = weights.count > 0, wantGrad = dLogits.count > 0
    var total = 0.0
    logits.data.withUnsafeBufferPointer { pz in
        labels.data.withUnsafeBufferPointer { py in
            weights.data.withUnsafeBufferPointer { pw in
                dLogits.data.withUnsafeMutableBufferPointer { pg in
                    // Safe: all buffers hold b elements (checked above) or are unused.
                    for i in 0..<b {
                        let z = pz[i], y = py[i], w: T = weighted ? pw[i] : 1
                        let l = max(z, 0) - z * y + T.log1p(T.exp(-abs(z)))
                        total += Double(w * l)
                        if wantGrad { pg[i] += w * (sigmoid(z) - y) * invB }
                    }
                }
            }
        }
    }
    return T(total / Double(b))
}

/// Softmax cross-entropy over each row's candidates (full or sampled softmax), mean over rows:
/// `L = (1/B) Σ wᵢ·(log Σ_c e^{z_ic} − z_i,tᵢ)`, computed with the row maximum subtracted.
///
/// For sampled softmax put the positive in column 0 and the sampled negatives after it (the
/// default `targets`); apply any log-Q correction to the logits before calling.
///
/// - Parameters:
///   - dLogits: (B × C), `+= wᵢ·(softmax(zᵢ) − onehot(tᵢ))/B`; pass `.empty` to skip.
///   - logits: (B × C).
///   - targets: (B) the correct column per row, or `nil` for column 0 in every row.
///   - weights: (B) per-sample weights, or `.empty` for all ones (divisor stays B).
///   - candidateMask: (B × C) of 0/1 where 0 excludes a candidate (e.g. a padded negative)
///     from the softmax and gives it zero gradient; `.empty` for all candidates. A row's
///     target must be a real candidate.
/// - Returns: the mean loss.
@inlinable
@discardableResult
public func softmaxCrossEntropy<T: Real>(_ dLogits: inout Tensor<T>, _ logits: Tensor<T>, targets: [Int]? = nil,
                                         weights: Tensor<T> = .empty, candidateMask: Tensor<T> = .empty) -> T {
    let c = logits.lastDim, b = logits.rows
    precondition(targets == nil || targets!.count == b, "softmax CE: \(targets!.count) targets for \(b) rows")
    precondition(weights.count == 0 || weights.count == b, "softmax CE: \(weights.count) weights for \(b) rows")
    precondition(candidateMask.count == 0 || candidateMask.count == b * c, "softmax CE: mask \(candidateMask.shape) does not fit logits \(logits.shape)")
    precondition(dLogits.count == 0 || dLogits.count == b * c, "softmax CE: dLogits \(dLogits.shape) does not fit logits \(logits.shape)")
    guard b > 0 && c > 0 else { return 0 }
    let invB = 1 / T(b), weighted = weights.count > 0, masked = candidateMask.count > 0, wantGrad = dLogits.count > 0
    var total = 0.0
    logits.data.withUnsafeBufferPointer { pz in
        candidateMask.data.withUnsafeBufferPointer { pm in
            weights.data.withUnsafeBufferPointer { pw in
                dLogits.data.withUnsafeMutableBufferPointer { pg in
                    // Safe: logits, mask and dLogits hold b·c elements, weights b (checked above).
                    for r in 0..<b {
                        let base = r * c
                        let t = targets?[r] ?? 0
                        precondition(t >= 0 && t < c && (!masked || pm[base + t] != 0), "softmax CE: target \(t) of row \(r) is not a real candidate")
                        var zmax = -T.infinity
                        for j in 0..<c where !masked || pm[base + j] != 0 { zmax = max(zmax, pz[base + j]) }
                        var sum: T = 0
                        for j in 0..<c where !masked || pm[base + j] != 0 { sum += T.exp(pz[base + j] - zmax) }
                        let logSum = T.log(sum)
                        let w: T = weighted ? pw[r] : 1
                        total += Double(w * (logSum + zmax - pz[base + t]))
                        guard wantGrad else { continue }
                        let scale = w * invB
                        for j in 0..<c where !masked || pm[base + j] != 0 {
                            pg[base + j] += scale * T.exp(pz[base + j] - zmax - logSum)
                        }
                        pg[base + t] -= scale
                    }
                }
            }
        }
    }
    return T(total / Double(b))
}

/// Mean squared error over all elements: `L = (1/N) Σ (pᵢ − yᵢ)²`.
///
/// - Parameters:
///   - dPredictions: same shape as `predictions`, `+= 2(pᵢ − yᵢ)/N`; pass `.empty` to skip.
///   - predictions: any shape, N elements.
///   - targets: N elements.
/// - Returns: the mean loss.
@inlinable
@discardableResult
public func meanSquaredError<T: Real>(_ dPredictions: inout Tensor<T>, _ predictions: Tensor<T>, _ targets: Tensor<T>) -> T {
    let n = predictions.count
    precondition(targets.count == n, "mse: \(targets.count) targets for \(n) predictions")
    precondition(dPredictions.count == 0 || dPredictions.count == n, "mse: dPredictions \(dPredictions.shape) does not fit \(predictions.shape)")
    guard n > 0 else { return 0 }
    let scale = 2 / T(n), wantGrad = dPredictions.count > 0
    var total = 0.0
    predictions.data.withUnsafeBufferPointer { pp in
        targets.data.withUnsafeBufferPointer { py in
            dPredictions.data.withUnsafeMutableBufferPointer { pg in
                // Safe: all buffers hold n elements (checked above) or are unused.
                for i in 0..<n {
                    let e = pp[i] - py[i]
                    total += Double(e * e)
                    if wantGrad { pg[i] += scale * e }
                }
            }
        }
    }
    return T(total / Double(n))
}
