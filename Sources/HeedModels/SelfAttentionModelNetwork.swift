import HeedCore
import HeedData
import HeedLayers

/// How the `self-attention` model pools its encoded behaviours (`[model] pooling`).
public enum SelfAttentionPooling: String, CaseIterable, Equatable, Sendable {
    /// A learned query attends over the encoded behaviours: `α = softmax(e)`, weights summing
    /// to one (source document 2).
    case attention
    /// The masked mean of the encoded behaviours: the same model without attention weights,
    /// the twin the document's claim is measured against.
    case mean
}

/// The network of the `self-attention` click/purchase model (source document 2), generic over
/// the scalar type so the model that trains in Float is the one gradient-checked in Double.
///
/// Per sample b, with D the embedding width, L the history length:
/// - behaviour `x_bj` = item + category + event type + time gap embedding (each where the data
///   has it) + a learned recency embedding `position[r_bj]` (r = 0 for the most recent real
///   behaviour), all D wide; padded positions are zero rows;
/// - encoded `h_b` = one pre-norm multi-head self-attention block (attention + feed-forward,
///   residuals, padding masked) over `x_b`;
/// - pooled `p_b` = `Σ_j α_bj h_bj` with `α_b = softmax(h_b q / √D)` over the real positions
///   (attention pooling) or the masked mean of `h_b` (the twin);
/// - MLP input `[u_b ‖ v_b ‖ p_b]`, `v_b` = target item ‖ category → hidden… → 1 logit;
/// - loss = mean binary cross-entropy with logits (click or purchase label).
///
/// The per-position features are summed rather than concatenated: the attention width then
/// stays D whatever fields a dataset has (Beauty: item, category; Taobao: also event type and
/// time gap), so the heads, the Q/K/V cost (L·D² per sample) and the parameter count do not
/// grow with the number of fields, and each field's embedding lives in the one space the
/// attention compares (as SASRec/BERT4Rec add position and type embeddings to items).
///
/// Dense parameters are visited in the fixed order `position`, `block.*`, `query` (attention
/// pooling only), `mlp.*`: the order of the flat vector on the parameter servers.
struct SelfAttentionModelNetwork<T: Real>: Sendable {
    /// The slots read and their tables.
    let fields: SelfAttentionFields
    /// Embedding width D of every table and of the attention.
    let dim: Int
    /// Longest history the recency embedding covers (the `hist_items` slot's `maxLength`).
    let maxLength: Int
    /// Attention-weighted or mean pooling.
    let pooling: SelfAttentionPooling
    /// (maxLength × D) recency embeddings and their gradient.
    var position: Tensor<T>, dPosition: Tensor<T>
    /// The self-attention encoder (no dropout, not causal: every behaviour sees every other).
    var block: SelfAttentionBlock<T>
    /// (D) the pooling query and its gradient; empty with mean pooling.
    var query: Tensor<T>, dQuery: Tensor<T>
    /// The prediction MLP `inputWidth → hidden… → 1`.
    var mlp: MLPLayer<T>

    /// Width of the target vector: D·(1 + has category).
    let itemWidth: Int
    /// D if the user is embedded, else 0.
    let userWidth: Int
    /// Width of the MLP input: user ‖ target ‖ pooled.
    var inputWidth: Int { userWidth + itemWidth + dim }
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0

    // Per-step buffers (row-major).
    /// (B) row indices of the user, target item and category; −1 for padding.
    var userIndex: [Int] = [], itemIndex: [Int] = [], categoryIndex: [Int] = []
    /// Per sequence field (`fields.sequenceFields` order), (B·L) row indices, −1 at padding.
    var sequenceIndex: [[Int]] = []
    /// (B·L) recency of each real behaviour (0 = most recent), −1 at padding.
    var recency: [Int] = []
    /// (B × L) behaviour mask.
    var mask = Tensor<T>.empty
    /// (B × itemWidth) target embeddings.
    var target = Tensor<T>.empty
    /// (B × L × D) summed behaviour features, one field's gather, and the encoder output.
    var sequence = Tensor<T>.empty, gathered = Tensor<T>.empty, encoded = Tensor<T>.empty
    /// (B × L) attention pooling weights of the last forward (0 at padding).
    var weights = Tensor<T>.empty
    /// (B × D) pooled behaviours; (B × inputWidth) MLP input; (B × 1) logits; (B) labels.
    var pooled = Tensor<T>.empty, input = Tensor<T>.empty, logits = Tensor<T>.empty, labels = Tensor<T>.empty
    /// Gradient buffers with the shapes of `logits`, `input`, `target`, `pooled`, `encoded`, `sequence`.
    var dLogits = Tensor<T>.empty, dInput = Tensor<T>.empty, dTarget = Tensor<T>.empty
    var dPooled = Tensor<T>.empty, dEncoded = Tensor<T>.empty, dSequence = Tensor<T>.empty

    /// A network drawn from `generator` in the order positions, encoder, MLP; the query
    /// starts at zero, so attention pooling starts as mean pooling.
    ///
    /// - Parameters:
    ///   - fields: the slots read.
    ///   - dim: embedding and attention width D.
    ///   - maxLength: longest history (recency embeddings).
    ///   - heads: attention heads; must divide D.
    ///   - hidden: prediction MLP hidden sizes.
    ///   - activation: the MLP's activation.
    ///   - pooling: attention or mean.
    ///   - positionScale: standard deviation of the initial recency embeddings.
    ///   - generator: the source of the initial weights.
    init(fields: SelfAttentionFields, dim: Int, maxLength: Int, heads: Int, hidden: [Int], activation: ActivationKind,
         pooling: SelfAttentionPooling, positionScale: Double, generator: inout SeededGenerator) {
        precondition(dim > 0 && maxLength > 0 && heads > 0 && dim % heads == 0, "self-attention network: bad sizes")
        self.fields = fields
        self.dim = dim
        self.maxLength = maxLength
        self.pooling = pooling
        itemWidth = dim * (fields.behaviour.category == nil ? 1 : 2)
        userWidth = fields.behaviour.user == nil ? 0 : dim
        position = Tensor(gaussian: [maxLength, dim], std: positionScale, generator: &generator)
        dPosition = Tensor(zeros: [maxLength, dim])
        block = SelfAttentionBlock(dim: dim, heads: heads, hidden: dim, causal: false, dropout: 0, generator: &generator)
        query = pooling == .attention ? Tensor(zeros: [dim]) : .empty
        dQuery = query
        mlp = MLPLayer(sizes: [userWidth + itemWidth + dim] + hidden + [1], activation: activation, generator: &generator)
        var count = 0
        visitParameters { _, value, _ in count += value.count }
        parameterCount = count
    }

    /// Embedding tables read → row width.
    var tableDims: [UInt8: Int] { Dictionary(uniqueKeysWithValues: fields.tables.map { ($0, dim) }) }

    // MARK: - Forward and backward

    /// Runs the network on a batch; the logits land in `logits` (B × 1).
    ///
    /// - Parameters:
    ///   - batch: must hold every field of `fields`; sequences left-aligned, aligned with `hist_items`.
    ///   - rows: per table, the pulled rows; every real key of the read fields must be there.
    ///   - training: batch statistics in Dice.
    mutating func forward(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], training: Bool) {
        let b = batch.size, bf = fields.behaviour
        let hist = Self.field(batch, bf.histItems.name)
        let l = hist.length
        precondition(hist.keys.count == b * l, "self-attention network: field \(bf.histItems.name) holds \(hist.keys.count) keys for \(b) × \(l)")
        precondition(l <= maxLength, "self-attention network: history length \(l) exceeds the model's \(maxLength)")

        if let u = bf.user { Self.resolve(&userIndex, Self.field(batch, u.name), hist: nil, rows[u.table], u.name) }
        Self.resolve(&itemIndex, Self.field(batch, bf.item.name), hist: nil, rows[bf.item.table], bf.item.name)
        if let c = bf.category { Self.resolve(&categoryIndex, Self.field(batch, c.name), hist: nil, rows[c.table], c.name) }
        precondition(itemIndex.count == b && (bf.user == nil || userIndex.count == b), "self-attention network: target fields must hold one key per sample")
        let sequenceFields = fields.sequenceFields
        if sequenceIndex.count != sequenceFields.count { sequenceIndex = Array(repeating: [], count: sequenceFields.count) }
        for (f, sf) in sequenceFields.enumerated() {
            let x = Self.field(batch, sf.name)
            precondition(x.length == l && x.keys.count == b * l, "self-attention network: field \(sf.name) is not aligned with \(bf.histItems.name)")
            Self.resolve(&sequenceIndex[f], x, hist: hist.mask, rows[sf.table], sf.name)
        }

        mask.resize([b, l])
        recency.removeAll(keepingCapacity: true)
        recency.append(contentsOf: repeatElement(-1, count: b * l))
        for s in 0..<b {
            var r = 0
            for j in stride(from: l - 1, through: 0, by: -1) {
                let real = hist.mask[s * l + j] != 0
                mask.data[s * l + j] = real ? 1 : 0
                if real { recency[s * l + j] = r; r += 1 }
            }
        }

        sequence.resizeZeroed([b, l, dim])
        gathered.resize([b, l, dim])
        for (f, sf) in sequenceFields.enumerated() {
            blockGatherForward(&gathered, values(rows, sf.table), indices: sequenceIndex[f], column: 0)
            for i in 0..<sequence.count { sequence.data[i] += gathered.data[i] }
        }
        for p in 0..<(b * l) where recency[p] >= 0 {
            let src = recency[p] * dim, dst = p * dim
            for k in 0..<dim { sequence.data[dst + k] += position.data[src + k] }
        }
        block.forward(&encoded, sequence, mask: mask, training: training)
        switch pooling {
        case .attention: attentionPoolForward(&pooled, &weights, encoded, mask, query)
        case .mean: maskedSequencePoolForward(&pooled, encoded, mask, mode: .mean)
        }

        target.resize([b, itemWidth])
        blockGatherForward(&target, values(rows, bf.item.table), indices: itemIndex, column: 0)
        if let c = bf.category { blockGatherForward(&target, values(rows, c.table), indices: categoryIndex, column: dim) }
        input.resize([b, inputWidth])
        if let u = bf.user { blockGatherForward(&input, values(rows, u.table), indices: userIndex, column: 0) }
        columnBlockForward(&input, target, column: userWidth)
        columnBlockForward(&input, pooled, column: userWidth + itemWidth)
        mlp.forward(&logits, input, training: training)
    }

    /// Back-propagates the mean binary cross-entropy of the last (training) forward.
    ///
    /// - Parameters:
    ///   - batchLabels: (B) 0/1 labels.
    ///   - rows: the rows given to `forward`.
    /// - Returns: the mean loss and, per table read, (U × D) row gradients aligned with
    ///   `rows[t].keys` (a table absent from `rows` gets a (0 × D) gradient).
    mutating func backward(labels batchLabels: [Float], rows: [UInt8: TableRows<T>]) -> (loss: Double, rowGradients: [UInt8: Tensor<T>]) {
        let b = logits.rows, bf = fields.behaviour
        precondition(batchLabels.count == b, "self-attention network: \(batchLabels.count) labels for \(b) logits")
        labels.resize([b])
        for i in 0..<b { labels.data[i] = T(batchLabels[i]) }
        dLogits.resizeZeroed([b, 1])
        let loss = binaryCrossEntropyWithLogits(&dLogits, logits, labels)
        dInput.resizeZeroed([b, inputWidth])
        mlp.backward(&dInput, dLogits)

        var grads: [UInt8: Tensor<T>] = [:]
        for t in fields.tables { grads[t] = Tensor(zeros: [rows[t]?.keys.count ?? 0, dim]) }
        if let u = bf.user { blockGatherBackward(&grads[u.table]!, dInput, indices: userIndex, column: 0) }
        dTarget.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dTarget, dInput, column: userWidth)
        blockGatherBackward(&grads[bf.item.table]!, dTarget, indices: itemIndex, column: 0)
        if let c = bf.category { blockGatherBackward(&grads[c.table]!, dTarget, indices: categoryIndex, column: dim) }

        dPooled.resizeZeroed([b, dim])
        columnBlockBackward(&dPooled, dInput, column: userWidth + itemWidth)
        dEncoded.resizeZeroed(encoded.shape)
        switch pooling {
        case .attention: attentionPoolBackward(&dEncoded, &dQuery, dPooled, weights, encoded, query)
        case .mean: maskedSequencePoolBackward(&dEncoded, dPooled, mask, mode: .mean)
        }
        dSequence.resizeZeroed(sequence.shape)
        block.backward(&dSequence, dEncoded)
        for p in 0..<recency.count where recency[p] >= 0 {
            let dst = recency[p] * dim, src = p * dim
            for k in 0..<dim { dPosition.data[dst + k] += dSequence.data[src + k] }
        }
        for (f, sf) in fields.sequenceFields.enumerated() {
            blockGatherBackward(&grads[sf.table]!, dSequence, indices: sequenceIndex[f], column: 0)
        }
        return (Double(loss), grads)
    }

    /// Zeroes the dense gradients, runs forward and backward; the dense gradients are then
    /// in the layers (`flatGradients()`).
    mutating func trainStep(_ batch: ModelBatch, rows: [UInt8: TableRows<T>]) -> (loss: Double, rowGradients: [UInt8: Tensor<T>]) {
        zeroGradients()
        forward(batch, rows: rows, training: true)
        return backward(labels: batch.labels, rows: rows)
    }

    /// Mean loss of a training-mode forward without gradients (for numeric gradient checks).
    mutating func loss(_ batch: ModelBatch, rows: [UInt8: TableRows<T>]) -> Double {
        forward(batch, rows: rows, training: true)
        var none = Tensor<T>.empty
        labels.resize([batch.size])
        for i in 0..<batch.size { labels.data[i] = T(batch.labels[i]) }
        return Double(binaryCrossEntropyWithLogits(&none, logits, labels))
    }

    // MARK: - Dense parameters

    /// Visits (name, value, gradient) of every dense parameter in the flat-vector order.
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        body("position", &position, &dPosition)
        block.visitParameters { name, value, grad in body("block." + name, &value, &grad) }
        if pooling == .attention { body("query", &query, &dQuery) }
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits the MLP's Dice running statistics (not learned; kept by checkpoints).
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        dPosition.zero()
        block.zeroGradients()
        dQuery.zero()
        mlp.zeroGradients()
    }

    // MARK: - Helpers

    /// The (U × D) values of table `t`, or (0 × D) when nothing of it was pulled.
    private func values(_ rows: [UInt8: TableRows<T>], _ t: UInt8) -> Tensor<T> {
        rows[t]?.values ?? Tensor(zeros: [0, dim])
    }

    /// The batch's field `name`; its absence is a programmer error (the adapter builds
    /// batches from the schema the model was made for).
    private static func field(_ batch: ModelBatch, _ name: String) -> SparseField {
        guard let f = batch.fields[name] else {
            preconditionFailure("self-attention network: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
        }
        return f
    }

    /// Row index per position of `field` into `table`, −1 where the mask (`hist`'s for aligned
    /// sequences, else the field's own) is 0.
    private static func resolve(_ out: inout [Int], _ field: SparseField, hist: [Float]?, _ table: TableRows<T>?, _ name: String) {
        out.removeAll(keepingCapacity: true)
        let mask = hist ?? field.mask
        for i in 0..<field.keys.count {
            if mask[i] == 0 { out.append(-1); continue }
            let key = field.keys[i]
            guard let r = table?.index(of: key) else {
                preconditionFailure("self-attention network: key \(FeatureKey(rawValue: key)) of field '\(name)' at position \(i) was not pulled")
            }
            out.append(r)
        }
    }
}

extension SelfAttentionModelNetwork: FlatStatisticsNetwork {
    static var networkName: String { "self-attention network" }
}
