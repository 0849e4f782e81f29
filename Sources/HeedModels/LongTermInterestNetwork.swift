import HeedCore
import HeedData
import HeedLayers

/// The `long-term-interest` model's behaviour-sequence encoder (`[model] encoder`).
public enum LongTermInterestEncoder: String, CaseIterable, Equatable, Sendable {
    /// A GRU over the behaviours, oldest first; its state after the most recent behaviour is
    /// the long-term interest (source document 1's RNN/LSTM option).
    case gru
    /// One self-attention block over the behaviours plus learned recency embeddings, then the
    /// masked mean (the document's Transformer option).
    case selfAttention = "self-attention"
}

/// The network of the `long-term-interest` click model (source document 1), generic over the
/// scalar type so the Float model that trains is the one gradient-checked in Double.
///
/// Per sample b, with D the embedding width (every table and the encoder state):
/// - user `u_b` = user embedding;
/// - social `s_b` = masked mean of the neighbours' user embeddings (zeros without neighbours);
/// - behaviour `x_bj` = item + category embedding of behaviour j (padding = zero rows);
/// - long-term interest `h_b` = GRU state after the last real behaviour (zeros for an empty
///   history), or the masked mean of a self-attention block's output over `x_b + position`;
/// - target `v_b` = item ‖ category ‖ masked mean of the attribute (tag) embeddings;
/// - `y_b = σ(MLP([u_b ‖ s_b ‖ h_b ‖ v_b]))` — the document's `σ(W' f(W [u; v] + b) + b')`
///   with the user side widened by the social and sequence vectors;
/// - loss = mean binary cross-entropy with logits on the click label.
///
/// Parts the fields leave out (no neighbours, no tags) are absent from the MLP input, so each
/// twin has exactly the inputs its name says. Dense parameters are visited in the order
/// `gru.*` or `position`, `block.*`, then `mlp.*`: the flat vector on the parameter servers.
struct LongTermInterestNetwork<T: Real>: Sendable {
    /// The slots read and their tables.
    let fields: LongTermInterestFields
    /// Embedding width D of every table, and the encoder's state width.
    let dim: Int
    /// Longest history (the `hist_items` slot's `maxLength`; the recency embedding's rows).
    let maxLength: Int
    /// GRU or self-attention.
    let encoder: LongTermInterestEncoder
    /// The GRU encoder (nil with self-attention).
    var gru: GRULayer<T>?
    /// (maxLength × D) recency embeddings and their gradient (empty with the GRU).
    var position: Tensor<T>, dPosition: Tensor<T>
    /// The self-attention encoder (nil with the GRU).
    var block: SelfAttentionBlock<T>?
    /// The prediction MLP `inputWidth → hidden… → 1`.
    var mlp: MLPLayer<T>

    /// Width of the target vector: D·(1 + has category + has attributes).
    let itemWidth: Int
    /// D if neighbours are read, else 0.
    let socialWidth: Int
    /// Width of the MLP input: user ‖ social ‖ long-term ‖ target.
    var inputWidth: Int { dim + socialWidth + dim + itemWidth }
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0

    // Per-step buffers (row-major).
    /// (B) row indices of the user, target item and category; −1 for padding.
    var userIndex: [Int] = [], itemIndex: [Int] = [], categoryIndex: [Int] = []
    /// (B·L_a) attribute rows, (B·L_n) neighbour rows, (B·L) behaviour item and category rows; −1 at padding.
    var attributeIndex: [Int] = [], neighborIndex: [Int] = [], histItemIndex: [Int] = [], histCategoryIndex: [Int] = []
    /// (B·L) recency of each real behaviour (0 = most recent), −1 at padding.
    var recency: [Int] = []
    /// (B × L) behaviour mask; (B × L_a) attribute mask; (B × L_n) neighbour mask.
    var mask = Tensor<T>.empty, attributeMask = Tensor<T>.empty, neighborMask = Tensor<T>.empty
    /// (B × L × D) behaviour features and one field's gather; (B × L × D) encoder output.
    var sequence = Tensor<T>.empty, gathered = Tensor<T>.empty, encoded = Tensor<T>.empty
    /// (B × L_a × D) attribute rows, (B × L_n × D) neighbour rows.
    var attributeRows = Tensor<T>.empty, neighborRows = Tensor<T>.empty
    /// (B × D) long-term interest, pooled attributes, social vector.
    var longTerm = Tensor<T>.empty, attributePooled = Tensor<T>.empty, social = Tensor<T>.empty
    /// (B × inputWidth) MLP input; (B × 1) logits; (B) labels.
    var input = Tensor<T>.empty, logits = Tensor<T>.empty, labels = Tensor<T>.empty
    /// Gradient buffers with the shapes of the buffers they are named after.
    var dLogits = Tensor<T>.empty, dInput = Tensor<T>.empty, dLongTerm = Tensor<T>.empty, dSequence = Tensor<T>.empty
    var dEncoded = Tensor<T>.empty, dAttributePooled = Tensor<T>.empty, dAttributeRows = Tensor<T>.empty
    var dSocial = Tensor<T>.empty, dNeighborRows = Tensor<T>.empty

    /// A network drawn from `generator` in the order encoder, MLP.
    ///
    /// - Parameters:
    ///   - fields: the slots read.
    ///   - dim: embedding and encoder width D.
    ///   - maxLength: longest history (recency embeddings of the self-attention encoder).
    ///   - encoder: GRU or self-attention.
    ///   - heads: attention heads of the self-attention encoder; must divide D.
    ///   - hidden: prediction MLP hidden sizes.
    ///   - activation: the MLP's activation.
    ///   - positionScale: standard deviation of the initial recency embeddings.
    ///   - generator: the source of the initial weights.
    init(fields: LongTermInterestFields, dim: Int, maxLength: Int, encoder: LongTermInterestEncoder, heads: Int,
         hidden: [Int], activation: ActivationKind, positionScale: Double, generator: inout SeededGenerator) {
        precondition(dim > 0 && maxLength > 0 && heads > 0 && dim % heads == 0, "long-term-interest network: bad sizes")
        self.fields = fields
        self.dim = dim
        self.maxLength = maxLength
        self.encoder = encoder
        itemWidth = dim * (1 + (fields.category == nil ? 0 : 1) + (fields.attributes == nil ? 0 : 1))
        socialWidth = fields.neighbors == nil ? 0 : dim
        switch encoder {
        case .gru:
            gru = GRULayer(inputSize: dim, hiddenSize: dim, generator: &generator)
            position = .empty
            block = nil
        case .selfAttention:
            gru = nil
            position = Tensor(gaussian: [maxLength, dim], std: positionScale, generator: &generator)
            block = SelfAttentionBlock(dim: dim, heads: heads, hidden: dim, causal: false, dropout: 0, generator: &generator)
        }
        dPosition = Tensor(zeros: position.shape)
        mlp = MLPLayer(sizes: [dim + socialWidth + dim + itemWidth] + hidden + [1], activation: activation, generator: &generator)
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
    ///   - batch: must hold every field of `fields`; sequences left-aligned, categories aligned with `hist_items`.
    ///   - rows: per table, the pulled rows; every real key of the read fields must be there.
    ///   - training: batch statistics in Dice.
    mutating func forward(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], training: Bool) {
        let b = batch.size, f = fields
        let hist = Self.field(batch, f.histItems.name)
        let l = hist.length
        precondition(hist.keys.count == b * l, "long-term-interest network: field \(f.histItems.name) holds \(hist.keys.count) keys for \(b) × \(l)")
        precondition(l <= maxLength, "long-term-interest network: history length \(l) exceeds the model's \(maxLength)")

        Self.resolve(&userIndex, Self.field(batch, f.user.name), mask: nil, rows[f.user.table], f.user.name)
        Self.resolve(&itemIndex, Self.field(batch, f.item.name), mask: nil, rows[f.item.table], f.item.name)
        precondition(userIndex.count == b && itemIndex.count == b, "long-term-interest network: target fields must hold one key per sample")
        if let c = f.category { Self.resolve(&categoryIndex, Self.field(batch, c.name), mask: nil, rows[c.table], c.name) }
        Self.resolve(&histItemIndex, hist, mask: nil, rows[f.histItems.table], f.histItems.name)
        if let c = f.histCategories {
            let x = Self.field(batch, c.name)
            precondition(x.length == l && x.keys.count == b * l, "long-term-interest network: field \(c.name) is not aligned with \(f.histItems.name)")
            Self.resolve(&histCategoryIndex, x, mask: hist.mask, rows[c.table], c.name)
        }

        mask.resize([b, l])
        for i in 0..<(b * l) { mask.data[i] = hist.mask[i] != 0 ? 1 : 0 }
        sequence.resizeZeroed([b, l, dim])
        gathered.resize([b, l, dim])
        blockGatherForward(&sequence, values(rows, f.histItems.table), indices: histItemIndex, column: 0)
        if let c = f.histCategories {
            blockGatherForward(&gathered, values(rows, c.table), indices: histCategoryIndex, column: 0)
            for i in 0..<sequence.count { sequence.data[i] += gathered.data[i] }
        }
        switch encoder {
        case .gru:
            gru!.forward(&encoded, &longTerm, sequence, mask: mask)
        case .selfAttention:
            recency.removeAll(keepingCapacity: true)
            recency.append(contentsOf: repeatElement(-1, count: b * l))
            for s in 0..<b {
                var r = 0
                for j in stride(from: l - 1, through: 0, by: -1) where mask.data[s * l + j] != 0 {
                    recency[s * l + j] = r
                    r += 1
                }
            }
            for p in 0..<(b * l) where recency[p] >= 0 {
                let src = recency[p] * dim, dst = p * dim
                for k in 0..<dim { sequence.data[dst + k] += position.data[src + k] }
            }
            block!.forward(&encoded, sequence, mask: mask, training: training)
            maskedSequencePoolForward(&longTerm, encoded, mask, mode: .mean)
        }

        if let n = f.neighbors {
            pooledForward(&social, &neighborRows, &neighborMask, &neighborIndex, Self.field(batch, n.name), rows[n.table], n.name)
        }
        if let a = f.attributes {
            pooledForward(&attributePooled, &attributeRows, &attributeMask, &attributeIndex, Self.field(batch, a.name), rows[a.table], a.name)
        }

        input.resize([b, inputWidth])
        var column = 0
        blockGatherForward(&input, values(rows, f.user.table), indices: userIndex, column: column); column += dim
        if f.neighbors != nil { columnBlockForward(&input, social, column: column); column += dim }
        columnBlockForward(&input, longTerm, column: column); column += dim
        blockGatherForward(&input, values(rows, f.item.table), indices: itemIndex, column: column); column += dim
        if let c = f.category { blockGatherForward(&input, values(rows, c.table), indices: categoryIndex, column: column); column += dim }
        if f.attributes != nil { columnBlockForward(&input, attributePooled, column: column); column += dim }
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
        let b = logits.rows, f = fields
        precondition(batchLabels.count == b, "long-term-interest network: \(batchLabels.count) labels for \(b) logits")
        labels.resize([b])
        for i in 0..<b { labels.data[i] = T(batchLabels[i]) }
        dLogits.resizeZeroed([b, 1])
        let loss = binaryCrossEntropyWithLogits(&dLogits, logits, labels)
        dInput.resizeZeroed([b, inputWidth])
        mlp.backward(&dInput, dLogits)

        var grads: [UInt8: Tensor<T>] = [:]
        for t in f.tables { grads[t] = Tensor(zeros: [rows[t]?.keys.count ?? 0, dim]) }
        var column = 0
        blockGatherBackward(&grads[f.user.table]!, dInput, indices: userIndex, column: column); column += dim
        if let n = f.neighbors {
            dSocial.resizeZeroed([b, dim])
            columnBlockBackward(&dSocial, dInput, column: column); column += dim
            pooledBackward(&grads[n.table]!, &dNeighborRows, dSocial, neighborRows, neighborMask, neighborIndex)
        }
        dLongTerm.resizeZeroed([b, dim])
        columnBlockBackward(&dLongTerm, dInput, column: column); column += dim
        blockGatherBackward(&grads[f.item.table]!, dInput, indices: itemIndex, column: column); column += dim
        if let c = f.category { blockGatherBackward(&grads[c.table]!, dInput, indices: categoryIndex, column: column); column += dim }
        if let a = f.attributes {
            dAttributePooled.resizeZeroed([b, dim])
            columnBlockBackward(&dAttributePooled, dInput, column: column); column += dim
            pooledBackward(&grads[a.table]!, &dAttributeRows, dAttributePooled, attributeRows, attributeMask, attributeIndex)
        }

        dSequence.resizeZeroed(sequence.shape)
        switch encoder {
        case .gru:
            var noInitialState = Tensor<T>.empty
            gru!.backward(&dSequence, &noInitialState, .empty, dLongTerm)
        case .selfAttention:
            dEncoded.resizeZeroed(encoded.shape)
            maskedSequencePoolBackward(&dEncoded, dLongTerm, mask, mode: .mean)
            block!.backward(&dSequence, dEncoded)
            for p in 0..<recency.count where recency[p] >= 0 {
                let dst = recency[p] * dim, src = p * dim
                for k in 0..<dim { dPosition.data[dst + k] += dSequence.data[src + k] }
            }
        }
        blockGatherBackward(&grads[f.histItems.table]!, dSequence, indices: histItemIndex, column: 0)
        if let c = f.histCategories { blockGatherBackward(&grads[c.table]!, dSequence, indices: histCategoryIndex, column: 0) }
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
        switch encoder {
        case .gru:
            gru!.visitParameters { name, value, grad in body("gru." + name, &value, &grad) }
        case .selfAttention:
            body("position", &position, &dPosition)
            block!.visitParameters { name, value, grad in body("block." + name, &value, &grad) }
        }
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits the MLP's Dice running statistics (not learned; kept by checkpoints).
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        gru?.zeroGradients()
        dPosition.zero()
        block?.zeroGradients()
        mlp.zeroGradients()
    }

    // MARK: - Helpers

    /// Masked mean of a sequence field's embeddings (neighbours, attributes).
    ///
    /// - Parameters:
    ///   - out: (B × D), overwritten; zeros for a sample without real keys.
    ///   - gatheredRows: (B × L_f × D), overwritten with the gathered rows (kept for the backward pass).
    ///   - fieldMask: (B × L_f), overwritten with the field's mask.
    ///   - index: (B·L_f), overwritten with the row indices (−1 at padding).
    private func pooledForward(_ out: inout Tensor<T>, _ gatheredRows: inout Tensor<T>, _ fieldMask: inout Tensor<T>, _ index: inout [Int],
                               _ field: SparseField, _ table: TableRows<T>?, _ name: String) {
        let b = field.length == 0 ? 0 : field.keys.count / field.length
        Self.resolve(&index, field, mask: nil, table, name)
        fieldMask.resize([b, field.length])
        for i in 0..<field.keys.count { fieldMask.data[i] = field.mask[i] != 0 ? 1 : 0 }
        gatheredRows.resize([b, field.length, dim])
        blockGatherForward(&gatheredRows, table?.values ?? Tensor(zeros: [0, dim]), indices: index, column: 0)
        maskedSequencePoolForward(&out, gatheredRows, fieldMask, mode: .mean)
    }

    /// Backward of `pooledForward`: scatter-adds `dout`'s share into `dRows` (U × D).
    private func pooledBackward(_ dRows: inout Tensor<T>, _ dGathered: inout Tensor<T>, _ dout: Tensor<T>, _ gatheredRows: Tensor<T>,
                                _ fieldMask: Tensor<T>, _ index: [Int]) {
        dGathered.resizeZeroed(gatheredRows.shape)
        maskedSequencePoolBackward(&dGathered, dout, fieldMask, mode: .mean)
        blockGatherBackward(&dRows, dGathered, indices: index, column: 0)
    }

    /// The (U × D) values of table `t`, or (0 × D) when nothing of it was pulled.
    private func values(_ rows: [UInt8: TableRows<T>], _ t: UInt8) -> Tensor<T> {
        rows[t]?.values ?? Tensor(zeros: [0, dim])
    }

    /// The batch's field `name`; its absence is a programmer error (the adapter builds
    /// batches from the schema the model was made for).
    private static func field(_ batch: ModelBatch, _ name: String) -> SparseField {
        guard let f = batch.fields[name] else {
            preconditionFailure("long-term-interest network: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
        }
        return f
    }

    /// Row index per position of `field` into `table`, −1 where the mask (`mask` for aligned
    /// sequences, else the field's own) is 0.
    private static func resolve(_ out: inout [Int], _ field: SparseField, mask: [Float]?, _ table: TableRows<T>?, _ name: String) {
        out.removeAll(keepingCapacity: true)
        let m = mask ?? field.mask
        for i in 0..<field.keys.count {
            if m[i] == 0 { out.append(-1); continue }
            let key = field.keys[i]
            guard let r = table?.index(of: key) else {
                preconditionFailure("long-term-interest network: key \(FeatureKey(rawValue: key)) of field '\(name)' at position \(i) was not pulled")
            }
            out.append(r)
        }
    }
}

extension LongTermInterestNetwork: FlatStatisticsNetwork {
    static var networkName: String { "long-term-interest network" }
}
