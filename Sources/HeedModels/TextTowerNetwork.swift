import HeedCore
import HeedData
import HeedLayers

/// The `text-tower` network (source document 4), generic over the scalar type so the model
/// that trains in Float is the one gradient-checked in Double.
///
/// An item's tower output is its id embedding (and category embedding, when the data has
/// categories) next to its projected text vector:
/// `x_i = e_item(i) ‖ e_cat(i) ‖ (t_i · W + b)`, width E = D·(1 + has category) + D, where
/// `t_i` (Dt) is the item's row in the item-text table (pre-trained sentence embedding on
/// the servers, fine-tuned through the CTR loss unless frozen). Per sample b:
/// - target `v_b = x_{item_b}`;
/// - user side `p_b` = masked sum/mean of `x_j` over the behaviour items (`hist_items`);
/// - MLP input `[u_b ‖ v_b ‖ p_b]` (u_b the user embedding, if used) → hidden… → 1 logit,
///   i.e. `P_ui = sigmoid(MLP(x_u ⊕ x_i))`;
/// - loss = mean binary cross-entropy with logits.
///
/// The item-text keys are the item keys moved to `FeatureGroup.itemText`, carried in the
/// derived fields `item_text` and `hist_item_text` (`deriveTextFields`). Dense parameters,
/// in flat-vector order: `projection.weight` (Dt × D), `projection.bias` (D), then `mlp.…`.
struct TextTowerNetwork<T: Real>: Sendable {
    /// Name of the derived target text field.
    static var targetTextField: String { "item_text" }
    /// Name of the derived behaviour text field (aligned with `hist_items`).
    static var historyTextField: String { "hist_item_text" }

    /// The id slots read (user, item, category, behaviours) and their tables.
    let fields: BehaviourFields
    /// Table of the item-text rows.
    let textTable: UInt8
    /// Embedding width D of the id tables and of the projected text.
    let dim: Int
    /// Width Dt of the item-text rows.
    let textDim: Int
    /// Sum or mean pooling of the behaviours.
    let pooling: PoolingMode
    /// Pre-trained text rows → D.
    var projection: TextProjection<T>
    /// The prediction MLP `inputWidth → hidden… → 1`.
    var mlp: MLPLayer<T>

    /// E: width of one item's tower output.
    let itemWidth: Int
    /// Column of the projected text inside an item's tower output.
    var textColumn: Int { itemWidth - dim }
    /// D if the user is embedded, else 0.
    let userWidth: Int
    /// Width of the MLP input: user ‖ target ‖ pooled.
    var inputWidth: Int { userWidth + 2 * itemWidth }
    /// Length of the flat dense parameter vector.
    private(set) var parameterCount = 0

    // Per-step buffers (row-major).
    /// Row indices per field, −1 for padding: (B) user, item, category, item text;
    /// (B·L) behaviour items, categories, texts.
    var userIndex: [Int] = [], itemIndex: [Int] = [], categoryIndex: [Int] = [], textIndex: [Int] = []
    var histItemIndex: [Int] = [], histCategoryIndex: [Int] = [], histTextIndex: [Int] = []
    /// (B × L) behaviour mask.
    var mask = Tensor<T>.empty
    /// (U_text × D) projected text rows.
    var projected = Tensor<T>.empty
    /// (B × E) target tower outputs.
    var target = Tensor<T>.empty
    /// (B × L × E) behaviour tower outputs (zeros at padding).
    var behaviours = Tensor<T>.empty
    /// (B × E) pooled behaviours.
    var pooled = Tensor<T>.empty
    /// (B × inputWidth) MLP input.
    var input = Tensor<T>.empty
    /// (B × 1) logits of the last forward.
    var logits = Tensor<T>.empty
    /// (B) labels of the last backward.
    var labels = Tensor<T>.empty
    /// Gradient buffers with the shapes of `logits`, `input`, `target`, `pooled`,
    /// `behaviours`, `projected`.
    var dLogits = Tensor<T>.empty, dInput = Tensor<T>.empty, dTarget = Tensor<T>.empty
    var dPooled = Tensor<T>.empty, dBehaviours = Tensor<T>.empty, dProjected = Tensor<T>.empty

    /// A network with a Glorot-initialised projection (drawn first) and MLP.
    ///
    /// - Parameters:
    ///   - fields: the id slots read.
    ///   - textTable: the item-text table id (`FeatureGroup.itemText`).
    ///   - dim: embedding width D.
    ///   - textDim: item-text row width Dt.
    ///   - hidden: prediction MLP hidden sizes.
    ///   - activation: the MLP's activation (Dice, PReLU, …).
    ///   - pooling: sum or mean over the behaviours.
    ///   - generator: the source of the initial weights.
    init(fields: BehaviourFields, textTable: UInt8, dim: Int, textDim: Int, hidden: [Int], activation: ActivationKind,
         pooling: PoolingMode, generator: inout SeededGenerator) {
        precondition(dim > 0 && textDim > 0, "text tower: widths must be positive")
        precondition(!fields.tables.contains(textTable), "text tower: the text table \(textTable) must differ from the id tables")
        self.fields = fields
        self.textTable = textTable
        self.dim = dim
        self.textDim = textDim
        self.pooling = pooling
        itemWidth = dim * (fields.category == nil ? 2 : 3)
        userWidth = fields.user == nil ? 0 : dim
        projection = TextProjection(inputWidth: textDim, outputWidth: dim, generator: &generator)
        mlp = MLPLayer(sizes: [userWidth + 2 * itemWidth] + hidden + [1], activation: activation, generator: &generator)
        var count = 0
        visitParameters { _, value, _ in count += value.count }
        parameterCount = count
    }

    /// Embedding tables read → row width (the id tables D, the text table Dt).
    var tableDims: [UInt8: Int] {
        var dims = Dictionary(uniqueKeysWithValues: fields.tables.map { ($0, dim) })
        dims[textTable] = textDim
        return dims
    }

    /// Field names a batch must hold: the id slots, then the two derived text fields.
    var fieldNames: [String] { fields.names + [Self.targetTextField, Self.historyTextField] }

    /// Adds `item_text` and `hist_item_text` to a batch that holds `item` and `hist_items`:
    /// the same positions and masks, each key moved to `table` (top byte replaced).
    static func deriveTextFields(_ batch: inout ModelBatch, fields: BehaviourFields, table: UInt8) {
        func moved(_ field: SparseField) -> SparseField {
            let group = UInt64(table) << FeatureKey.hashBits
            // Padding stays key 0 (never pulled: its mask is 0).
            let keys = field.keys.map { $0 == 0 ? 0 : ($0 & FeatureKey.hashMask) | group }
            return SparseField(length: field.length, keys: keys, mask: field.mask)
        }
        batch.fields[targetTextField] = moved(field(batch, fields.item.name))
        batch.fields[historyTextField] = moved(field(batch, fields.histItems.name))
    }

    // MARK: - Forward and backward

    /// Runs the network on a batch; the logits land in `logits` (B × 1).
    ///
    /// - Parameters:
    ///   - batch: must hold every field of `fieldNames`; sequences left-aligned with masks.
    ///   - rows: per table, the pulled rows; every real key of the read fields must be there.
    ///   - training: batch statistics in Dice and caches for `backward`.
    mutating func forward(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], training: Bool) {
        let b = batch.size
        let hist = Self.field(batch, fields.histItems.name)
        precondition(hist.keys.count == b * hist.length, "text tower: field \(fields.histItems.name) holds \(hist.keys.count) keys for \(b) × \(hist.length)")
        let l = hist.length

        if let u = fields.user { Self.resolve(&userIndex, Self.field(batch, u.name), rows[u.table], u.name) }
        Self.resolve(&itemIndex, Self.field(batch, fields.item.name), rows[fields.item.table], fields.item.name)
        Self.resolve(&histItemIndex, hist, rows[fields.histItems.table], fields.histItems.name)
        Self.resolve(&textIndex, Self.field(batch, Self.targetTextField), rows[textTable], Self.targetTextField)
        Self.resolve(&histTextIndex, Self.field(batch, Self.historyTextField), rows[textTable], Self.historyTextField)
        if let c = fields.category, let hc = fields.histCategories {
            Self.resolve(&categoryIndex, Self.field(batch, c.name), rows[c.table], c.name)
            Self.resolve(&histCategoryIndex, Self.field(batch, hc.name), rows[hc.table], hc.name)
        }
        precondition(itemIndex.count == b && textIndex.count == b && histTextIndex.count == b * l,
                     "text tower: target fields must hold one key per sample and text fields must align with the items")

        mask.resize([b, l])
        for i in 0..<(b * l) { mask.data[i] = hist.mask[i] != 0 ? 1 : 0 }

        projection.forward(&projected, textRows(rows))

        input.resize([b, inputWidth])
        target.resize([b, itemWidth])
        behaviours.resize([b, l, itemWidth])
        if let u = fields.user { blockGatherForward(&input, values(rows, u.table, dim), indices: userIndex, column: 0) }
        blockGatherForward(&target, values(rows, fields.item.table, dim), indices: itemIndex, column: 0)
        blockGatherForward(&behaviours, values(rows, fields.histItems.table, dim), indices: histItemIndex, column: 0)
        if let c = fields.category, let hc = fields.histCategories {
            blockGatherForward(&target, values(rows, c.table, dim), indices: categoryIndex, column: dim)
            blockGatherForward(&behaviours, values(rows, hc.table, dim), indices: histCategoryIndex, column: dim)
        }
        blockGatherForward(&target, projected, indices: textIndex, column: textColumn)
        blockGatherForward(&behaviours, projected, indices: histTextIndex, column: textColumn)

        maskedSequencePoolForward(&pooled, behaviours, mask, mode: pooling)
        columnBlockForward(&input, target, column: userWidth)
        columnBlockForward(&input, pooled, column: userWidth + itemWidth)
        mlp.forward(&logits, input, training: training)
    }

    /// Back-propagates the mean binary cross-entropy of the last (training) forward.
    ///
    /// - Parameters:
    ///   - batchLabels: (B) 0/1 labels.
    ///   - rows: the rows given to `forward`.
    /// - Returns: the mean loss and, per table read, row gradients aligned with
    ///   `rows[t].keys`: (U × D) for the id tables, (U × Dt) for the text table.
    mutating func backward(labels batchLabels: [Float], rows: [UInt8: TableRows<T>]) -> (loss: Double, rowGradients: [UInt8: Tensor<T>]) {
        let b = logits.rows
        precondition(batchLabels.count == b, "text tower: \(batchLabels.count) labels for \(b) logits")
        labels.resize([b])
        for i in 0..<b { labels.data[i] = T(batchLabels[i]) }
        dLogits.resizeZeroed([b, 1])
        let loss = binaryCrossEntropyWithLogits(&dLogits, logits, labels)
        dInput.resizeZeroed([b, inputWidth])
        mlp.backward(&dInput, dLogits)

        var grads: [UInt8: Tensor<T>] = [:]
        for t in fields.tables { grads[t] = Tensor(zeros: [rows[t]?.keys.count ?? 0, dim]) }
        let text = textRows(rows)
        grads[textTable] = Tensor(zeros: [text.rows, textDim])
        if let u = fields.user { blockGatherBackward(&grads[u.table]!, dInput, indices: userIndex, column: 0) }
        dTarget.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dTarget, dInput, column: userWidth)
        dPooled.resizeZeroed([b, itemWidth])
        columnBlockBackward(&dPooled, dInput, column: userWidth + itemWidth)
        dBehaviours.resizeZeroed(behaviours.shape)
        maskedSequencePoolBackward(&dBehaviours, dPooled, mask, mode: pooling)

        blockGatherBackward(&grads[fields.item.table]!, dTarget, indices: itemIndex, column: 0)
        blockGatherBackward(&grads[fields.histItems.table]!, dBehaviours, indices: histItemIndex, column: 0)
        if let c = fields.category, let hc = fields.histCategories {
            blockGatherBackward(&grads[c.table]!, dTarget, indices: categoryIndex, column: dim)
            blockGatherBackward(&grads[hc.table]!, dBehaviours, indices: histCategoryIndex, column: dim)
        }
        dProjected.resizeZeroed([text.rows, dim])
        blockGatherBackward(&dProjected, dTarget, indices: textIndex, column: textColumn)
        blockGatherBackward(&dProjected, dBehaviours, indices: histTextIndex, column: textColumn)
        projection.backward(&grads[textTable]!, dProjected, text)
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
        projection.visitParameters { name, value, grad in body("projection." + name, &value, &grad) }
        mlp.visitParameters { name, value, grad in body("mlp." + name, &value, &grad) }
    }

    /// Visits the Dice running statistics (not learned; kept by checkpoints and used in inference).
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<T>) -> Void) {
        mlp.visitStatistics { name, value in body("mlp." + name, &value) }
    }

    /// Sets every dense gradient to zero.
    mutating func zeroGradients() {
        projection.zeroGradients()
        mlp.zeroGradients()
    }

    // MARK: - Helpers

    /// The (U × Dt) text rows, or (0 × Dt) when none were pulled.
    private func textRows(_ rows: [UInt8: TableRows<T>]) -> Tensor<T> {
        rows[textTable]?.values ?? Tensor(zeros: [0, textDim])
    }

    /// The (U × width) values of table `t`, or (0 × width) when nothing of it was pulled.
    private func values(_ rows: [UInt8: TableRows<T>], _ t: UInt8, _ width: Int) -> Tensor<T> {
        rows[t]?.values ?? Tensor(zeros: [0, width])
    }

    /// The batch's field `name`; its absence is a programmer error (the adapter builds
    /// batches from the schema the model was made for and derives the text fields).
    private static func field(_ batch: ModelBatch, _ name: String) -> SparseField {
        guard let f = batch.fields[name] else {
            preconditionFailure("text tower: batch has no field '\(name)' (has: \(batch.fields.keys.sorted().joined(separator: ", ")))")
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
                preconditionFailure("text tower: key \(FeatureKey(rawValue: key)) of field '\(name)' at position \(i) was not pulled")
            }
            out.append(r)
        }
    }
}

extension TextTowerNetwork: FlatStatisticsNetwork {
    static var networkName: String { "text tower" }
}
