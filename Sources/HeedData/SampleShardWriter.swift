import CZlib
import Foundation
import HeedCore

/// One record to write: ids, labels, dense values and keys per slot.
public struct SampleRecord: Sendable {
    /// Raw user id (numeric id, or FNV-1a of a textual id; see `FeatureGroup.rawID`).
    public var userID: UInt64 = 0
    /// Raw target item id, same convention.
    public var itemID: UInt64 = 0
    /// Target event time, Unix seconds (0 when the source has no timestamps).
    public var timestamp: Int64 = 0
    /// `schema.labels.count` values.
    public var labels: [Float]
    /// `schema.dense.count` values.
    public var dense: [Float]
    /// Per slot, the record's keys (single slots: exactly one).
    public var keys: [[UInt64]]

    /// An empty record shaped for `schema`.
    public init(schema: SampleSchema) {
        labels = [Float](repeating: 0, count: schema.labels.count)
        dense = [Float](repeating: 0, count: schema.dense.count)
        keys = [[UInt64]](repeating: [], count: schema.slots.count)
        for i in keys.indices { keys[i].reserveCapacity(schema.slots[i].maxLength) }
    }

    /// Clears the keys of every slot, keeping capacity.
    public mutating func clearKeys() {
        for i in keys.indices { keys[i].removeAll(keepingCapacity: true) }
    }
}

/// Writes one sample shard whose record count and key totals are known up front.
///
/// Each section is streamed through its own buffered cursor at its final offset, so
/// records are appended once in order; the payload CRC is combined from the per-section
/// CRCs (`crc32_combine`) without reading the file back. The header goes last.
public final class SampleShardWriter {
    /// Path being written.
    public let path: String
    /// Schema of the records.
    public let schema: SampleSchema
    private let layout: ShardLayout
    private let schemaJSON: [UInt8]
    private let file: PosixFile
    private var cursors: [Cursor]
    private var appended = 0
    private var slotCursor: [Int] = []   // cursor index of each slot's keys section
    private var nextOffset: [UInt64]

    /// Opens `path` for `recordCount` records with `keysPerSlot[s]` keys in slot `s`.
    ///
    /// - Parameter flushBytes: buffered bytes per section before a write.
    public init(path: String, schema: SampleSchema, recordCount: Int, keysPerSlot: [Int], flushBytes: Int = 1 << 15) throws {
        self.path = path
        self.schema = schema
        schemaJSON = try Self.encode(schema)
        layout = ShardLayout(schema: schema, schemaJSONBytes: schemaJSON.count, recordCount: recordCount, keysPerSlot: keysPerSlot)
        file = try PosixFile(creating: path)
        cursors = layout.sections.map { Cursor(offset: $0.offset, planned: $0.length, flushBytes: flushBytes) }
        nextOffset = [UInt64](repeating: 0, count: schema.slots.count)
        for (i, s) in layout.sections.enumerated() where s.kind == .keys { slotCursor.append(i) }
        for s in schema.slots.indices { try cursors[5 + 2 * s].append(UInt64(0), file) }
    }

    /// The schema as stored in headers: sorted-key JSON so equal schemas give equal bytes.
    static func encode(_ schema: SampleSchema) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(schema))
    }

    /// Appends one record (must match the schema's shape).
    public func append(_ r: SampleRecord) throws {
        guard appended < layout.recordCount else {
            throw HeedError(.internalError, "\(path): more records than planned (\(layout.recordCount))")
        }
        precondition(r.labels.count == schema.labels.count && r.dense.count == schema.dense.count && r.keys.count == schema.slots.count,
                     "record shape does not match the schema")
        try cursors[0].append(r.userID, file)
        try cursors[1].append(r.itemID, file)
        try cursors[2].append(UInt64(bitPattern: r.timestamp), file)
        try r.labels.withUnsafeBytes { try cursors[3].append($0, file) }
        try r.dense.withUnsafeBytes { try cursors[4].append($0, file) }
        for s in schema.slots.indices {
            let ks = r.keys[s]
            nextOffset[s] += UInt64(ks.count)
            try cursors[5 + 2 * s].append(nextOffset[s], file)
            try ks.withUnsafeBytes { try cursors[6 + 2 * s].append($0, file) }
        }
        appended += 1
    }

    /// Pads and flushes every section, writes the header and syncs; returns size and payload CRC.
    @discardableResult
    public func finish() throws -> (bytes: Int, payloadCRC: UInt32) {
        guard appended == layout.recordCount else {
            throw HeedError(.internalError, "\(path): \(appended) records written, \(layout.recordCount) planned")
        }
        var crc: uLong = crc32(0, nil, 0)
        for i in cursors.indices {
            try cursors[i].finish(file)
            guard cursors[i].written == cursors[i].planned else {
                throw HeedError(.internalError, "\(path): section \(i) has \(cursors[i].written) bytes, \(cursors[i].planned) planned")
            }
            crc = crc32_combine(crc, cursors[i].crc, off_t(ShardLayout.aligned(cursors[i].planned)))
        }
        let header = layout.headerBytes(schemaJSON: schemaJSON, payloadCRC: UInt32(crc))
        try file.write(header, at: 0)
        try file.syncAndClose()
        return (layout.fileBytes, UInt32(crc))
    }

    /// Writes `records` to `path` in one call (counts the keys first).
    @discardableResult
    public static func write(path: String, schema: SampleSchema, records: [SampleRecord]) throws -> (bytes: Int, payloadCRC: UInt32) {
        var totals = [Int](repeating: 0, count: schema.slots.count)
        for r in records { for s in totals.indices { totals[s] += r.keys[s].count } }
        let w = try SampleShardWriter(path: path, schema: schema, recordCount: records.count, keysPerSlot: totals)
        for r in records { try w.append(r) }
        return try w.finish()
    }

    /// A buffered sequential writer for one section.
    private struct Cursor {
        var offset: Int
        let planned: Int
        var written = 0
        var crc: uLong = crc32(0, nil, 0)
        var buffer: [UInt8] = []
        /// Buffered bytes that trigger a write.
        let flushBytes: Int

        /// A cursor at `offset` that must receive exactly `planned` bytes.
        init(offset: Int, planned: Int, flushBytes: Int) {
            self.offset = offset
            self.planned = planned
            self.flushBytes = flushBytes
        }

        /// Appends one little-endian word.
        mutating func append(_ v: UInt64, _ file: PosixFile) throws {
            withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
            if buffer.count >= flushBytes { try flush(file) }
        }

        /// Appends raw bytes.
        mutating func append(_ bytes: UnsafeRawBufferPointer, _ file: PosixFile) throws {
            buffer.append(contentsOf: bytes)
            if buffer.count >= flushBytes { try flush(file) }
        }

        /// Writes the buffer at the cursor and folds it into the section CRC.
        mutating func flush(_ file: PosixFile) throws {
            guard !buffer.isEmpty else { return }
            try buffer.withUnsafeBytes { raw in
                try file.write(raw, at: offset)
                // Safe: zlib reads exactly raw.count bytes of the buffer.
                crc = crc32_z(crc, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.count)
            }
            offset += buffer.count
            written += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }

        /// Flushes and writes the zero padding up to the 64-byte boundary.
        mutating func finish(_ file: PosixFile) throws {
            try flush(file)
            let pad = ShardLayout.aligned(planned) - written
            if pad > 0 && written == planned {
                buffer = [UInt8](repeating: 0, count: pad)
                try flush(file)
                written -= pad
            }
        }
    }
}
