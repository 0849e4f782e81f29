import HeedCore
import HeedData
import HeedLayers

/// How a behaviour network turns the behaviour sequence into one vector.
enum BehaviourPooling: Equatable, Sendable {
    /// Masked sum or mean (the DIN paper's Base model).
    case pooled(PoolingMode)
    /// DIN's local activation unit: target attention over the behaviours.
    case targetAttention(TargetAttentionWeighting)
}

/// The network shared by the DIN paper's Base model and DIN (Zhou et al., KDD 2018,
/// §4.2–4.3), generic over the scalar type so the model that trains in Float is the one
/// gradient-checked in Double.
///
/// Per sample b, with D the embedding width and E = D·(1 + has category):
/// - target `v_b` = item ‖ category embedding (E);
/// - behaviours `e_bj` = hist item ‖ hist category embedding (E) at each position j < L;
/// - pooled `p_b` = masked sum/mean of `e_bj` (base) or `Σ_j a(e_bj, v_b)·e_bj` (DIN);
/// - MLP input `[u_b ‖ v_b ‖ p_b]` (u_b the user embedding, if used) → hidden… → 1 logit;
/// - loss = mean binary cross-entropy with logits.
///
/// Embedding rows arrive per batch as each table's sorted unique keys with (U × D) values;
/// the backward pass returns (U × D) gradients aligned with those keys — sparse, never
/// table-sized. Dense parameters (the attention MLP, then the prediction MLP) are visited in
/// a fixed order, which is the order of the flat vector on the parameter servers.
///
/// Every buffer below is kept across steps, so a step at a fixed batch shape allocates only
/// what it returns (row gradients) and what the layers allocate.
struct BehaviourNetwork<T: Real>: Sendable {
    /// The slots read and their tables.
    let fields: BehaviourFields
    /// Embedding width D of every table.
    let dim: Int
    /// Sum/mean pooling or target attention.
    let pooling: BehaviourPooling
    /// DIN's attention unit over (E)-wide behaviours; nil for pooled models.
    var attention: TargetAttentionLayer<T>?
    /// The prediction MLP `inputWidth → hidden… → 1`.
    var mlp: MLPLayer<T>

    /// E: width of a target or behaviour vector (item ‖ category).
    let itemWidth: Int
    /// D if the user is embedded, else 0.
    let userWidth: Int
    /// Width of the MLP input: user ‖ target ‖ pooled.
    var inputWidth: Int { userWidth + 2 * itemWidth }
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0

    // Per-step buffers (row-major).
    /// (B), (B), (B), (B·L), (B·L) row indices per field, −1 for padding.
    var userIndex: [Int] = [], itemIndex: [Int] = [], categoryIndex: [Int] = []
    var histItemIndex: [Int] = [], histCategoryIndex: [Int] = []
    /// (B × L) behaviour mask.
    var mask = Tensor<T>.empty
    /// (B × E) target embeddings.
    var target = Tensor<T>.empty
    /// (B × L × E) behaviour embeddings (zeros at padding).
    var behaviours = Tensor<T>.empty
    /// (B × E) pooled behaviours.
    var pooled = Tensor<T>.empty
    /// (B × inputWidth) MLP input.
    var input = Tensor<T>.empty
    /// (B × 1) logits of the last forward.
    var logits = Tensor<T>.empty
    /// (B) labels of the last backward.
    var labels = Tensor<T>.empty
    /// Gradient buffers with the shapes of `logits`, `input`, `target`, `pooled`, `behaviours`.
    var dLogits = Tensor<T>.empty, dInput = Tensor<T>.empty, dTarget = Tensor<T>.empty
    var dPooled = Tensor<T>.empty, dBehaviours = Tensor<T>.empty

    /// A network with Glorot-initialised MLPs (the attention unit's drawn first).
    ///
    /// - Parameters:
    ///   - fields: the slots read.
    ///   - dim: embedding width D.
    ///   - hidden: prediction MLP hidden sizes (DIN: 200, 80).
    ///   - attentionHidden: attention MLP hidden sizes (DIN: 80, 40); unused when pooled.
    ///   - activation: the activation of both MLPs (Dice, PReLU, …).
    ///   - attentionActivation: the attention MLP's own activation, if different (nil = `activation`).
    ///   - pooling: sum/mean (base) or target attention (DIN).
    ///   - generator: the source of the initial weights.
    init(fields: BehaviourFields, dim: Int, hidden: [Int], attentionHidden: [Int], activation: ActivationKind,
         attentionActivation: ActivationKind? = nil, pooling: BehaviourPooling, generator: inout SeededGenerator) {
        precondition(dim > 0, "behaviour network: embedding dim must be positive")
        self.fields = fields
        self.dim = dim
        self.pooling = pooling
        itemWidth = dim * (fields.category == nil ? 1 : 2)
        userWidth = fields.user == nil ? 0 : dim
        if case .targetAttention(let weighting) = pooling {
            attention = TargetAttentionLayer(dim: itemWidth, hidden: attentionHidden, activation: attentionActivation ?? activation,
                                             weighting: weighting, generator: &generator)
        }
        mlp = MLPLayer(sizes: [userWidth + 2 * itemWidth] + hidden + [1], activation: activation, generator: &generator)
        var count = 0
        visitParameters { _, value, _ in count += value.count }
        parameterCount = count
    }

    /// Embedding tables read → row width.
    var tableDims: [UInt8: Int] {
        Dictionary(uniqueKeysWithValues: fields.tables.map { ($0, dim) })
    }

    // MARK: - Forward and backward

    /// Runs the network on a batch; the logits land in `logits` (B × 1).
    ///
    /// - Parameters:
    ///   - batch: must hold every field of `fields`; sequences left-aligned with their masks.
    ///   - rows: per table, the pulled rows; every real key of the read fields must be there.
    ///   - training: batch statistics in Dice and caches for `backward`.
    mutating func forward(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], training: Bool) {
        let b = batch.size
        let hist = Self.field(batch, fields.histItems.name)
        precondition(hist.keys.count == b * hist.length, "behaviour network: field \(fields.histItems.name) holds \(hist.keys.count) keys for \(b) × \(hist.length)")
        let l = hist.length

        if let u = fields.user { Self.resolve(&userIndex, Self.field(batch, u.name), rows[u.table], u.name) }
        Self.resolve(&itemIndex, Self.field(batch, fields.item.name), rows[fields.item.table], fields.item.name)
        Self.resolve(&histItemIndex, hist, rows[fields.histItems.table], fields.histItems.name)
        if let c = fields.category, let hc = fields.histCategories {
            Self.resolve(&categoryIndex, Self.field(batch, c.name), rows[c.table], c.name)
            Self.resolve(&histCategoryIndex, Self.field(batch, hc.name), rows[hc.table], hc.name)
        }
        precondition(itemIndex.count == b && (fields.user == nil || userIndex.count == b), "behaviour network: target fields must hold one key per sample")

        mask.resize([b, l])
        mask.data.withUnsafeMutableBufferPointer { pm in
            hist.mask.withUnsafeBufferPointer { src in
                // Safe: both hold b·l elements (checked above).
                for i in 0..<(b * l) { pm[i] = src[i] != 0 ? 1 : 0 }
            }
        }

        input.resize([b, inputWidth])
        target.resize([b, itemWidth])
        behaviours.resize([b, l, itemWidth])
        if let u = fields.user { blockGatherForward(&input, values(rows, u.table), indices: userIndex, column: 0) }
        blockGatherForward(&target, values(rows, fields.item.table), indices: itemIndex, column: 0)
        blockGatherForward(&behaviours, values(rows, fields.histItems.table), indices: histItemIndex, column: 0)
        if let c = fields.category, let hc = fields.histCategories {
            blockGatherForward(&target, values(rows, c.table), indices: categoryIndex, column: dim)
            blockGatherForward(&behaviours, values(rows, hc.table), indices: histCategoryIndex, column: dim)
        }

        switch pooling {
        case .pooled(let mode):
            maskedSequencePoolForward(&pooled, behaviours, mask, mode: mode)
        case .targetAttention:
            attention!.forward(&pooled, behaviours: behaviours, target: target, mask: mask, training: training)
        }
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
        let b = logits.rows
        precondition(batchLabels.count == b, "behaviour network: \(batchLabels.count) labels for \(b) logits")
        labels.resize([b])
        for i in 0..<b { labels.data[i] = T(batchLabels[i]) }
        dLogits.resizeZeroed([b, 1])
        let loss = binaryCrossEntropyWithLogits(&dLogits, logits, labels)
        dInput.resizeZeroed([b, inputWidth])
        mlp.backward(&dInput, dLogits)

        var grads: [UInt8: Tensor<T>] = [:]
        for t in fields.tables { grads[t] = Tensor(zeros: [rows[t]?.keys.count ?? 0, dim]) }
        if let u = fields.user { blockGatherBackward(&grads[u.table]!, dInput, indices: userIndex, column: 0) }
        dTarget.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dTarget, dInput, column: userWidth)
        dPooled.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dPooled, dInput, column: userWidth + itemWidth)
        dBehaviours.resizeZeroed(behaviours.shape)
        switch pooling {
        case .pooled(let mode):
            maskedSequencePoolBackward(&dBehaviours, dPooled, mask, mode: mode)
        case .targetAttention:
            attention!.backward(&dBehaviours, &dTarget, dPooled)
        }
        blockGatherBackward(&grads[fields.item.table]!, dTarget, indices: itemIndex, column: 0)
        blockGatherBackward(&grads[fields.histItems.table]!, dBehaviours, indices: histItemIndex, column: 0)
        if let c = fields.category, let hc = fields.histCategories {
            blockGatherBackward(&grads[c.table]!, dTarget, indices: categoryIndex, column: dim)
            blockGatherBackward(&grads[hc.table]!, dBehaviours, indices: histCategoryIndex, column: dim)
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

    /// (B × L) attention weights of the last forward (0 at padding); nil for pooled models.
    var attentionWeights: Tensor<T>? { attention?.attention }

    // MARK: - Dense parameters

    /// Visits (name, value, gradient) of every dense parameter in the flat-vector order:
    /// `attention.mlp.…` (DIN only), then `mlp.dense0.weight`, `mlp.dense0.bias`, ….
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        if attention != nil {
            attention!.visitParameters { name, value, grad in body("attention." + name, &value, &grad) }
        }
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits the Dice running statistics (not learned; kept by checkpoints and used in inference).
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        if attention != nil {
            attention!.visitStatistics { name, value in body("attention." + name, &value) }
        }
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        attention?.zeroGradients()
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
            preconditionFailure("behaviour network: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
        }
        return f
    }

    /// Row index per position of `field` into `table`, −1 where the mask is 0.
    private static func resolve(_ out: inout [Int], _ field: SparseField, _ table: TableRows<T>?, _ name: String) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(field.keys.count)
        let sorted = table?.keys ?? []
        sorted.withUnsafeBufferPointer { kp in
            field.keys.withUnsafeBufferPointer { fk in
                field.mask.withUnsafeBufferPointer { fm in
                    // Safe: keys and mask have one entry per position (SparseField); every index
                    // read from kp stays below its count.
                    let n = kp.count
                    for i in 0..<fk.count {
                        if fm[i] == 0 { out.append(-1); continue }
                        let key = fk[i]
                        // Branch-free lower bound: the loop's shape depends on n only.
                        var first = 0, length = n
                        while length > 1 {
                            let half = length / 2
                            first = kp[first + half] < key ? first + half : first
                            length -= half
                        }
                        let r = n > 0 && kp[first] < key ? first + 1 : first
                        guard r < n && kp[r] == key else {
                            preconditionFailure("behaviour network: key \(FeatureKey(rawValue: key)) of field '\(name)' at position \(i) was not pulled")
                        }
                        out.append(r)
                    }
                }
            }
        }
    }
}

extension BehaviourNetwork: FlatStatisticsNetwork {
    static var networkName: String { "behaviour network" }
}
