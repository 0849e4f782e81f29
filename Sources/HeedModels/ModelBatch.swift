/// One named group of sparse features of a batch, padded to a fixed length.
///
/// `keys[b * length + j]` is the j-th key of sample b (a `FeatureKey` raw value whose top
/// 8 bits name the embedding table); `mask` is 1 for real positions and 0 for padding.
/// Sequences are most-recent-last and left-aligned (padding at the end).
public struct SparseField: Sendable {
    /// Positions per sample (1 for single-valued fields).
    public var length: Int
    /// (B × L) feature keys; 0 where padded.
    public var keys: [UInt64]
    /// (B × L) 1 for real positions, 0 for padding.
    public var mask: [Float]

    public init(length: Int, keys: [UInt64], mask: [Float]) {
        self.length = length
        self.keys = keys
        self.mask = mask
    }
}

/// A batch of samples as models consume it: labels, user ids and named sparse fields.
public struct ModelBatch: Sendable {
    /// B, the number of samples.
    public var size: Int
    /// (B) 0/1 labels (or ratings for regression tasks).
    public var labels: [Float]
    /// (B) raw user ids, for per-user metrics (GAUC).
    public var users: [UInt64]
    /// Sparse fields by name (`user`, `item`, `category`, `hist_item`, `hist_category`, ...).
    public var fields: [String: SparseField]
    /// (B × denseWidth) real-valued features (prices, levels), row-major.
    public var dense: [Float]
    /// Number of dense features per sample.
    public var denseWidth: Int

    public init(size: Int, labels: [Float], users: [UInt64], fields: [String: SparseField], dense: [Float] = [], denseWidth: Int = 0) {
        self.size = size
        self.labels = labels
        self.users = users
        self.fields = fields
        self.dense = dense
        self.denseWidth = denseWidth
    }

    /// Every non-padding key of the batch grouped by table, sorted and unique per table:
    /// what a worker pulls before the step. Table id = the key's feature group (top 8 bits).
    public func uniqueKeysByTable() -> [UInt8: [UInt64]] {
        var byTable: [UInt8: [UInt64]] = [:]
        for field in fields.values {
            for (k, m) in zip(field.keys, field.mask) where m != 0 {
                byTable[UInt8(truncatingIfNeeded: k >> 56), default: []].append(k)
            }
        }
        for (t, keys) in byTable {
            byTable[t] = Array(Set(keys)).sorted()
        }
        return byTable
    }
}

/// Embedding rows pulled for one batch, per table, plus each field's positions resolved
/// to row indices.
public struct BatchRows: Sendable {
    /// Per table: the sorted unique keys and their rows.
    public struct Table: Sendable {
        /// (U) sorted unique keys.
        public var keys: [UInt64]
        /// Row length D.
        public var dim: Int
        /// (U × D) row values, keys[i]'s row at values[i*D ..< (i+1)*D].
        public var values: [Float]
        public init(keys: [UInt64], dim: Int, values: [Float]) {
            precondition(values.count == keys.count * dim, "rows: \(values.count) values for \(keys.count) keys × \(dim)")
            self.keys = keys
            self.dim = dim
            self.values = values
        }
        /// Index of `key` in `keys` (binary search), or nil.
        @inlinable
        public func index(of key: UInt64) -> Int? {
            var lo = 0, hi = keys.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if keys[mid] < key { lo = mid + 1 } else { hi = mid }
            }
            return lo < keys.count && keys[lo] == key ? lo : nil
        }
    }

    public var tables: [UInt8: Table]

    public init(tables: [UInt8: Table]) { self.tables = tables }

    /// (B × L) row indices of a field into its table's rows, −1 for padding.
    /// All of a field's keys must come from one table (the model's contract).
    public func indices(of field: SparseField) -> (table: UInt8, indices: [Int32]) {
        var table: UInt8 = 0
        var found = false
        var out = [Int32](repeating: -1, count: field.keys.count)
        for i in field.keys.indices where field.mask[i] != 0 {
            let k = field.keys[i]
            let t = UInt8(truncatingIfNeeded: k >> 56)
            if !found { table = t; found = true }
            precondition(t == table, "field mixes tables \(table) and \(t)")
            guard let idx = tables[t]?.index(of: k) else { preconditionFailure("key \(k) was not pulled") }
            out[i] = Int32(idx)
        }
        return (table, out)
    }
}

/// What one training step of a model returns.
public struct StepOutput: Sendable {
    /// Mean loss over the batch.
    public var loss: Double
    /// (B) predicted probabilities (or scores).
    public var predictions: [Float]
    /// Flat gradient of the dense parameters, in `denseParameters()` order.
    public var denseGradient: [Float]
    /// Per table, (U × D) gradients aligned with `BatchRows.tables[t].keys`.
    public var rowGradients: [UInt8: [Float]]

    public init(loss: Double, predictions: [Float], denseGradient: [Float], rowGradients: [UInt8: [Float]]) {
        self.loss = loss
        self.predictions = predictions
        self.denseGradient = denseGradient
        self.rowGradients = rowGradients
    }
}

/// A recommender the cluster can train: dense weights live on parameter servers as one
/// flat vector; embedding rows are pulled per batch.
public protocol RecommenderModel {
    /// The model's name in configs (`base`, `din`, ...).
    var name: String { get }
    /// Embedding tables the model reads: feature group → row dimension.
    var tableDims: [UInt8: Int] { get }
    /// Length of the flat dense parameter vector.
    var denseParameterCount: Int { get }
    /// Current dense parameters, flattened in a fixed order.
    func denseParameters() -> [Float]
    /// Replaces the dense parameters from a flat vector (after a pull).
    mutating func loadDenseParameters(_ flat: [Float])
    /// Forward and backward on one batch.
    mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput
    /// Forward only (inference mode: no dropout, moving statistics).
    mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float]
}
