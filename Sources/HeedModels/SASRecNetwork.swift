import HeedCore
import HeedLayers

/// SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018), generic
/// over the scalar type so the Float model that trains is the network gradient-checked in
/// Double.
///
/// Per sequence b with n_b ≤ W items `s_0 … s_{n−1}` (oldest first; W = `window`):
/// - input `x_t = √D · E[s_t] + P[W − n_b + t]` (the paper's scaled item embedding plus a
///   learned position; positions count as in the paper's left-padded input, so the most
///   recent item always sits at row W − 1 of `P`), dropout, zero at padded positions;
/// - `blocks` pre-norm self-attention blocks (`SelfAttentionBlock`: causal multi-head
///   attention and the point-wise ReLU feed-forward network, each with dropout and a
///   residual), then a final layer norm: `h_t` (D) predicts item t + 1;
/// - the score of item i after position t is `h_t · E[i]`: the item embeddings are shared
///   between input and output, as in the paper.
///
/// Batches (`SASRecBatcher` builds them) hold three item fields: `seq` (B × W) the input
/// items, right-padded; `pos` (B × W) the item that follows each input position; `neg`
/// either (B × W) one negative per position (`bce`) or a shared list of candidates for every
/// position (`sampled-softmax`, `softmax`). The losses are means over real positions.
///
/// Computation runs over W' = the longest sequence of the batch (≤ W), not W.
struct SASRecNetwork<T: Real>: Sendable {
    /// Embedding width D.
    let dim: Int
    /// W: the most recent items read; also the rows of `positions`.
    let window: Int
    /// Attention heads per block.
    let heads: Int
    /// The loss `backward` differentiates.
    let loss: NextItemLoss
    /// (W × D) learned position embeddings.
    var positions: Tensor<T>
    /// (W × D) gradient of `positions`.
    var dPositions: Tensor<T>
    /// Dropout on the input embeddings.
    var inputDropout: DropoutLayer<T>
    /// The self-attention blocks, causal.
    var blocks: [SelfAttentionBlock<T>]
    /// Layer norm after the last block (the paper's pre-norm code normalises its output).
    var finalNorm: LayerNormLayer<T>
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0
    /// Sequences per length bucket: a batch is run as groups of this many sequences of similar
    /// length, each over its own longest sequence (most users are short, so one long user no
    /// longer makes every row of the batch W wide); 0 = the whole batch at once. The loss and
    /// gradients are those of the whole batch (they are sums over positions).
    var bucketSize = 32

    // Per-step state, reused across steps.
    /// (B) real items per sequence.
    var lengths: [Int] = []
    /// W': positions computed this step (the batch's longest sequence, at least 1).
    var span = 1
    /// (B × W') row index of each input item into the item rows, −1 at padding.
    var seqIndex: [Int] = []
    /// (B × W') 1 at real positions, 0 at padding.
    var mask = Tensor<T>.empty
    /// (B × W' × D) input embeddings before dropout.
    var embedded = Tensor<T>.empty
    /// states[0] = dropped-out input, states[k + 1] = block k's output; (B × W' × D) each.
    var states: [Tensor<T>] = []
    /// (B × W' × D) final-norm output: `h`.
    var hidden = Tensor<T>.empty
    /// The shared candidates of a softmax-loss batch, gathered once per step for all its
    /// buckets (nil outside a step, or for `bce`).
    var shared: Candidates<T>?
    /// Gradient buffers with the shapes of `hidden`, `states` and `embedded`.
    var dHidden = Tensor<T>.empty
    var dStates: [Tensor<T>] = []
    var dEmbedded = Tensor<T>.empty

    /// A network with Xavier-normal positions and blocks drawn from `generator` (positions,
    /// then each block, then the input dropout's seed).
    ///
    /// - Parameters:
    ///   - dim: D, the item embedding width (also the model width).
    ///   - window: W, the most recent items read.
    ///   - blocks: self-attention blocks.
    ///   - heads: heads per block (divides D).
    ///   - dropout: rate of every dropout.
    ///   - loss: the training loss.
    init(dim: Int, window: Int, blocks: Int, heads: Int, dropout: Double, loss: NextItemLoss, generator: inout SeededGenerator) {
        precondition(dim > 0 && window > 0 && blocks > 0 && heads > 0 && dim % heads == 0,
                     "sasrec: invalid sizes dim \(dim), window \(window), blocks \(blocks), heads \(heads)")
        self.dim = dim
        self.window = window
        self.heads = heads
        self.loss = loss
        positions = Tensor(gaussian: [window, dim], std: (2.0 / Double(window + dim)).squareRoot(), generator: &generator)
        dPositions = Tensor(zeros: [window, dim])
        self.blocks = (0..<blocks).map { _ in
            SelfAttentionBlock(dim: dim, heads: heads, hidden: dim, causal: true, dropout: dropout, generator: &generator)
        }
        inputDropout = DropoutLayer(rate: dropout, seed: generator.next())
        finalNorm = LayerNormLayer(features: dim)
        var count = 0
        visitParameters { _, value, _ in count += value.count }
        parameterCount = count
    }

    // MARK: - Forward

    /// Runs the sequence encoder on the batch's `seq` field; `hidden` then holds h (B × W' × D).
    ///
    /// - Parameters:
    ///   - batch: holds `seq` (B × W), right-padded.
    ///   - items: the pulled item rows; every real key of `seq` must be there.
    ///   - training: dropout on.
    mutating func forward(_ batch: ModelBatch, items: TableRows<T>?, training: Bool) {
        let seq = Self.field(batch, "seq")
        let b = batch.size, w = seq.length
        precondition(w <= window && seq.keys.count == b * w, "sasrec: field seq holds \(seq.keys.count) keys for \(b) × \(w) (window \(window))")
        lengths = (0..<b).map { r in
            var n = 0
            while n < w && seq.mask[r * w + n] != 0 { n += 1 }
            return n
        }
        span = max(1, lengths.max() ?? 1)
        let l = span, d = dim
        seqIndex = [Int](repeating: -1, count: b * l)
        mask.resizeZeroed([b, l])
        for r in 0..<b {
            for t in 0..<lengths[r] {
                let key = seq.keys[r * w + t]
                guard let i = items?.index(of: key) else {
                    preconditionFailure("sasrec: item \(FeatureKey(rawValue: key)) of seq at (\(r), \(t)) was not pulled")
                }
                seqIndex[r * l + t] = i
                mask.data[r * l + t] = 1
            }
        }
        embedded.resizeZeroed([b, l, d])
        let scale = T.sqrt(T(d))
        let lengths = self.lengths, seqIndex = self.seqIndex, window = self.window, positions = self.positions
        if let items {
            embedded.data.withUnsafeMutableBufferPointer { pe in
                items.values.data.withUnsafeBufferPointer { pi in
                    positions.data.withUnsafeBufferPointer { pp in
                        for r in 0..<b {
                            let n = lengths[r]
                            for t in 0..<n {
                                // Safe: seqIndex < U rows of items (resolved above); W − n + t < W rows of
                                // positions; (r·W' + t) < B·W' rows of embedded.
                                let e = pe.baseAddress! + (r * l + t) * d
                                let src = pi.baseAddress! + seqIndex[r * l + t] * d
                                let p = pp.baseAddress! + (window - n + t) * d
                                for j in 0..<d { e[j] = scale * src[j] + p[j] }
                            }
                        }
                    }
                }
            }
        }
        if states.count != blocks.count + 1 { states = Array(repeating: .empty, count: blocks.count + 1) }
        inputDropout.forward(&states[0], embedded, training: training)
        for k in blocks.indices {
            blocks[k].forward(&states[k + 1], states[k], mask: mask, training: training)
        }
        finalNorm.forward(&hidden, states[blocks.count])
    }

    /// (B × D) row-major: h at each sequence's last real position (zeros for an empty sequence),
    /// from the last forward. This is the user vector every candidate item is scored against.
    func lastHidden() -> [T] {
        let b = lengths.count, l = span, d = dim
        var out = [T](repeating: 0, count: b * d)
        for r in 0..<b where lengths[r] > 0 {
            let src = (r * l + lengths[r] - 1) * d
            for j in 0..<d { out[r * d + j] = hidden.data[src + j] }
        }
        return out
    }

    /// (B × W') attention of each sequence's last real position over its items in the last
    /// block of the last forward, averaged over heads (0 at padding).
    func lastAttention() -> [T] {
        let b = lengths.count, l = span, h = heads
        let probs = blocks[blocks.count - 1].attention.cache.probabilities
        var out = [T](repeating: 0, count: b * l)
        guard probs.count == b * h * l * l else { return out }
        for r in 0..<b where lengths[r] > 0 {
            let q = lengths[r] - 1
            for head in 0..<h {
                let row = ((r * h + head) * l + q) * l
                for t in 0..<lengths[r] { out[r * l + t] += probs.data[row + t] / T(h) }
            }
        }
        return out
    }

    // MARK: - Loss and backward

    /// Mean loss over the real positions of the last forward; with `gradients`, fills
    /// `dHidden` and adds the output side's item-row gradients into `dItems`.
    ///
    /// - Parameters:
    ///   - batch: the batch of the last forward, with `pos` and `neg`.
    ///   - items: the rows given to `forward`.
    ///   - dItems: (U × D) item-row gradient, accumulated (ignored without `gradients`).
    ///   - normalizer: the positions the mean is taken over (those of the whole batch when
    ///     this is one of its buckets); nil = this batch's real positions.
    mutating func outputLoss(_ batch: ModelBatch, items: TableRows<T>?, dItems: inout Tensor<T>, gradients: Bool,
                             normalizer: Int? = nil) -> Double {
        let pos = Self.field(batch, "pos"), neg = Self.field(batch, "neg")
        let b = batch.size, w = pos.length, l = span
        precondition(pos.keys.count == b * w && w >= l, "sasrec: field pos holds \(pos.keys.count) keys for \(b) × \(w)")
        if gradients { dHidden.resizeZeroed(hidden.shape) }
        let realPositions = lengths.reduce(0, +)
        guard realPositions > 0, let items else { return 0 }
        let divisor = normalizer ?? realPositions
        // (P) flat hidden row and positive row of every real position, in batch order.
        var hiddenRow: [Int] = [], positiveRow: [Int] = [], positiveKey: [UInt64] = []
        hiddenRow.reserveCapacity(realPositions); positiveRow.reserveCapacity(realPositions)
        for r in 0..<b {
            for t in 0..<lengths[r] {
                let key = pos.keys[r * w + t]
                guard pos.mask[r * w + t] != 0, let i = items.index(of: key) else {
                    preconditionFailure("sasrec: no pulled positive at (\(r), \(t)) of pos")
                }
                hiddenRow.append(r * l + t); positiveRow.append(i); positiveKey.append(key)
            }
        }
        switch loss {
        case .bce:
            precondition(neg.keys.count == b * neg.length && neg.length == w, "sasrec: bce needs one negative per position (neg is \(neg.keys.count) keys)")
            var negativeRow: [Int] = []
            negativeRow.reserveCapacity(realPositions)
            for r in 0..<b {
                for t in 0..<lengths[r] {
                    let key = neg.keys[r * w + t]
                    guard neg.mask[r * w + t] != 0, let i = items.index(of: key) else {
                        preconditionFailure("sasrec: no pulled negative at (\(r), \(t)) of neg")
                    }
                    negativeRow.append(i)
                }
            }
            return bce(hiddenRow: hiddenRow, positiveRow: positiveRow, negativeRow: negativeRow, items: items,
                       dItems: &dItems, gradients: gradients, divisor: divisor)
        case .sampledSoftmax, .softmax:
            let standalone = shared == nil
            if standalone { shared = Candidates(neg, items: items, dim: dim) }
            let loss = softmax(hiddenRow: hiddenRow, positiveRow: positiveRow, positiveKey: positiveKey, items: items,
                               dItems: &dItems, gradients: gradients, divisor: divisor)
            if standalone {
                if gradients { shared!.scatterGradient(into: &dItems) }
                shared = nil
            }
            return loss
        }
    }

    /// BCE on (positive, negative) per position: `Σ softplus(−h·e⁺) + softplus(h·e⁻)` / divisor.
    private mutating func bce(hiddenRow: [Int], positiveRow: [Int], negativeRow: [Int], items: TableRows<T>,
                              dItems: inout Tensor<T>, gradients: Bool, divisor: Int) -> Double {
        let d = dim, count = hiddenRow.count, invP = 1 / T(divisor)
        var total = 0.0
        for p in 0..<count {
            let h = hiddenRow[p] * d, ep = positiveRow[p] * d, en = negativeRow[p] * d
            var zp: T = 0, zn: T = 0
            for j in 0..<d {
                zp += hidden.data[h + j] * items.values.data[ep + j]
                zn += hidden.data[h + j] * items.values.data[en + j]
            }
            total += Double(softplus(-zp) + softplus(zn))
            guard gradients else { continue }
            let gp = (sigmoid(zp) - 1) * invP, gn = sigmoid(zn) * invP
            for j in 0..<d {
                let hv = hidden.data[h + j]
                dHidden.data[h + j] += gp * items.values.data[ep + j] + gn * items.values.data[en + j]
                dItems.data[ep + j] += gp * hv
                dItems.data[en + j] += gn * hv
            }
        }
        return total / Double(divisor)
    }

    /// Rows of hidden states per softmax chunk: bounds the (rows × (1 + C)) logits buffer
    /// when the candidates are the whole catalogue.
    static var softmaxChunk: Int { 256 }

    /// Softmax cross-entropy of each position over [its positive, the shared candidates]:
    /// logits (m × (1 + C)) with column 0 = h·e⁺ and columns 1… = H·Ecᵀ (one GEMM per chunk);
    /// a candidate equal to the position's positive gets −∞ (left out). Gradients:
    /// dH = g₀·e⁺ + G·Ec, dEc = Gᵀ·H (into `shared.gradient`), de⁺ += g₀·h.
    private mutating func softmax(hiddenRow: [Int], positiveRow: [Int], positiveKey: [UInt64], items: TableRows<T>,
                                  dItems: inout Tensor<T>, gradients: Bool, divisor: Int) -> Double {
        let d = dim, total = hiddenRow.count
        let c = shared!.keys.count, width = c + 1
        var loss = 0.0
        var start = 0
        var h = Tensor<T>.empty, logits = Tensor<T>.empty, dh = Tensor<T>.empty
        while start < total {
            let m = min(Self.softmaxChunk, total - start)
            // (m × D) hidden rows of the chunk.
            h.resize([m, d])
            for r in 0..<m {
                let src = hiddenRow[start + r] * d
                for x in 0..<d { h.data[r * d + x] = hidden.data[src + x] }
            }
            logits.resize([m, width])
            if c > 0 {
                h.data.withUnsafeBufferPointer { ph in
                    shared!.values.data.withUnsafeBufferPointer { pc in
                        logits.data.withUnsafeMutableBufferPointer { pl in
                            // Safe: (m × D)·(C × D)ᵀ into columns 1… of (m × (C + 1)), ldc = C + 1.
                            T.gemm(transA: false, transB: true, m: m, n: c, k: d, alpha: 1,
                                   a: ph.baseAddress!, lda: d, b: pc.baseAddress!, ldb: d,
                                   beta: 0, c: pl.baseAddress! + 1, ldc: width)
                        }
                    }
                }
            }
            for r in 0..<m {
                let e = positiveRow[start + r] * d
                var z: T = 0
                for x in 0..<d { z += h.data[r * d + x] * items.values.data[e + x] }
                logits.data[r * width] = z
                if let j = shared!.slot[positiveKey[start + r]] { logits.data[r * width + 1 + j] = -T.infinity }
            }
            // Each row weighs 1/divisor: the chunk adds its share of the mean over the batch's positions.
            let weight = 1 / T(divisor)
            loss += logits.data.withUnsafeMutableBufferPointer { pl in
                // Safe: (m × (C + 1)) rows.
                Self.crossEntropyRows(pl.baseAddress!, rows: m, width: width, weight: weight)
            }
            if gradients {
                // `logits` now holds dLogits.
                dh.resizeZeroed([m, d])
                if c > 0 {
                    logits.data.withUnsafeBufferPointer { pg in
                        shared!.values.data.withUnsafeBufferPointer { pc in
                            dh.data.withUnsafeMutableBufferPointer { pd in
                                // Safe: columns 1… of (m × (C + 1)) times (C × D) into (m × D).
                                T.gemm(transA: false, transB: false, m: m, n: d, k: c, alpha: 1,
                                       a: pg.baseAddress! + 1, lda: width, b: pc.baseAddress!, ldb: d,
                                       beta: 0, c: pd.baseAddress!, ldc: d)
                            }
                        }
                        h.data.withUnsafeBufferPointer { ph in
                            shared!.gradient.data.withUnsafeMutableBufferPointer { pdc in
                                // Safe: (m × C)ᵀ·(m × D) accumulated into (C × D).
                                T.gemm(transA: true, transB: false, m: c, n: d, k: m, alpha: 1,
                                       a: pg.baseAddress! + 1, lda: width, b: ph.baseAddress!, ldb: d,
                                       beta: 1, c: pdc.baseAddress!, ldc: d)
                            }
                        }
                    }
                }
                for r in 0..<m {
                    let g0 = logits.data[r * width], e = positiveRow[start + r] * d, dst = hiddenRow[start + r] * d
                    for x in 0..<d {
                        dHidden.data[dst + x] += dh.data[r * d + x] + g0 * items.values.data[e + x]
                        dItems.data[e + x] += g0 * h.data[r * d + x]
                    }
                }
            }
            start += m
        }
        return loss
    }

    /// Softmax cross-entropy of `rows` rows of `width` logits with the target in column 0,
    /// each weighted by `weight`; overwrites the logits with their gradient
    /// `weight · (softmax(z) − onehot(0))` and returns `Σ weight · (log Σ e^z − z₀)`.
    /// −∞ logits (left-out candidates) get probability and gradient 0. One exponential per
    /// logit, in a form that vectorises for Float.
    @inlinable
    static func crossEntropyRows(_ logits: UnsafeMutablePointer<T>, rows: Int, width: Int, weight: T) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let row = logits + r * width
            let z0 = row[0]
            let zmax = rowMax(width) { row[$0] }
            if T.self == Float.self {
                // Safe: T is Float here, so the bit casts are identities.
                let rowF = UnsafeMutableRawPointer(row).assumingMemoryBound(to: Float.self)
                let maxF = unsafeBitCast(zmax, to: Float.self)
                for j in 0..<width { rowF[j] = softmaxExp(rowF[j] - maxF) }
            } else {
                for j in 0..<width { row[j] = T.exp(row[j] - zmax) }
            }
            let sum = rowSum(width) { row[$0] }
            total += Double(weight * (T.log(sum) + zmax - z0))
            let scale = weight / sum
            for j in 0..<width { row[j] *= scale }
            row[0] -= weight
        }
        return total
    }

    /// Back-propagates `dHidden` through the final norm, the blocks and the input embeddings;
    /// adds the input side's item-row gradients into `dItems` and fills the dense gradients.
    mutating func backward(dItems: inout Tensor<T>) {
        let b = lengths.count, l = span, d = dim
        if dStates.count != states.count { dStates = Array(repeating: .empty, count: states.count) }
        for k in dStates.indices { dStates[k].resizeZeroed(states[k].shape) }
        finalNorm.backward(&dStates[blocks.count], dHidden)
        for k in blocks.indices.reversed() {
            blocks[k].backward(&dStates[k], dStates[k + 1])
        }
        inputDropout.backward(overwriting: &dEmbedded, dStates[0])
        let scale = T.sqrt(T(d))
        for r in 0..<b {
            let n = lengths[r]
            for t in 0..<n {
                let g = (r * l + t) * d, row = seqIndex[r * l + t] * d, p = (window - n + t) * d
                for j in 0..<d {
                    let v = dEmbedded.data[g + j]
                    dItems.data[row + j] += scale * v
                    dPositions.data[p + j] += v
                }
            }
        }
    }

    /// Zeroes the dense gradients, then runs forward, the loss and backward bucket by bucket
    /// (the dense and row gradients accumulate over the buckets).
    /// - Returns: the mean loss over the batch's real positions and the (U × D) gradient of the item rows.
    /// - Returns: also (B) σ(h · e) of each sequence's last position and its positive.
    mutating func trainStep(_ batch: ModelBatch, items: TableRows<T>?) -> (loss: Double, itemGradient: Tensor<T>, lastProbabilities: [T]) {
        zeroGradients()
        var dItems = Tensor<T>(zeros: [items?.keys.count ?? 0, dim])
        var probabilities = [T](repeating: 0, count: batch.size)
        let (buckets, total) = Self.buckets(batch, size: bucketSize)
        if loss != .bce, let items { shared = Candidates(Self.field(batch, "neg"), items: items, dim: dim) }
        defer { shared = nil }
        var loss = 0.0
        for rows in buckets {
            let sub = Self.subset(batch, rows: rows)
            forward(sub, items: items, training: true)
            for (k, p) in lastPositiveProbabilities(sub, items: items).enumerated() { probabilities[rows[k]] = p }
            loss += outputLoss(sub, items: items, dItems: &dItems, gradients: true, normalizer: total)
            backward(dItems: &dItems)
        }
        shared?.scatterGradient(into: &dItems)
        return (loss, dItems, probabilities)
    }

    /// (B) σ(h · e) at each sequence's last real position against its `pos` item, from the
    /// last forward (0 for an empty sequence or a batch without `pos`).
    func lastPositiveProbabilities(_ batch: ModelBatch, items: TableRows<T>?) -> [T] {
        guard let pos = batch.fields["pos"], let items else { return [T](repeating: 0, count: batch.size) }
        let d = dim, l = span
        return (0..<batch.size).map { r in
            let n = lengths[r]
            guard n > 0, let i = items.index(of: pos.keys[r * pos.length + n - 1]) else { return 0 }
            var z: T = 0
            for j in 0..<d { z += hidden.data[(r * l + n - 1) * d + j] * items.values.data[i * d + j] }
            return sigmoid(z)
        }
    }

    /// The training-mode loss without gradients (for numeric gradient checks).
    mutating func lossValue(_ batch: ModelBatch, items: TableRows<T>?) -> Double {
        var none = Tensor<T>.empty
        let (buckets, total) = Self.buckets(batch, size: bucketSize)
        if loss != .bce, let items { shared = Candidates(Self.field(batch, "neg"), items: items, dim: dim) }
        defer { shared = nil }
        var loss = 0.0
        for rows in buckets {
            let sub = Self.subset(batch, rows: rows)
            forward(sub, items: items, training: true)
            loss += outputLoss(sub, items: items, dItems: &none, gradients: false, normalizer: total)
        }
        return loss
    }

    /// Inference: the (B × D) user vectors (h at each sequence's last position) and the
    /// (B × W) last-position attention over the inputs (`lastAttention`), bucket by bucket.
    mutating func userVectors(_ batch: ModelBatch, items: TableRows<T>?) -> (vectors: [T], attention: [T]) {
        let b = batch.size, d = dim, w = window
        var vectors = [T](repeating: 0, count: b * d), attention = [T](repeating: 0, count: b * w)
        for rows in Self.buckets(batch, size: bucketSize).buckets {
            forward(Self.subset(batch, rows: rows), items: items, training: false)
            let h = lastHidden(), a = lastAttention()
            for (k, r) in rows.enumerated() {
                for j in 0..<d { vectors[r * d + j] = h[k * d + j] }
                for t in 0..<span { attention[r * w + t] = a[k * span + t] }
            }
        }
        return (vectors, attention)
    }

    /// The batch's rows grouped into buckets of `size` by sequence length (ascending, stable),
    /// and the batch's real positions. `size` 0 = one bucket of every row in order.
    static func buckets(_ batch: ModelBatch, size: Int) -> (buckets: [[Int]], positions: Int) {
        let seq = field(batch, "seq"), w = seq.length
        let lengths = (0..<batch.size).map { r in
            var n = 0
            while n < w && seq.mask[r * w + n] != 0 { n += 1 }
            return n
        }
        let total = lengths.reduce(0, +)
        guard size > 0, size < batch.size else { return ([Array(0..<batch.size)], total) }
        let order = (0..<batch.size).sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        return (stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min($0 + size, order.count)]) }, total)
    }

    /// The rows `rows` of a batch: per-position fields (B × L) are cut to those rows, a shared
    /// candidate list (`neg` of the softmax losses) is kept whole.
    static func subset(_ batch: ModelBatch, rows: [Int]) -> ModelBatch {
        if rows.count == batch.size && rows.enumerated().allSatisfy({ $0.offset == $0.element }) { return batch }
        var fields: [String: SparseField] = [:]
        for (name, f) in batch.fields {
            guard f.keys.count == batch.size * f.length else { fields[name] = f; continue }
            var keys: [UInt64] = [], mask: [Float] = []
            keys.reserveCapacity(rows.count * f.length); mask.reserveCapacity(rows.count * f.length)
            for r in rows {
                keys += f.keys[(r * f.length)..<((r + 1) * f.length)]
                mask += f.mask[(r * f.length)..<((r + 1) * f.length)]
            }
            fields[name] = SparseField(length: f.length, keys: keys, mask: mask)
        }
        return ModelBatch(size: rows.count, labels: rows.map { batch.labels[$0] }, users: rows.map { batch.users[$0] }, fields: fields)
    }

    // MARK: - Dense parameters

    /// Visits (name, value, gradient) in the flat-vector order: `positions`, then
    /// `block<k>.…` for each block, then `finalNorm.gain`, `finalNorm.bias`.
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("positions", &positions, &dPositions)
        for k in blocks.indices {
            blocks[k].visitParameters { n, v, g in body("block\(k)." + n, &v, &g) }
        }
        finalNorm.visitParameters { n, v, g in body("finalNorm." + n, &v, &g) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        dPositions.zero()
        for k in blocks.indices { blocks[k].zeroGradients() }
        finalNorm.zeroGradients()
    }

    /// The batch's field `name`; its absence is a programmer error (`SASRecBatcher` builds batches).
    static func field(_ batch: ModelBatch, _ name: String) -> SparseField {
        guard let f = batch.fields[name] else {
            preconditionFailure("sasrec: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
        }
        return f
    }
}

/// The candidate items shared by every position of a softmax-loss batch (`neg`).
struct Candidates<T: Real>: Sendable {
    /// (C) candidate keys, in field order.
    var keys: [UInt64]
    /// (C) row index of each candidate in the pulled item rows.
    var rows: [Int]
    /// Candidate key → its column (minus one) in the logits.
    var slot: [UInt64: Int]
    /// (C × D) candidate rows.
    var values: Tensor<T>
    /// (C × D) accumulated gradient of `values`.
    var gradient: Tensor<T>

    /// Gathers the real keys of `field` from `items`.
    init(_ field: SparseField, items: TableRows<T>, dim d: Int) {
        keys = []; rows = []
        for (k, m) in zip(field.keys, field.mask) where m != 0 {
            guard let i = items.index(of: k) else { preconditionFailure("sasrec: candidate \(FeatureKey(rawValue: k)) was not pulled") }
            keys.append(k); rows.append(i)
        }
        slot = Dictionary(keys.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        values = Tensor(zeros: [max(keys.count, 1), d])
        for (j, i) in rows.enumerated() {
            for x in 0..<d { values.data[j * d + x] = items.values.data[i * d + x] }
        }
        gradient = Tensor(zeros: values.shape)
    }

    /// Adds the candidates' gradient into the (U × D) item-row gradient.
    func scatterGradient(into dItems: inout Tensor<T>) {
        let d = values.lastDim
        for (j, i) in rows.enumerated() {
            for x in 0..<d { dItems.data[i * d + x] += gradient.data[j * d + x] }
        }
    }
}

/// `log(1 + eˣ)` without overflow.
@inlinable
func softplus<T: Real>(_ x: T) -> T {
    max(x, 0) + T.log1p(T.exp(-abs(x)))
}

extension SASRecNetwork: FlatParameterNetwork {
    static var networkName: String { "sasrec" }
}
