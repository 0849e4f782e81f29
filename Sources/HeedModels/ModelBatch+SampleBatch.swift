import HeedCore
import HeedData

extension ModelBatch {
    /// Views a HeedData batch as a model batch: one field per slot (named as the slot),
    /// labels from the label column `labelName`, users from the records' user ids.
    ///
    /// Keys, masks, user ids and dense features are shared with `sampleBatch` (copy-on-write
    /// arrays, no copy); only the (B) label column is extracted.
    ///
    /// - Parameters:
    ///   - sampleBatch: padded records.
    ///   - labelName: a label of the schema (`click`, `purchase`, …).
    ///   - fields: slots to keep (e.g. a model's `inputFields`), or nil for all of them.
    /// - Throws: `HeedError(.invalidInput)` naming the unknown label or slot.
    public init(sampleBatch: SampleBatch, labelName: String, fields: [String]? = nil) throws {
        let schema = sampleBatch.schema
        guard let li = schema.labelIndex(labelName) else {
            throw HeedError(.invalidInput, "label '\(labelName)' is not in the dataset (labels: \(schema.labels.joined(separator: ", ")))")
        }
        var slotIndices: [Int] = []
        if let fields {
            for name in fields {
                guard let s = schema.slotIndex(name) else {
                    throw HeedError(.invalidInput, "slot '\(name)' is not in the dataset (slots: \(schema.slots.map(\.name).joined(separator: ", ")))")
                }
                slotIndices.append(s)
            }
        } else {
            slotIndices = Array(schema.slots.indices)
        }
        let b = sampleBatch.size, nl = schema.labels.count
        var labels = [Float](repeating: 0, count: b)
        sampleBatch.labels.withUnsafeBufferPointer { all in
            // Safe: SampleBatch holds (B × labels.count) labels and li < labels.count.
            for r in 0..<b { labels[r] = all[r * nl + li] }
        }
        var byName: [String: SparseField] = [:]
        byName.reserveCapacity(slotIndices.count)
        for s in slotIndices {
            byName[schema.slots[s].name] = SparseField(length: schema.slots[s].maxLength, keys: sampleBatch.keys[s], mask: sampleBatch.masks[s])
        }
        self.init(size: b, labels: labels, users: sampleBatch.userIDs, fields: byName,
                  dense: sampleBatch.dense, denseWidth: schema.dense.count)
    }
}
