import Foundation
import HeedCore

/// A memory-mapped, validated sample shard (see `ShardLayout` for the bytes).
///
/// Opening checks magic, version, header CRC, schema, section bounds, offsets and (by
/// default) the payload CRC; any problem is a `HeedError(.corrupt)` naming the file.
/// Accessors take a record index in `0..<count` and a slot index into `schema.slots`.
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

    /// Opens and validates `path`; `verifyChecksum: false` skips only the payload CRC pass.
    public init(path: String, verifyChecksum: Bool = true) throws {
        self.path = path
        let file = try MappedFile(path: path)
        func corrupt(_ what: String) -> HeedError { HeedError(.corrupt, "\(path): \(what)") }
        let size = file.count
        guard size >= ShardLayout.fixedHeaderBytes else {
            throw corrupt("file of \(size) bytes is too short for a sample shard header (\(ShardLayout.fixedHeaderBytes) bytes)")
        }
        let head = file.withBytes { raw -> (magic: [UInt8], version: UInt32, headerBytes: Int, count: UInt64, payload: UInt64, crc: UInt32, schemaBytes: Int, sections: Int, headerCRC: UInt32) in
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            return (Array(raw[0..<8]), u32(8), Int(u32(12)), u64(16), u64(24), u32(32), Int(u32(36)), Int(u32(40)), u32(44))
        }
        guard head.magic == ShardLayout.magic else {
            throw corrupt("not a Heed sample shard (magic \(head.magic.map { String(format: "%02x", $0) }.joined()), expected \"HEEDSMPL\")")
        }
        guard head.version == ShardLayout.version else {
            throw HeedError(.unsupported, "\(path): sample shard format version \(head.version) is not supported (this build reads version \(ShardLayout.version))")
        }
        guard head.headerBytes >= ShardLayout.fixedHeaderBytes, head.headerBytes <= size,
              ShardLayout.fixedHeaderBytes + head.sections * ShardLayout.sectionEntryBytes + head.schemaBytes <= head.headerBytes else {
            throw corrupt("header size \(head.headerBytes) with \(head.sections) sections and \(head.schemaBytes) schema bytes does not fit the file (\(size) bytes)")
        }
        let headerCRC = file.withBytes { raw -> UInt32 in
            var c = CRC32()
            c.update(UnsafeRawBufferPointer(rebasing: raw[0..<44]))
            c.update([0, 0, 0, 0])
            c.update(UnsafeRawBufferPointer(rebasing: raw[48..<head.headerBytes]))
            return c.value
        }
        guard headerCRC == head.headerCRC else {
            throw corrupt("header checksum mismatch (stored \(hex(head.headerCRC)), computed \(hex(headerCRC)))")
        }
        guard UInt64(head.headerBytes) + head.payload == UInt64(size) else {
            throw corrupt("file is \(size) bytes but the header says \(head.headerBytes) + \(head.payload) (truncated or extended)")
        }
        guard head.count <= UInt64(size / 8) else { throw corrupt("record count \(head.count) is impossible for \(size) bytes") }
        let n = Int(head.count)
        let schemaStart = ShardLayout.fixedHeaderBytes + head.sections * ShardLayout.sectionEntryBytes
        let schemaData = file.withBytes { Data($0[schemaStart..<(schemaStart + head.schemaBytes)]) }
        let schema: SampleSchema
        do { schema = try JSONDecoder().decode(SampleSchema.self, from: schemaData) } catch {
            throw HeedError(.corrupt, "\(path): schema JSON in the header does not decode", cause: error)
        }
        // Recompute the expected layout from count + schema and compare to the stored table.
        let entries: [ShardLayout.Section] = try (0..<head.sections).map { i in
            let at = ShardLayout.fixedHeaderBytes + i * ShardLayout.sectionEntryBytes
            let (k, s, o, l) = file.withBytes { raw in
                (UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)),
                 UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)),
                 UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self)),
                 UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 16, as: UInt64.self)))
            }
            guard let kind = ShardLayout.SectionKind(rawValue: k), o <= UInt64(size), l <= UInt64(size) - o,
                  Int(o) % ShardLayout.alignment == 0 else {
                throw corrupt("section \(i) (kind \(k), offset \(o), length \(l)) is invalid for a \(size)-byte file")
            }
            return ShardLayout.Section(kind: kind, slot: Int(s), offset: Int(o), length: Int(l))
        }
        let keyTotals = schema.slots.indices.map { s in entries.first { $0.kind == .keys && $0.slot == s }.map { $0.length / 8 } ?? -1 }
        let expected = ShardLayout(schema: schema, schemaJSONBytes: head.schemaBytes, recordCount: n, keysPerSlot: keyTotals)
        guard expected.sections == entries, expected.headerBytes == head.headerBytes, expected.fileBytes == size else {
            throw corrupt("section table does not match \(n) records of the stored schema")
        }
        if verifyChecksum {
            let crc = file.withBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[head.headerBytes...])) }
            guard crc == head.crc else {
                throw corrupt("payload checksum mismatch (stored \(hex(head.crc)), computed \(hex(crc)))")
            }
        }
        self.file = file
        self.version = Int(head.version)
        self.count = n
        self.schema = schema
        self.payloadCRC = head.crc
        userOffset = entries[0].offset
        itemOffset = entries[1].offset
        timeOffset = entries[2].offset
        labelOffset = entries[3].offset
        denseOffset = entries[4].offset
        slotOffsets = schema.slots.indices.map { entries[5 + 2 * $0].offset }
        slotKeys = schema.slots.indices.map { entries[6 + 2 * $0].offset }
        slotKeyCounts = schema.slots.indices.map { entries[6 + 2 * $0].length / 8 }
        labelCount = schema.labels.count
        denseCount = schema.dense.count
        try validateOffsets()
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
    public func userID(_ record: Int) -> UInt64 { word(userOffset, record) }

    /// Raw target item id of `record`.
    public func itemID(_ record: Int) -> UInt64 { word(itemOffset, record) }

    /// Target event time of `record`, Unix seconds (0 without timestamps).
    public func timestamp(_ record: Int) -> Int64 { Int64(bitPattern: word(timeOffset, record)) }

    /// Label `index` of `record`.
    public func label(_ record: Int, _ index: Int) -> Float {
        precondition(record >= 0 && record < count && index >= 0 && index < labelCount, "label index out of range")
        return file.withBytes { Float(bitPattern: UInt32(littleEndian: $0.load(fromByteOffset: labelOffset + (record * labelCount + index) * 4, as: UInt32.self))) }
    }

    /// All labels of `record`, in `schema.labels` order.
    public func labels(_ record: Int) -> [Float] { (0..<labelCount).map { label(record, $0) } }

    /// Dense value `index` of `record`.
    public func denseValue(_ record: Int, _ index: Int) -> Float {
        precondition(record >= 0 && record < count && index >= 0 && index < denseCount, "dense index out of range")
        return file.withBytes { Float(bitPattern: UInt32(littleEndian: $0.load(fromByteOffset: denseOffset + (record * denseCount + index) * 4, as: UInt32.self))) }
    }

    /// All dense values of `record`, in `schema.dense` order.
    public func dense(_ record: Int) -> [Float] { (0..<denseCount).map { denseValue(record, $0) } }

    /// Number of keys `record` has in `slot`.
    public func keyCount(slot: Int, record: Int) -> Int {
        let (a, b) = keyRange(slot, record)
        return b - a
    }

    /// Runs `body` with the keys of `record` in `slot` (a view into the mapping; do not let it escape).
    public func withKeys<R>(slot: Int, record: Int, _ body: (UnsafeBufferPointer<UInt64>) throws -> R) rethrows -> R {
        let (a, b) = keyRange(slot, record)
        return try file.withBytes { raw in
            // Safe: offsets were validated at open to lie within the keys section, which is 8-aligned.
            let p = (raw.baseAddress! + slotKeys[slot] + a * 8).assumingMemoryBound(to: UInt64.self)
            return try body(UnsafeBufferPointer(start: p, count: b - a))
        }
    }

    /// A copy of the keys of `record` in `slot`.
    public func keys(slot: Int, record: Int) -> [UInt64] { withKeys(slot: slot, record: record) { Array($0) } }

    /// Runs `body` with the whole labels section, (count × labelCount) row-major.
    public func withLabels<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try file.withBytes { raw in
            // Safe: the labels section holds count × labelCount Float32 values, 64-byte aligned.
            try body(UnsafeBufferPointer(start: (raw.baseAddress! + labelOffset).assumingMemoryBound(to: Float.self), count: count * labelCount))
        }
    }

    /// Runs `body` with the whole dense section, (count × denseCount) row-major.
    public func withDense<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try file.withBytes { raw in
            // Safe: the dense section holds count × denseCount Float32 values, 64-byte aligned.
            try body(UnsafeBufferPointer(start: (raw.baseAddress! + denseOffset).assumingMemoryBound(to: Float.self), count: count * denseCount))
        }
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
