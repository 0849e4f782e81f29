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

/// Writes one version 1 sample shard whose record count and key totals are known up front.
public final class SampleShardWriter {
    /// Path being written.
    public let path: String
    /// Schema of the records.
    public let schema: SampleSchema
    private let writer: SectionedFileWriter
    private let recordCount: Int
    private var appended = 0
    private var nextOffset: [UInt64]

    /// Opens `path` for `recordCount` records with `keysPerSlot[s]` keys in slot `s`.
    ///
    /// - Parameter flushBytes: buffered bytes per section before a write.
    public init(path: String, schema: SampleSchema, recordCount: Int, keysPerSlot: [Int], flushBytes: Int = 1 << 15) throws {
        self.path = path
        self.schema = schema
        self.recordCount = recordCount
        let json = try Self.encode(schema)
        let layout = ShardLayout(schema: schema, schemaJSONBytes: json.count, recordCount: recordCount, keysPerSlot: keysPerSlot)
        writer = try SectionedFileWriter(path: path, layout: layout, magic: ShardLayout.magic, version: ShardLayout.version,
                                         json: json, flushBytes: flushBytes)
        nextOffset = [UInt64](repeating: 0, count: schema.slots.count)
        for s in schema.slots.indices { try writer.append(UInt64(0), to: 5 + 2 * s) }
    }

    /// The schema as stored in headers: sorted-key JSON so equal schemas give equal bytes.
    static func encode(_ schema: SampleSchema) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(schema))
    }

    /// Appends one record (must match the schema's shape).
    public func append(_ r: SampleRecord) throws {
        guard appended < recordCount else {
            throw HeedError(.internalError, "\(path): more records than planned (\(recordCount))")
        }
        precondition(r.labels.count == schema.labels.count && r.dense.count == schema.dense.count && r.keys.count == schema.slots.count,
                     "record shape does not match the schema")
        try writer.append(r.userID, to: 0)
        try writer.append(r.itemID, to: 1)
        try writer.append(UInt64(bitPattern: r.timestamp), to: 2)
        try writer.append(contentsOf: r.labels, to: 3)
        try writer.append(contentsOf: r.dense, to: 4)
        for s in schema.slots.indices {
            let ks = r.keys[s]
            nextOffset[s] += UInt64(ks.count)
            try writer.append(nextOffset[s], to: 5 + 2 * s)
            try writer.append(contentsOf: ks, to: 6 + 2 * s)
        }
        appended += 1
    }

    /// Pads and flushes every section, writes the header and syncs; returns size and payload CRC.
    @discardableResult
    public func finish() throws -> (bytes: Int, payloadCRC: UInt32) {
        guard appended == recordCount else {
            throw HeedError(.internalError, "\(path): \(appended) records written, \(recordCount) planned")
        }
        return try writer.finish()
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
}

/// Writes one version 2 (compact) sample shard: per record its target event and item only.
final class CompactShardWriter {
    /// Path being written.
    let path: String
    private let writer: SectionedFileWriter
    private let recordCount: Int
    private var appended = 0

    /// Opens `path` for `recordCount` records of `schema`, written against the side files in `links`.
    init(path: String, schema: SampleSchema, recordCount: Int, links: ShardLinks, flushBytes: Int = 1 << 15) throws {
        self.path = path
        self.recordCount = recordCount
        let json = try SampleShardWriter.encode(schema)
        writer = try SectionedFileWriter(path: path, layout: ShardLayout(compactRecords: recordCount, schemaJSONBytes: json.count),
                                         magic: ShardLayout.magic, version: ShardLayout.compactVersion, json: json, flushBytes: flushBytes)
        try writer.append(contentsOf: links.encoded, to: 2)
    }

    /// Appends one record: its target's global event index and catalog record.
    func append(_ ref: RecordRef) throws {
        guard appended < recordCount else {
            throw HeedError(.internalError, "\(path): more records than planned (\(recordCount))")
        }
        try writer.append(ref.event, to: 0)
        try writer.append(ref.item | (ref.negative ? RecordRef.negativeBit : 0), to: 1)
        appended += 1
    }

    /// Pads and flushes, writes the header and syncs; returns size and payload CRC.
    func finish() throws -> (bytes: Int, payloadCRC: UInt32) {
        guard appended == recordCount else {
            throw HeedError(.internalError, "\(path): \(appended) records written, \(recordCount) planned")
        }
        return try writer.finish()
    }
}

/// A shard writer `Preparer` feeds every generated record to: version 1 writes the filled
/// record, version 2 its reference.
protocol RecordShardWriter: AnyObject {
    /// Appends one record, given both as filled (version 1) and as a reference (version 2).
    func append(_ record: SampleRecord, _ ref: RecordRef) throws
    /// Pads and flushes, writes the header and syncs; returns size and payload CRC.
    func finish() throws -> (bytes: Int, payloadCRC: UInt32)
}

extension SampleShardWriter: RecordShardWriter {
    func append(_ record: SampleRecord, _ ref: RecordRef) throws { try append(record) }
}

extension CompactShardWriter: RecordShardWriter {
    func append(_ record: SampleRecord, _ ref: RecordRef) throws { try append(ref) }
}

/// What a compact record stores: the target event (global index in the sequence file, which
/// gives the user, the history and the time) and the target item's catalog record.
struct RecordRef: Equatable {
    /// Bit 31 of the stored item word: the record is a sampled negative.
    static let negativeBit: UInt32 = 1 << 31
    /// Global index of the target event in the sequence file.
    var event: UInt32
    /// Catalog record of the target item (the sampled item for a negative).
    var item: UInt32
    /// Whether the record is a sampled negative (all labels 0).
    var negative: Bool
}
