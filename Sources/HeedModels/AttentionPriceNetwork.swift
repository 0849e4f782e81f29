import HeedCore
import HeedData
import HeedLayers

/// How the `attention-price` model fuses the attention-pooled interest with purchasing power
/// (`[model] price_fusion`).
public enum PriceFusion: String, CaseIterable, Equatable, Sendable {
    /// `[Xᵀa ‖ z]`: the pooled interest and the purchasing-power vector side by side in the MLP input.
    case concat
    /// `Xᵀa ⊙ p` with `p = z·W_p + b_p`: the document's product form `f = Xᵀ a p`, the
    /// purchasing power scaling each dimension of the interest.
    case product
}

/// The `attention-price` network (source document 3, "attention fused with purchasing
/// power"), generic over the scalar type so the Float model is the one gradient-checked in
/// Double.
///
/// Per sample b, with D the embedding width and E = D·(1 + has category):
/// - target `v_b` = item ‖ category embedding (E); behaviours `e_bj` the same per history
///   position (the matrix `X` of the document);
/// - purchasing power `z_b` (Z) = item price level ‖ user spend level ‖ income band (if the
///   data has it) embeddings, then the dense `log_price, price_pct, user_price_pct,
///   price_gap` (those present);
/// - attention `a_b` = softmax (or raw) over real positions of an MLP of
///   `[e_bj, v_b, e_bj − v_b, e_bj ⊙ v_b, z_b]` (`ContextAttentionLayer`): the document's
///   attention signal, aware of whether the candidate fits the user's budget;
/// - interest `s_b = Σ_j a_bj e_bj = X_bᵀ a_b` (E);
/// - fusion: `concat` → MLP input `[u ‖ v ‖ s ‖ z]`; `product` → `[u ‖ v ‖ s ⊙ (z·W_p + b_p)]`;
///   without price features (the twin) → `[u ‖ v ‖ s]` with an attention that sees no `z`;
/// - MLP → 1 logit; loss = mean binary cross-entropy with logits.
///
/// Dense parameters in flat-vector order: `attention.mlp.…`, then `power.weight` (Z × E) and
/// `power.bias` (E) for `product`, then `mlp.…`.
struct AttentionPriceNetwork<T: Real>: Sendable {
    /// The slots and dense columns read.
    let fields: AttentionPriceFields
    /// Embedding width D of every table.
    let dim: Int
    /// Concatenation or product; irrelevant without price features.
    let fusion: PriceFusion
    /// The price-aware attention over (E)-wide behaviours with a (Z)-wide context.
    var attention: ContextAttentionLayer<T>
    /// (Z × E) purchasing-power projection of the product fusion; (0) otherwise.
    var powerWeight = Tensor<T>.empty
    /// (E) its bias, initialised to 1 so the product starts close to the plain interest.
    var powerBias = Tensor<T>.empty
    /// Gradients of `powerWeight` and `powerBias`.
    var dPowerWeight = Tensor<T>.empty, dPowerBias = Tensor<T>.empty
    /// The prediction MLP `inputWidth → hidden… → 1`.
    var mlp: MLPLayer<T>

    /// E: width of a target or behaviour vector (item ‖ category).
    let itemWidth: Int
    /// D if the user is embedded, else 0.
    let userWidth: Int
    /// Z: width of the purchasing-power vector (0 without price features).
    let priceWidth: Int
    /// Width of the fused block after user ‖ target.
    var fusedWidth: Int { fields.hasPrice && fusion == .concat ? itemWidth + priceWidth : itemWidth }
    /// Width of the MLP input.
    var inputWidth: Int { userWidth + itemWidth + fusedWidth }
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0

    // Per-step buffers (row-major).
    /// Row indices per field, −1 for padding: (B), (B), (B), (B·L), (B·L), and (B) per price embedding.
    var userIndex: [Int] = [], itemIndex: [Int] = [], categoryIndex: [Int] = []
    var histItemIndex: [Int] = [], histCategoryIndex: [Int] = []
    var priceIndex: [[Int]] = []
    /// (B × L) behaviour mask.
    var mask = Tensor<T>.empty
    /// (B × E) targets, (B × L × E) behaviours, (B × Z) purchasing power, (B × E) pooled interest.
    var target = Tensor<T>.empty, behaviours = Tensor<T>.empty, price = Tensor<T>.empty, pooled = Tensor<T>.empty
    /// (B × E) projected purchasing power `p` and fused `s ⊙ p` (product fusion).
    var power = Tensor<T>.empty, fused = Tensor<T>.empty
    /// (B × inputWidth) MLP input, (B × 1) logits, (B) labels.
    var input = Tensor<T>.empty, logits = Tensor<T>.empty, labels = Tensor<T>.empty
    /// Gradient buffers with the shapes of the tensors they are named after.
    var dLogits = Tensor<T>.empty, dInput = Tensor<T>.empty, dTarget = Tensor<T>.empty, dPooled = Tensor<T>.empty
    var dBehaviours = Tensor<T>.empty, dPrice = Tensor<T>.empty, dPower = Tensor<T>.empty, dFused = Tensor<T>.empty

    /// A network with Glorot-initialised layers (attention MLP, then projection, then MLP).
    ///
    /// - Parameters:
    ///   - fields: the slots and dense columns read.
    ///   - dim: embedding width D.
    ///   - hidden: prediction MLP hidden sizes.
    ///   - attentionHidden: attention MLP hidden sizes.
    ///   - activation: the activation of both MLPs.
    ///   - weighting: raw attention scores or their softmax.
    ///   - fusion: concatenation or product.
    ///   - generator: the source of the initial weights.
    init(fields: AttentionPriceFields, dim: Int, hidden: [Int], attentionHidden: [Int], activation: ActivationKind,
         weighting: TargetAttentionWeighting, fusion: PriceFusion, generator: inout SeededGenerator) {
        precondition(dim > 0, "attention-price network: embedding dim must be positive")
        self.fields = fields
        self.dim = dim
        self.fusion = fusion
        itemWidth = dim * (fields.behaviour.category == nil ? 1 : 2)
        userWidth = fields.behaviour.user == nil ? 0 : dim
        priceWidth = fields.priceEmbeddings.count * dim + fields.denseColumns.count
        attention = ContextAttentionLayer(dim: itemWidth, contextWidth: priceWidth, hidden: attentionHidden,
                                          activation: activation, weighting: weighting, generator: &generator)
        if fields.hasPrice && fusion == .product {
            powerWeight = Tensor(gaussian: [priceWidth, itemWidth], std: (2.0 / Double(priceWidth + itemWidth)).squareRoot(),
                                 generator: &generator)
            powerBias = Tensor(shape: [itemWidth], data: [T](repeating: 1, count: itemWidth))
            dPowerWeight = Tensor(zeros: powerWeight.shape)
            dPowerBias = Tensor(zeros: powerBias.shape)
        }
        let fusedWidth = fields.hasPrice && fusion == .concat ? itemWidth + priceWidth : itemWidth
        mlp = MLPLayer(sizes: [userWidth + itemWidth + fusedWidth] + hidden + [1], activation: activation, generator: &generator)
        var count = 0
        visitParameters { _, value, _ in count += value.count }
        parameterCount = count
    }

    /// Embedding tables read → row width.
    var tableDims: [UInt8: Int] { Dictionary(uniqueKeysWithValues: fields.tables.map { ($0, dim) }) }

    /// True when the product fusion's projection is in use.
    var usesProjection: Bool { fields.hasPrice && fusion == .product }

    // MARK: - Forward and backward

    /// Runs the network on a batch; the logits land in `logits` (B × 1).
    ///
    /// - Parameters:
    ///   - batch: every field of `fields`, and (B × denseWidth) dense values holding the
    ///     price columns; sequences left-aligned with their masks.
    ///   - rows: per table, the pulled rows; every real key of the read fields must be there.
    ///   - training: batch statistics in Dice and caches for `backward`.
    mutating func forward(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], training: Bool) {
        let b = batch.size
        let behaviour = fields.behaviour
        let hist = Self.field(batch, behaviour.histItems.name)
        precondition(hist.keys.count == b * hist.length, "attention-price network: field \(behaviour.histItems.name) holds \(hist.keys.count) keys for \(b) × \(hist.length)")
        let l = hist.length

        if let u = behaviour.user { Self.resolve(&userIndex, Self.field(batch, u.name), rows[u.table], u.name) }
        Self.resolve(&itemIndex, Self.field(batch, behaviour.item.name), rows[behaviour.item.table], behaviour.item.name)
        Self.resolve(&histItemIndex, hist, rows[behaviour.histItems.table], behaviour.histItems.name)
        if let c = behaviour.category, let hc = behaviour.histCategories {
            Self.resolve(&categoryIndex, Self.field(batch, c.name), rows[c.table], c.name)
            Self.resolve(&histCategoryIndex, Self.field(batch, hc.name), rows[hc.table], hc.name)
        }
        let embeddings = fields.priceEmbeddings
        if priceIndex.count != embeddings.count { priceIndex = Array(repeating: [], count: embeddings.count) }
        for (k, f) in embeddings.enumerated() { Self.resolve(&priceIndex[k], Self.field(batch, f.name), rows[f.table], f.name) }
        precondition(itemIndex.count == b && priceIndex.allSatisfy { $0.count == b }, "attention-price network: target fields must hold one key per sample")

        mask.resize([b, l])
        for i in 0..<(b * l) { mask.data[i] = hist.mask[i] != 0 ? 1 : 0 }
        target.resize([b, itemWidth])
        behaviours.resize([b, l, itemWidth])
        blockGatherForward(&target, values(rows, behaviour.item.table), indices: itemIndex, column: 0)
        blockGatherForward(&behaviours, values(rows, behaviour.histItems.table), indices: histItemIndex, column: 0)
        if let c = behaviour.category, let hc = behaviour.histCategories {
            blockGatherForward(&target, values(rows, c.table), indices: categoryIndex, column: dim)
            blockGatherForward(&behaviours, values(rows, hc.table), indices: histCategoryIndex, column: dim)
        }
        if fields.hasPrice {
            price.resize([b, priceWidth])
            for (k, f) in embeddings.enumerated() {
                blockGatherForward(&price, values(rows, f.table), indices: priceIndex[k], column: k * dim)
            }
            let first = embeddings.count * dim, columns = fields.denseColumns, w = batch.denseWidth
            precondition(columns.allSatisfy { $0 < w } && batch.dense.count == b * w,
                         "attention-price network: batch has \(w) dense columns, the model reads \(columns)")
            for r in 0..<b {
                for (j, c) in columns.enumerated() { price.data[r * priceWidth + first + j] = T(batch.dense[r * w + c]) }
            }
        } else {
            price = .empty
        }

        attention.forward(&pooled, behaviours: behaviours, target: target, context: price, mask: mask, training: training)

        input.resize([b, inputWidth])
        if let u = behaviour.user { blockGatherForward(&input, values(rows, u.table), indices: userIndex, column: 0) }
        columnBlockForward(&input, target, column: userWidth)
        let fusedColumn = userWidth + itemWidth
        if usesProjection {
            denseForward(&power, price, powerWeight, powerBias)
            elementwiseProductForward(&fused, pooled, power)
            columnBlockForward(&input, fused, column: fusedColumn)
        } else {
            columnBlockForward(&input, pooled, column: fusedColumn)
            if fields.hasPrice { columnBlockForward(&input, price, column: fusedColumn + itemWidth) }
        }
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
        precondition(batchLabels.count == b, "attention-price network: \(batchLabels.count) labels for \(b) logits")
        labels.resize([b])
        for i in 0..<b { labels.data[i] = T(batchLabels[i]) }
        dLogits.resizeZeroed([b, 1])
        let loss = binaryCrossEntropyWithLogits(&dLogits, logits, labels)
        dInput.resizeZeroed([b, inputWidth])
        mlp.backward(&dInput, dLogits)

        let behaviour = fields.behaviour
        var grads: [UInt8: Tensor<T>] = [:]
        for t in fields.tables { grads[t] = Tensor(zeros: [rows[t]?.keys.count ?? 0, dim]) }
        if let u = behaviour.user { blockGatherBackward(&grads[u.table]!, dInput, indices: userIndex, column: 0) }
        dTarget.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dTarget, dInput, column: userWidth)
        dPooled.resizeZeroed([b, itemWidth])
        if fields.hasPrice { dPrice.resizeZeroed([b, priceWidth]) } else { dPrice = .empty }
        let fusedColumn = userWidth + itemWidth
        if usesProjection {
            dFused.resizeZeroed([b, itemWidth])
            columnBlockBackward(&dFused, dInput, column: fusedColumn)
            dPower.resizeZeroed([b, itemWidth])
            elementwiseProductBackward(&dPooled, &dPower, dFused, pooled, power)
            denseBackward(&dPrice, &dPowerWeight, &dPowerBias, dPower, price, powerWeight)
        } else {
            columnBlockBackward(&dPooled, dInput, column: fusedColumn)
            if fields.hasPrice { columnBlockBackward(&dPrice, dInput, column: fusedColumn + itemWidth) }
        }
        dBehaviours.resizeZeroed(behaviours.shape)
        attention.backward(&dBehaviours, &dTarget, &dPrice, dPooled)

        blockGatherBackward(&grads[behaviour.item.table]!, dTarget, indices: itemIndex, column: 0)
        blockGatherBackward(&grads[behaviour.histItems.table]!, dBehaviours, indices: histItemIndex, column: 0)
        if let c = behaviour.category, let hc = behaviour.histCategories {
            blockGatherBackward(&grads[c.table]!, dTarget, indices: categoryIndex, column: dim)
            blockGatherBackward(&grads[hc.table]!, dBehaviours, indices: histCategoryIndex, column: dim)
        }
        for (k, f) in fields.priceEmbeddings.enumerated() {
            blockGatherBackward(&grads[f.table]!, dPrice, indices: priceIndex[k], column: k * dim)
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
        attention.visitParameters { name, value, grad in body("attention." + name, &value, &grad) }
        if usesProjection {
            body("power.weight", &powerWeight, &dPowerWeight)
            body("power.bias", &powerBias, &dPowerBias)
        }
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits the Dice running statistics (not learned; kept by checkpoints, used in inference).
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        attention.visitStatistics { name, value in body("attention." + name, &value) }
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        attention.zeroGradients()
        dPowerWeight.zero()
        dPowerBias.zero()
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
            preconditionFailure("attention-price network: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
        }
        return f
    }

    /// Row index per position of `field` into `table`, −1 where the mask is 0.
    private static func resolve(_ out: inout [Int], _ field: SparseField, _ table: TableRows<T>?, _ name: String) {
        out.removeAll(keepingCapacity: true)
        for i in 0..<field.keys.count {
            if field.mask[i] == 0 { out.append(-1); continue }
            let key = field.keys[i]
            guard let r = table?.index(of: key) else {
                preconditionFailure("attention-price network: key \(FeatureKey(rawValue: key)) of field '\(name)' at position \(i) was not pulled")
            }
            out.append(r)
        }
    }
}

extension AttentionPriceNetwork: FlatStatisticsNetwork {
    static var networkName: String { "attention-price network" }
}
