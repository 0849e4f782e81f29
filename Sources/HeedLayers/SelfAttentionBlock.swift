import HeedCore

/// One SASRec self-attention block (Kang & McAuley 2018, §III-B/C) in pre-norm form:
///
///     x1  = x  + Dropout(MHSA(LayerNorm(x)))
///     out = (x1 + Dropout(FFN(LayerNorm(x1)))) ⊙ mask
///
/// MHSA uses the padding mask (and, for next-item prediction, the causal mask); FFN is the
/// point-wise ReLU network. Padded positions are zeroed at the output, as SASRec multiplies
/// by its timeline mask, so they neither influence real positions nor receive gradient.
/// (The reference SASRec code normalises only the queries and adds the residual to the
/// normalised input; this block uses the standard pre-norm residual, which normalises keys
/// and values too and keeps an un-normalised skip path.)
public struct SelfAttentionBlock<T: Real>: Sendable {
    /// Normalises the attention sub-layer's input.
    public var attentionNorm: LayerNormLayer<T>
    /// Multi-head self-attention.
    public var attention: SelfAttentionLayer<T>
    /// Dropout on the attention output.
    public var attentionDropout: DropoutLayer<T>
    /// Normalises the feed-forward sub-layer's input.
    public var feedForwardNorm: LayerNormLayer<T>
    /// Point-wise feed-forward network.
    public var feedForward: FeedForwardLayer<T>
    /// Dropout on the feed-forward output.
    public var feedForwardDropout: DropoutLayer<T>

    /// (B × L) the last forward mask (or empty).
    @usableFromInline var mask = Tensor<T>.empty
    /// (B × L × D) forward intermediates, reused as output buffers across steps (the sub-layers
    /// release their references in backward, so the next forward writes them in place). Each
    /// dropout is fused with the residual add after it, so there is no separate dropped tensor.
    @usableFromInline var normed1 = Tensor<T>.empty, attended = Tensor<T>.empty
    @usableFromInline var mid = Tensor<T>.empty, normed2 = Tensor<T>.empty, fed = Tensor<T>.empty
    /// (B × L × D) backward scratch, reused across steps: gradients of `mid`, `fed`, `normed2`,
    /// `attended` and `normed1`.
    @usableFromInline var dMid = Tensor<T>.empty, dFed = Tensor<T>.empty, dNormed2 = Tensor<T>.empty
    @usableFromInline var dAttended = Tensor<T>.empty, dNormed1 = Tensor<T>.empty

    /// A block of width `dim` with `heads` heads and `hidden` feed-forward units (SASRec: `dim`).
    /// Weights and dropout seeds are drawn from `generator` in the order attention, FFN, dropouts.
    public init(dim: Int, heads: Int, hidden: Int, causal: Bool, dropout: Double, generator: inout SeededGenerator) {
        attentionNorm = LayerNormLayer(features: dim)
        attention = SelfAttentionLayer(dim: dim, heads: heads, causal: causal, generator: &generator)
        feedForwardNorm = LayerNormLayer(features: dim)
        feedForward = FeedForwardLayer(dim: dim, hidden: hidden, generator: &generator)
        attentionDropout = DropoutLayer(rate: dropout, seed: generator.next())
        feedForwardDropout = DropoutLayer(rate: dropout, seed: generator.next())
    }

    /// Runs the block.
    /// - Parameters:
    ///   - out: (B × L × D), overwritten; padded rows are zero.
    ///   - x: (B × L × D).
    ///   - mask: (B × L) of 0/1, or `.empty` for no padding.
    ///   - training: whether dropout is active.
    @inlinable
    public mutating func forward(_ out: inout Tensor<T>, _ x: Tensor<T>, mask: Tensor<T>, training: Bool) {
        self.mask = mask
        attentionNorm.forward(&normed1, x)
        attention.forward(&attended, normed1, mask: mask)
        attentionDropout.forward(&mid, attended, addingTo: x, training: training)
        feedForwardNorm.forward(&normed2, mid)
        feedForward.forward(&fed, normed2)
        feedForwardDropout.forward(&out, fed, addingTo: mid, training: training)
        if mask.count > 0 { zeroPaddedRows(&out, mask, width: x.lastDim) }
    }

    /// Back-propagates `dout` (B × L × D) from the last forward; `dx += …` (`.empty` to skip),
    /// parameter gradients `+= …`. Each forward serves one backward.
    @inlinable
    public mutating func backward(_ dx: inout Tensor<T>, _ dout: Tensor<T>) {
        precondition(dout.count == mid.count, "attention block: dout \(dout.shape) does not fit \(mid.shape)")
        let d = mid.lastDim
        prepareOutput(&dMid, like: mid.shape)
        dMid.data.withUnsafeMutableBufferPointer { pm in
            // Safe: equal counts (checked above).
            dout.data.withUnsafeBufferPointer { pd in pm.baseAddress!.update(from: pd.baseAddress!, count: pd.count) }
        }
        if mask.count > 0 { zeroPaddedRows(&dMid, mask, width: d) }
        // Second sub-layer: the skip path already holds dMid; add the FFN branch's gradient.
        // The dropout backwards overwrite their scratch, so only the buffers the sub-layers
        // accumulate into need zeroing.
        feedForwardDropout.backward(overwriting: &dFed, dMid)
        zeroScratch(&dNormed2, like: normed2)
        feedForward.backward(&dNormed2, dFed)
        feedForwardNorm.backward(&dMid, dNormed2)
        // First sub-layer.
        addInPlace(&dx, dMid)
        attentionDropout.backward(overwriting: &dAttended, dMid)
        zeroScratch(&dNormed1, like: normed1)
        attention.backward(&dNormed1, dAttended)
        attentionNorm.backward(&dx, dNormed1)
    }

    /// Visits every parameter in a fixed order: `attentionNorm.*`, `attention.*`,
    /// `feedForwardNorm.*`, `feedForward.*`.
    public mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        attentionNorm.visitParameters { n, v, g in body("attentionNorm." + n, &v, &g) }
        attention.visitParameters { n, v, g in body("attention." + n, &v, &g) }
        feedForwardNorm.visitParameters { n, v, g in body("feedForwardNorm." + n, &v, &g) }
        feedForward.visitParameters { n, v, g in body("feedForward." + n, &v, &g) }
    }

    /// Zeroes every accumulated gradient.
    public mutating func zeroGradients() {
        attentionNorm.zeroGradients(); attention.zeroGradients()
        feedForwardNorm.zeroGradients(); feedForward.zeroGradients()
    }
}

/// Gives `t` the shape of `like` and zeroes it, reusing its storage when the count matches.
@inlinable
func zeroScratch<T: Real>(_ t: inout Tensor<T>, like: Tensor<T>) {
    prepareOutput(&t, like: like.shape)
    t.zero()
}
