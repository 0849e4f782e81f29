import Foundation
import HeedCore

/// A memory-mapped, validated sample shard (see `ShardLayout` for the bytes).
///
/// Opening checks magic, version, header CRC, schema, section bounds, offsets and (by
/// default) the payload CRC; any problem is a `HeedError(.corrupt)` naming the file.
/// Accessors take a record index in `0..<count` and a slot index into `schema.slots`.
///
/// Version 1 shards store every key per record. Version 2 (compact) shards store only each
/// record's target event and item and derive the rest from the dataset's sequence file and
/// item catalog beside them (`CompactRecords`); the accessors return the same values for
/// both versions.
public final class SampleShard: @unchecked Sendable {
    // Sendable: all state is immutable after init and the mapping is read-only.
    /// Path of the shard file.
    public let path: String
    /// Format version read from the header.
    public let version: Int
    /// Number of records.
    public let count: Int
    /// The records' schema.
    public let schema: SampleSchema
    /// Payload CRC-32 stored in the header.
    public let payloadCRC: UInt32
    /// File size in bytes.
    public var fileBytes: Int { file.count }

    private let file: MappedFile
    private let userOffset: Int, itemOffset: Int, timeOffset: Int, labelOffset: Int, denseOffset: Int
    private let slotOffsets: [Int]   // byte offset of each slot's offsets section
    private let slotKeys: [Int]      // byte offset of each slot's keys section
    private let slotKeyCounts: [Int] // keys in each slot's keys section
    private let labelCount: Int, denseCount: Int
    /// Version 2 only: how records are derived.
    private let compact: CompactRecords?

    /// Opens and validates `path`; `verifyChecksum: false` skips only the payload CRC pass
    /// (of the shard and, for version 2, of the side files it opens).
    public init(path: String, verifyChecksum: Bool = true) throws {
        self.path = path
        let c = try SectionedFile(path: path, magic: ShardLayout.magic, what: "sample shard",
                                  versions: ShardLayout.readableVersions, verifyChecksum: verifyChecksum)
        func corrupt(_ what: String) -> HeedError { HeedError(.corrupt, "\(path): \(what)") }
        let size = c.file.count
        let n = c.recordCount
        guard n <= size / 8 else { throw corrupt("record count \(n) is impossible for \(size) bytes") }
        let schema: SampleSchema
        do { schema = try JSONDecoder().decode(SampleSchema.self, from: c.json) } catch {
            throw HeedError(.corrupt, "\(path): schema JSON in the header does not decode", cause: error)
        }
        // Recompute the expected layout from count + schema and compare to the stored table.
        let entries = c.sections
        let expected: ShardLayout
        if c.version == ShardLayout.version {
            let keyTotals = schema.slots.indices.map { s in entries.first { $0.kind == .keys && $0.slot == s }.map { $0.length / 8 } ?? -1 }
            expected = ShardLayout(schema: schema, schemaJSONBytes: c.json.count, recordCount: n, keysPerSlot: keyTotals)
        } else {
            expected = ShardLayout(compactRecords: n, schemaJSONBytes: c.json.count)
        }
        guard expected.sections == entries, expected.headerBytes == c.headerBytes, expected.fileBytes == size else {
            throw corrupt("section table does not match \(n) records of the stored schema")
        }
        self.file = c.file
        self.version = Int(c.version)
        self.count = n
        self.schema = schema
        self.payloadCRC = c.payloadCRC
        labelCount = schema.labels.count
        denseCount = schema.dense.count
        if c.version == ShardLayout.version {
            userOffset = entries[0].offset
            itemOffset = entries[1].offset
            timeOffset = entries[2].offset
            labelOffset = entries[3].offset
            denseOffset = entries[4].offset
            slotOffsets = schema.slots.indices.map { entries[5 + 2 * $0].offset }
            slotKeys = schema.slots.indices.map { entries[6 + 2 * $0].offset }
            slotKeyCounts = schema.slots.indices.map { entries[6 + 2 * $0].length / 8 }
            compact = nil
            try validateOffsets()
        } else {
            (userOffset, itemOffset, timeOffset, labelOffset, denseOffset) = (0, 0, 0, 0, 0)
            (slotOffsets, slotKeys, slotKeyCounts) = ([], [], [])
            compact = try CompactRecords(shardPath: path, file: c.file, sections: entries, count: n, schema: schema, verifyChecksum: verifyChecksum)
        }
    }

    /// Checks every slot's offsets: start at 0, never decrease, end at the key count, lengths within bounds.
    private func validateOffsets() throws {
        for (s, slot) in schema.slots.enumerated() {
            let keyTotal = slotKeyCounts[s]
            let bad: Int? = file.withBytes { raw -> Int? in
                var prev: UInt64 = 0
                for r in 0...count {
                    let o = UInt64(littleEndian: raw.load(fromByteOffset: slotOffsets[s] + r * 8, as: UInt64.self))
                    if r == 0 { if o != 0 { return 0 }; continue }
                    guard o >= prev, o - prev <= UInt64(slot.maxLength), slot.kind == .sequence || o - prev == 1 else { return r - 1 }
                    prev = o
                }
                return prev == UInt64(keyTotal) ? nil : count
            }
            if let bad {
                throw HeedError(.corrupt, "\(path): slot '\(slot.name)' has invalid key offsets at record \(bad) (kind \(slot.kind.rawValue), max length \(slot.maxLength), \(keyTotal) keys)")
            }
        }
    }

    /// Raw user id of `record` (see `SampleRecord.userID`).
    public func userID(_ record: Int) -> UInt64 {
        if let compact { check(record); return compact.userID(record) }
        return word(userOffset, record)
    }

    /// Raw target item id of `record`.
    public func itemID(_ record: Int) -> UInt64 {
        if let compact { check(record); return compact.itemID(record) }
        return word(itemOffset, record)
    }

    /// Target event time of `record`, Unix seconds (0 without timestamps).
    public func timestamp(_ record: Int) -> Int64 {
        if let compact { check(record); return compact.timestamp(record) }
        return Int64(bitPattern: word(timeOffset, record))
    }

    /// Label `index` of `record`.
    public func label(_ record: Int, _ index: Int) -> Float {
        precondition(record >= 0 && record < count && index >= 0 && index < labelCount, "label index out of range")
        if let compact { return compact.label(record, index) }
        return file.withBytes { Float(bitPattern: UInt32(littleEndian: $0.load(fromByteOffset: labelOffset + (record * labelCount + index) * 4, as: UInt32.self))) }
    }

    /// All labels of `record`, in `schema.labels` order.
    public func labels(_ record: Int) -> [Float] { (0..<labelCount).map { label(record, $0) } }

    /// Appends the labels of `record` to `out` (the batch gatherer's path; no array per record).
    public func appendLabels(_ record: Int, to out: inout [Float]) {
        appendFloats(record, sectionOffset: labelOffset, width: labelCount, to: &out) { label(record, $0) }
    }

    /// Dense value `index` of `record`.
    public func denseValue(_ record: Int, _ index: Int) -> Float {
        precondition(record >= 0 && record < count && index >= 0 && index < denseCount, "dense index out of range")
        if let compact { return compact.denseValue(record, index) }
        return file.withBytes { Float(bitPattern: UInt32(littleEndian: $0.load(fromByteOffset: denseOffset + (record * denseCount + index) * 4, as: UInt32.self))) }
    }

    /// All dense values of `record`, in `schema.dense` order.
    public func dense(_ record: Int) -> [Float] { (0..<denseCount).map { denseValue(record, $0) } }

    /// Appends the dense values of `record` to `out`.
    public func appendDense(_ record: Int, to out: inout [Float]) {
        appendFloats(record, sectionOffset: denseOffset, width: denseCount, to: &out) { denseValue(record, $0) }
    }

    /// Appends `record`'s `width` Float32 values of a per-record section (labels or dense) to
    /// `out`: copied from the stored section, or derived one by one (`derived`) for a compact shard.
    private func appendFloats(_ record: Int, sectionOffset: Int, width: Int, to out: inout [Float], derived: (Int) -> Float) {
        if compact != nil { for i in 0..<width { out.append(derived(i)) }; return }
        check(record)
        file.withBytes { raw in
            // Safe: the section holds count × width Float32 values, 64-byte aligned.
            let p = (raw.baseAddress! + sectionOffset).assumingMemoryBound(to: Float.self) + record * width
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: width))
        }
    }

    /// Number of keys `record` has in `slot`.
    public func keyCount(slot: Int, record: Int) -> Int {
        if let compact { check(record, slot); return compact.keyCount(slot: slot, record: record) }
        let (a, b) = keyRange(slot, record)
        return b - a
    }

    /// Runs `body` with the keys of `record` in `slot` (a view into the mapping, or for keys a
    /// compact shard computes, into a temporary buffer; do not let it escape).
    public func withKeys<R>(slot: Int, record: Int, _ body: (UnsafeBufferPointer<UInt64>) throws -> R) rethrows -> R {
        if let compact { check(record, slot); return try compact.withKeys(slot: slot, record: record, body) }
        let (a, b) = keyRange(slot, record)
        return try file.withBytes { raw in
            // Safe: offsets were validated at open to lie within the keys section, which is 8-aligned.
            let p = (raw.baseAddress! + slotKeys[slot] + a * 8).assumingMemoryBound(to: UInt64.self)
            return try body(UnsafeBufferPointer(start: p, count: b - a))
        }
    }

    /// A copy of the keys of `record` in `slot`.
    public func keys(slot: Int, record: Int) -> [UInt64] { withKeys(slot: slot, record: record) { Array($0) } }

    /// Runs `body` with all labels, (count × labelCount) row-major (for a compact shard, a
    /// copy made for the call).
    public func withLabels<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if compact != nil {
            var all: [Float] = []
            all.reserveCapacity(count * labelCount)
            for r in 0..<count { appendLabels(r, to: &all) }
            return try all.withUnsafeBufferPointer(body)
        }
        return try file.withBytes { raw in
            // Safe: the labels section holds count × labelCount Float32 values, 64-byte aligned.
            try body(UnsafeBufferPointer(start: (raw.baseAddress! + labelOffset).assumingMemoryBound(to: Float.self), count: count * labelCount))
        }
    }

    /// Runs `body` with all dense values, (count × denseCount) row-major (a copy for a compact shard).
    public func withDense<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if compact != nil {
            var all: [Float] = []
            all.reserveCapacity(count * denseCount)
            for r in 0..<count { appendDense(r, to: &all) }
            return try all.withUnsafeBufferPointer(body)
        }
        return try file.withBytes { raw in
            // Safe: the dense section holds count × denseCount Float32 values, 64-byte aligned.
            try body(UnsafeBufferPointer(start: (raw.baseAddress! + denseOffset).assumingMemoryBound(to: Float.self), count: count * denseCount))
        }
    }

    @inline(__always)
    private func check(_ record: Int, _ slot: Int = 0) {
        precondition(record >= 0 && record < count && slot >= 0 && slot < schema.slots.count, "slot/record out of range")
    }

    private func word(_ section: Int, _ record: Int) -> UInt64 {
        precondition(record >= 0 && record < count, "record \(record) out of range 0..<\(count)")
        return file.withBytes { UInt64(littleEndian: $0.load(fromByteOffset: section + record * 8, as: UInt64.self)) }
    }

    private func keyRange(_ slot: Int, _ record: Int) -> (Int, Int) {
        precondition(record >= 0 && record < count && slot >= 0 && slot < slotOffsets.count, "slot/record out of range")
        return file.withBytes { raw in
            let base = slotOffsets[slot] + record * 8
            return (Int(UInt64(littleEndian: raw.load(fromByteOffset: base, as: UInt64.self))),
                    Int(UInt64(littleEndian: raw.load(fromByteOffset: base + 8, as: UInt64.self))))
        }
    }
}

/// Eight hex digits.
func hex(_ v: UInt32) -> String { String(format: "%08x", v) }
