import HeedCore

#if _endian(big)
#error("Heed sample shards are little-endian and read by memory mapping; big-endian hosts are not supported")
#endif

/// Byte layout of Heed's data files: sample shards (versions 1 and 2) and the sequence file.
///
/// Every file is one container, little-endian: a 64-byte fixed header, a section table,
/// a JSON blob (a shard's schema, the sequence file's description), then 64-byte aligned
/// sections. Version 1 sample shards:
///
/// ```
/// offset size  field
///  0      8    magic "HEEDSMPL"
///  8      4    version (UInt32) = 1
/// 12      4    headerBytes (UInt32): start of the payload, a multiple of 64
/// 16      8    recordCount (UInt64)
/// 24      8    payloadBytes (UInt64): fileBytes - headerBytes
/// 32      4    payloadCRC32 (UInt32, zlib CRC-32 of the payload)
/// 36      4    schemaBytes (UInt32): length of the schema JSON
/// 40      4    sectionCount (UInt32)
/// 44      4    headerCRC32 (UInt32): CRC-32 of bytes [0, headerBytes) with this field zeroed
/// 48     16    reserved, zero
/// 64   32×n    section table: kind (UInt32), slot (UInt32), offset (UInt64, from file start),
///              byteLength (UInt64, unpadded), reserved (UInt64, zero)
///  …           schema JSON (UTF-8), then zero padding to headerBytes
/// headerBytes  payload: the sections in table order, each starting on a 64-byte
///              boundary, zero padding between sections and at the end
/// ```
/// Sections in order: userIDs (count × UInt64), itemIDs (count × UInt64), timestamps
/// (count × Int64), labels (count × labelCount Float32, row-major), dense (count ×
/// denseCount Float32, row-major), then per slot `s`: offsets (count + 1 UInt64, first 0)
/// and keys (offsets[count] × UInt64); record `r`'s keys are `keys[offsets[r]..<offsets[r+1]]`.
///
/// Version 2 sample shards (the compact form, `docs/data-format.md`) hold no keys at all:
/// `recordEvents` (count × UInt32, the global index of the record's target event in the
/// dataset's sequence file), `recordItems` (count × UInt32, the target's catalog record,
/// bit 31 set for a sampled negative) and `links` (24 bytes: the sequence file's and the
/// catalog's payload CRC-32, their event and item counts), so a shard cannot be read
/// against another dataset's side files. Every key, label and dense value is derived from
/// the sequence file and the catalog at read time (`SampleShard`).
public struct ShardLayout: Equatable, Sendable {
    /// File magic of sample shards.
    public static let magic: [UInt8] = Array("HEEDSMPL".utf8)
    /// The version of sample shards with every key stored per record.
    public static let version: UInt32 = 1
    /// The compact version: records refer to the sequence file (written by default).
    public static let compactVersion: UInt32 = 2
    /// The sample shard versions this build reads.
    public static let readableVersions: ClosedRange<UInt32> = 1...2
    /// Size of the fixed header part.
    public static let fixedHeaderBytes = 64
    /// Size of one section table entry.
    public static let sectionEntryBytes = 32
    /// Alignment of the payload and of every section.
    public static let alignment = 64

    /// What a section holds.
    public enum SectionKind: UInt32, Sendable {
        /// count × UInt64 raw user ids.
        case userIDs = 1
        /// count × UInt64 raw target item ids.
        case itemIDs = 2
        /// count × Int64 target timestamps.
        case timestamps = 3
        /// count × labelCount Float32.
        case labels = 4
        /// count × denseCount Float32.
        case dense = 5
        /// count + 1 UInt64 key offsets of one slot.
        case offsets = 6
        /// The keys of one slot.
        case keys = 7
        /// Version 2: count × UInt32 target event indices into the sequence file.
        case recordEvents = 8
        /// Version 2: count × UInt32 catalog records of the targets, bit 31 = negative.
        case recordItems = 9
        /// Version 2: the side files a shard was written against (`ShardLinks`).
        case links = 10
        /// Sequence file: events × UInt32 user index.
        case eventUser = 16
        /// Sequence file: events × UInt64 item key.
        case eventItemKey = 17
        /// Sequence file: events × UInt64 category key (when items have categories).
        case eventCategoryKey = 18
        /// Sequence file: events × Int64 time (Unix seconds, or the position without timestamps).
        case eventTime = 19
        /// Sequence file: events × UInt8: event type in bits 0-2, bit 7 = the `click` label of a positive.
        case eventCode = 20
        /// Sequence file: events × Float32 rating (NaN = unrated; when the data has ratings).
        case eventRating = 21
        /// Sequence file: events × Float32 mean price percentile of the user's earlier events (NaN = none).
        case eventUserPricePct = 22
        /// Sequence file: users × UInt64 raw user id.
        case userRawID = 24
        /// Sequence file: users + 1 UInt64, user `u`'s events are `userStart[u]..<userStart[u+1]`.
        case userStart = 25
        /// Sequence file: users × UInt64 income band key.
        case userIncomeKey = 26
        /// Sequence file: users × UInt64 age band key.
        case userAgeKey = 27
        /// Sequence file: users + 1 UInt64 offsets into `userNeighborKeys`.
        case userNeighborOffsets = 28
        /// Sequence file: the social neighbours' user keys.
        case userNeighborKeys = 29
    }

    /// One section: kind, slot (for offsets/keys), absolute offset and unpadded length.
    public struct Section: Equatable, Sendable {
        /// What the section holds.
        public var kind: SectionKind
        /// Slot index for `offsets`/`keys`, 0 otherwise.
        public var slot: Int
        /// Absolute byte offset in the file (a multiple of 64).
        public var offset: Int
        /// Length in bytes without padding.
        public var length: Int
    }

    /// Records in the shard.
    public var recordCount: Int
    /// The sections in file order.
    public var sections: [Section]
    /// Bytes before the payload (fixed header, table, schema, padding).
    public var headerBytes: Int
    /// Total file size.
    public var fileBytes: Int

    /// Rounds `n` up to the section alignment.
    static func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// A layout of `lengths` (kind, slot, unpadded bytes) in order after a `jsonBytes` blob.
    init(recordCount: Int, jsonBytes: Int, lengths: [(SectionKind, Int, Int)]) {
        self.recordCount = recordCount
        headerBytes = Self.aligned(Self.fixedHeaderBytes + lengths.count * Self.sectionEntryBytes + jsonBytes)
        var at = headerBytes
        sections = lengths.map { kind, slot, len in
            defer { at += Self.aligned(len) }
            return Section(kind: kind, slot: slot, offset: at, length: len)
        }
        fileBytes = at
    }

    /// The version 2 layout for `recordCount` records.
    init(compactRecords recordCount: Int, schemaJSONBytes: Int) {
        self.init(recordCount: recordCount, jsonBytes: schemaJSONBytes,
                  lengths: [(.recordEvents, 0, recordCount * 4), (.recordItems, 0, recordCount * 4), (.links, 0, ShardLinks.bytes)])
    }

    /// The version 1 layout for `recordCount` records with `keysPerSlot[s]` keys in slot `s`.
    init(schema: SampleSchema, schemaJSONBytes: Int, recordCount: Int, keysPerSlot: [Int]) {
        precondition(keysPerSlot.count == schema.slots.count, "one key total per slot")
        var lengths: [(SectionKind, Int, Int)] = [
            (.userIDs, 0, recordCount * 8), (.itemIDs, 0, recordCount * 8), (.timestamps, 0, recordCount * 8),
            (.labels, 0, recordCount * schema.labels.count * 4), (.dense, 0, recordCount * schema.dense.count * 4),
        ]
        for s in schema.slots.indices {
            lengths.append((.offsets, s, (recordCount + 1) * 8))
            lengths.append((.keys, s, keysPerSlot[s] * 8))
        }
        self.init(recordCount: recordCount, jsonBytes: schemaJSONBytes, lengths: lengths)
    }

    /// Serialises the header (with both CRC fields filled in).
    func headerBytes(magic: [UInt8] = Self.magic, version: UInt32 = Self.version, schemaJSON: [UInt8], payloadCRC: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerBytes)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[at + i] = b } }
        }
        for (i, b) in magic.enumerated() { h[i] = b }
        put(version, 8)
        put(UInt32(headerBytes), 12)
        put(UInt64(recordCount), 16)
        put(UInt64(fileBytes - headerBytes), 24)
        put(payloadCRC, 32)
        put(UInt32(schemaJSON.count), 36)
        put(UInt32(sections.count), 40)
        var at = Self.fixedHeaderBytes
        for s in sections {
            put(s.kind.rawValue, at)
            put(UInt32(s.slot), at + 4)
            put(UInt64(s.offset), at + 8)
            put(UInt64(s.length), at + 16)
            at += Self.sectionEntryBytes
        }
        for (i, b) in schemaJSON.enumerated() { h[at + i] = b }
        put(CRC32.of(h), 44)
        return h
    }
}

/// What a version 2 shard was written against: the `links` section (24 bytes).
struct ShardLinks: Equatable {
    /// Bytes of the section.
    static let bytes = 24
    /// Payload CRC-32 of the dataset's sequence file.
    var sequencesCRC: UInt32
    /// Payload CRC-32 of the dataset's item catalog.
    var catalogCRC: UInt32
    /// Events in the sequence file.
    var events: UInt64
    /// Records (items) in the catalog.
    var items: UInt64

    /// The little-endian bytes.
    var encoded: [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: sequencesCRC.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: catalogCRC.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: events.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: items.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Reads the section at `offset`.
    init(_ raw: UnsafeRawBufferPointer, at offset: Int) {
        sequencesCRC = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        catalogCRC = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        events = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        items = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
    }

    /// Links to the given side files.
    init(sequencesCRC: UInt32, catalogCRC: UInt32, events: UInt64, items: UInt64) {
        self.sequencesCRC = sequencesCRC
        self.catalogCRC = catalogCRC
        self.events = events
        self.items = items
    }
}
