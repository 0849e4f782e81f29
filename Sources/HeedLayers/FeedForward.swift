/// Point-wise feed-forward network (Vaswani et al. 2017, §3.3), applied to every position
/// independently: `out = ReLU(x · W1 + b1) · W2 + b2`.
///
/// - Parameters:
///   - out: (N × D), overwritten; N is any flattening of the positions, e.g. B·L.
///   - preActivation: (N × F), overwritten with `x · W1 + b1` for the backward pass.
///   - hidden: (N × F), overwritten with `ReLU(preActivation)` for the backward pass.
///   - x: (N × D), or (B × L × D) viewed as (B·L × D); `out` takes `x`'s shape.
///   - w1: (D × F).
///   - b1: (F).
///   - w2: (F × D).
///   - b2: (D).
@inlinable
public func feedForwardForward<T: Real>(_ out: inout Tensor<T>, _ preActivation: inout Tensor<T>, _ hidden: inout Tensor<T>,
                                        _ x: Tensor<T>, _ w1: Tensor<T>, _ b1: Tensor<T>, _ w2: Tensor<T>, _ b2: Tensor<T>) {
    precondition(w2.lastDim == x.lastDim, "feed-forward: w2 \(w2.shape) does not map back to width \(x.lastDim)")
    denseForward(&preActivation, x, w1, b1)
    reluForward(&hidden, preActivation)
    denseForward(&out, hidden, w2, b2)
    out.shape = x.shape
}

/// Backward of `feedForwardForward`; accumulates into every gradient buffer.
///
/// - Parameters:
///   - dx: (N × D), `+=`; `.empty` to skip.
///   - dW1: (D × F), `+=`.
///   - dB1: (F), `+=`.
///   - dW2: (F × D), `+=`.
///   - dB2: (D), `+=`.
///   - dout: (N × D).
///   - x: (N × D), the forward input.
///   - preActivation: (N × F) from the forward.
///   - hidden: (N × F) from the forward.
///   - w1: (D × F).
///   - w2: (F × D).
@inlinable
public func feedForwardBackward<T: Real>(_ dx: inout Tensor<T>, _ dW1: inout Tensor<T>, _ dB1: inout Tensor<T>,
                                         _ dW2: inout Tensor<T>, _ dB2: inout Tensor<T>,
                                         _ dout: Tensor<T>, _ x: Tensor<T>, _ preActivation: Tensor<T>, _ hidden: Tensor<T>,
                                         _ w1: Tensor<T>, _ w2: Tensor<T>) {
    var dHidden = Tensor<T>(zeros: hidden.shape)
    denseBackward(&dHidden, &dW2, &dB2, dout, hidden, w2)
    var dPre = Tensor<T>(zeros: preActivation.shape)
    reluBackward(&dPre, dHidden, preActivation)
    denseBackward(&dx, &dW1, &dB1, dPre, x, w1)
}
