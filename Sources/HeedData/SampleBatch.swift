/// Records gathered into fixed-shape, padded matrices: the input of one model step.
///
/// Shapes (B = `size`, L_s = `schema.slots[s].maxLength`, all row-major):
/// - `keys[s]`: (B × L_s) feature keys of slot `s`; row `b` holds the record's keys in
///   stored order at positions `0..<lengths[s][b]` (histories: oldest first, most recent
///   at `lengths[s][b] - 1`), then padding key 0.
/// - `masks[s]`: (B × L_s) 1 where `keys[s]` is a real key, 0 for padding.
/// - `lengths[s]`: (B) real keys per row.
/// - `labels`: (B × schema.labels.count); `dense`: (B × schema.dense.count).
/// - `userIDs`, `itemIDs`, `timestamps`: (B).
public struct SampleBatch: Sendable {
    /// Schema of the gathered records.
    public let schema: SampleSchema
    /// Number of records in the batch (B).
    public private(set) var size = 0
    /// Per slot: (B × L_s) keys, padding key 0.
    public private(set) var keys: [[UInt64]]
    /// Per slot: (B × L_s) 1 = real key, 0 = padding.
    public private(set) var masks: [[Float]]
    /// Per slot: (B) number of real keys.
    public private(set) var lengths: [[Int32]]
    /// (B × labels.count) labels.
    public private(set) var labels: [Float] = []
    /// (B × dense.count) dense features.
    public private(set) var dense: [Float] = []
    /// (B) raw user ids, for per-user metrics such as GAUC.
    public private(set) var userIDs: [UInt64] = []
    /// (B) raw target item ids.
    public private(set) var itemIDs: [UInt64] = []
    /// (B) target timestamps.
    public private(set) var timestamps: [Int64] = []

    /// An empty batch for `schema`.
    public init(schema: SampleSchema) {
        self.schema = schema
        keys = Array(repeating: [], count: schema.slots.count)
        masks = Array(repeating: [], count: schema.slots.count)
        lengths = Array(repeating: [], count: schema.slots.count)
    }

    /// Gathers `records` (any order, repeats allowed) of `shard` into a new batch.
    public static func gather<C: Collection>(from shard: SampleShard, records: C) -> SampleBatch where C.Element == Int {
        var b = SampleBatch(schema: shard.schema)
        b.fill(from: shard, records: records)
        return b
    }

    /// Refills this batch from `records` of `shard`, reusing storage.
    public mutating func fill<C: Collection>(from shard: SampleShard, records: C) where C.Element == Int {
        precondition(shard.schema == schema, "shard schema differs from the batch schema")
        let n = records.count
        size = n
        for s in schema.slots.indices {
            let width = schema.slots[s].maxLength
            keys[s].removeAll(keepingCapacity: true)
            keys[s].append(contentsOf: repeatElement(0, count: n * width))
            masks[s].removeAll(keepingCapacity: true)
            masks[s].append(contentsOf: repeatElement(0, count: n * width))
            var slotLengths = lengths[s]
            lengths[s] = []
            slotLengths.removeAll(keepingCapacity: true)
            slotLengths.reserveCapacity(n)
            // The destination buffers are opened once per slot, not once per record.
            keys[s].withUnsafeMutableBufferPointer { dst in
                masks[s].withUnsafeMutableBufferPointer { m in
                    var row = 0
                    for r in records {
                        let len = shard.withKeys(slot: s, record: r) { src -> Int in
                            // Safe: src.count <= width, validated when the shard was opened; row < n.
                            if let from = src.baseAddress, src.count > 0 { (dst.baseAddress! + row * width).update(from: from, count: src.count) }
                            return src.count
                        }
                        (m.baseAddress! + row * width).update(repeating: 1, count: len)
                        slotLengths.append(Int32(len))
                        row += 1
                    }
                }
            }
            lengths[s] = slotLengths
        }
        labels.removeAll(keepingCapacity: true)
        dense.removeAll(keepingCapacity: true)
        userIDs.removeAll(keepingCapacity: true)
        itemIDs.removeAll(keepingCapacity: true)
        timestamps.removeAll(keepingCapacity: true)
        for r in records {
            shard.appendLabels(r, to: &labels)
            shard.appendDense(r, to: &dense)
            userIDs.append(shard.userID(r))
            itemIDs.append(shard.itemID(r))
            timestamps.append(shard.timestamp(r))
        }
    }

    /// Sorted distinct non-padding keys of all slots: what a worker pulls for this batch.
    public func uniqueKeys() -> [UInt64] {
        var all: [UInt64] = []
        all.reserveCapacity(keys.reduce(0) { $0 + $1.count })
        for k in keys { for v in k where v != 0 { all.append(v) } }
        all.sort()
        var out: [UInt64] = []
        out.reserveCapacity(all.count)
        for v in all where out.last != v { out.append(v) }
        return out
    }
}
