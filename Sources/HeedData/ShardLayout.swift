import HeedCore

#if _endian(big)
#error("Heed sample shards are little-endian and read by memory mapping; big-endian hosts are not supported")
#endif

/// Byte layout of a sample shard file (format version 1, little-endian).
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
public struct ShardLayout: Equatable, Sendable {
    /// File magic.
    public static let magic: [UInt8] = Array("HEEDSMPL".utf8)
    /// The only format version this build writes and reads.
    public static let version: UInt32 = 1
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

    /// The layout for `recordCount` records with `keysPerSlot[s]` keys in slot `s`.
    init(schema: SampleSchema, schemaJSONBytes: Int, recordCount: Int, keysPerSlot: [Int]) {
        precondition(keysPerSlot.count == schema.slots.count, "one key total per slot")
        self.recordCount = recordCount
        var lengths: [(SectionKind, Int, Int)] = [
            (.userIDs, 0, recordCount * 8), (.itemIDs, 0, recordCount * 8), (.timestamps, 0, recordCount * 8),
            (.labels, 0, recordCount * schema.labels.count * 4), (.dense, 0, recordCount * schema.dense.count * 4),
        ]
        for s in schema.slots.indices {
            lengths.append((.offsets, s, (recordCount + 1) * 8))
            lengths.append((.keys, s, keysPerSlot[s] * 8))
        }
        headerBytes = Self.aligned(Self.fixedHeaderBytes + lengths.count * Self.sectionEntryBytes + schemaJSONBytes)
        var at = headerBytes
        sections = lengths.map { kind, slot, len in
            defer { at += Self.aligned(len) }
            return Section(kind: kind, slot: slot, offset: at, length: len)
        }
        fileBytes = at
    }

    /// Serialises the header (with both CRC fields filled in).
    func headerBytes(schemaJSON: [UInt8], payloadCRC: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerBytes)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[at + i] = b } }
        }
        for (i, b) in Self.magic.enumerated() { h[i] = b }
        put(Self.version, 8)
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
