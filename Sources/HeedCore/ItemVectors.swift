/// Pre-trained item vectors (e.g. sentence embeddings of item titles): one `dim`-wide row
/// per raw item id, read from a checksummed `.heedvec` file (docs/data-format.md §13) and
/// used as the initial values of an embedding table.
///
/// Raw item ids are the dataset's (docs/data-format.md §2): the number for an id made of
/// digits only, else the FNV-1a fold of its UTF-8 bytes. A row's feature key in table `g`
/// is `FeatureKey(group: g, id: rawID)`.
///
/// File layout (version 1, little-endian):
/// ```
/// offset size  field
///  0      8    magic "HEEDVECS"
///  8      4    version (UInt32) = 1
/// 12      4    dim (UInt32)
/// 16      8    count (UInt64)
/// 24      4    valueType (UInt32): 1 = Float32, 2 = Float16 (IEEE binary16)
/// 28      4    metaBytes (UInt32): length of the metadata JSON
/// 32      4    payloadCRC32: zlib CRC-32 of every byte from offset 64 to the end
/// 36      4    headerCRC32: CRC-32 of bytes [0, 64) with this field zeroed
/// 40     24    reserved (zero)
/// 64      m    metadata JSON (UTF-8), zero padded to a multiple of 8
///  …   8·n     raw item ids (UInt64), strictly ascending
///  …  n·dim·s  rows, row i belongs to ids[i] (s = 4 or 2 bytes)
/// ```
public struct ItemVectors: Equatable, Sendable {
    /// Row width.
    public var dim: Int
    /// (n) raw item ids, strictly ascending.
    public var rawIDs: [UInt64]
    /// (n × dim) rows, row-major; `values[i*dim ..< (i+1)*dim]` belongs to `rawIDs[i]`.
    public var values: [Float]
    /// Free-form provenance (model, package, text source) as JSON text.
    public var metadata: String

    /// How the rows are stored on disk.
    public enum ValueType: UInt32, Sendable {
        case float32 = 1
        case float16 = 2
        var bytes: Int { self == .float32 ? 4 : 2 }
    }

    /// Vectors of width `dim`; `rawIDs` must be strictly ascending and `values` (n × dim).
    public init(dim: Int, rawIDs: [UInt64], values: [Float], metadata: String = "{}") {
        precondition(values.count == rawIDs.count * dim, "item vectors: \(values.count) values for \(rawIDs.count) ids × \(dim)")
        self.dim = dim
        self.rawIDs = rawIDs
        self.values = values
        self.metadata = metadata
    }

    /// Number of rows.
    public var count: Int { rawIDs.count }

    /// The row of `rawID` (binary search), or nil.
    public func row(of rawID: UInt64) -> ArraySlice<Float>? {
        var lo = 0, hi = rawIDs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rawIDs[mid] < rawID { lo = mid + 1 } else { hi = mid }
        }
        guard lo < rawIDs.count, rawIDs[lo] == rawID else { return nil }
        return values[(lo * dim)..<((lo + 1) * dim)]
    }

    static let magic: [UInt8] = Array("HEEDVECS".utf8)
    static let version: UInt32 = 1
    static let headerBytes = 64

    // MARK: - Reading

    /// Reads and checks a vectors file.
    ///
    /// - Parameter expectedDim: the row width the model was configured with, or nil.
    /// - Throws: `HeedError(.notFound)` for a missing file, `.corrupt` for a bad magic,
    ///   header or payload checksum, a truncated or over-long file, ids not strictly
    ///   ascending or a non-finite value, `.unsupported` for an unknown version or value
    ///   type, `.config` for a width other than `expectedDim`. Every message starts with the path.
    public static func read(path: String, expectedDim: Int? = nil) throws -> ItemVectors {
        let file = try PosixReadFile(path: path)
        guard file.size >= headerBytes else {
            throw HeedError(.corrupt, "\(path): truncated: \(file.size) bytes, shorter than the \(headerBytes)-byte header of a vectors file")
        }
        var header = try file.read(count: headerBytes, at: 0)
        guard Array(header[0..<8]) == magic else {
            throw HeedError(.corrupt, "\(path): not a Heed vectors file (magic \(Array(header[0..<8])), expected \"HEEDVECS\")")
        }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(header[o + $1]) << (8 * $1) } }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(header[o + $1]) << (8 * $1) } }
        let storedHeaderCRC = u32(36)
        for i in 36..<40 { header[i] = 0 }
        guard CRC32.of(header) == storedHeaderCRC else {
            throw HeedError(.corrupt, "\(path): header checksum mismatch (damaged file)")
        }
        guard u32(8) == version else {
            throw HeedError(.unsupported, "\(path): vectors file version \(u32(8)); this build reads version \(version)")
        }
        guard let valueType = ValueType(rawValue: u32(24)) else {
            throw HeedError(.unsupported, "\(path): unknown value type \(u32(24)) (1 = Float32, 2 = Float16)")
        }
        let dim = Int(u32(12)), count64 = u64(16), metaBytes = Int(u32(28)), payloadCRC = u32(32)
        guard dim >= 1 else { throw HeedError(.corrupt, "\(path): dimension 0") }
        if let expectedDim, dim != expectedDim {
            throw HeedError(.config, "\(path): vectors have \(dim) dimensions; the model's text_dim is \(expectedDim)")
        }
        // Bound the count by the file size before multiplying, so a damaged count cannot overflow.
        guard count64 <= UInt64(file.size) / 8 else {
            throw HeedError(.corrupt, "\(path): truncated: the header announces \(count64) rows, more than a \(file.size)-byte file can hold")
        }
        let count = Int(count64)
        let metaPadded = (metaBytes + 7) / 8 * 8
        let idsOffset = headerBytes + metaPadded
        let valuesOffset = idsOffset + 8 * count
        let expectedSize = valuesOffset + count * dim * valueType.bytes
        guard file.size == expectedSize else {
            let what = file.size < expectedSize ? "truncated" : "has trailing bytes"
            throw HeedError(.corrupt, "\(path): \(what): \(file.size) bytes, expected \(expectedSize) for \(count) rows × \(dim) \(valueType == .float32 ? "Float32" : "Float16") values")
        }
        let payload = try file.read(count: file.size - headerBytes, at: headerBytes)
        guard CRC32.of(payload) == payloadCRC else {
            throw HeedError(.corrupt, "\(path): payload checksum \(hex(CRC32.of(payload))) does not match the header's \(hex(payloadCRC)) (damaged file)")
        }
        let metadata = String(decoding: payload[0..<metaBytes], as: UTF8.self)
        var ids = [UInt64](repeating: 0, count: count)
        var values = [Float](repeating: 0, count: count * dim)
        payload.withUnsafeBytes { raw in
            // Safe: the file size was checked against these offsets above.
            for i in 0..<count { ids[i] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: idsOffset - headerBytes + 8 * i, as: UInt64.self)) }
            let base = valuesOffset - headerBytes
            switch valueType {
            case .float32:
                for i in 0..<(count * dim) {
                    values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * i, as: UInt32.self)))
                }
            case .float16:
                for i in 0..<(count * dim) {
                    values[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 2 * i, as: UInt16.self))))
                }
            }
        }
        for i in 1..<max(1, count) where ids[i] <= ids[i - 1] {
            throw HeedError(.corrupt, "\(path): item ids must be strictly ascending; entry \(i) (\(ids[i])) follows \(ids[i - 1])")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw HeedError(.corrupt, "\(path): value \(values[bad]) of item \(ids[bad / dim]) (entry \(bad / dim)) is not finite")
        }
        return ItemVectors(dim: dim, rawIDs: ids, values: values, metadata: metadata)
    }

    // MARK: - Writing

    /// The file bytes for these vectors (what `scripts/embed-item-text.py` writes).
    public func encoded(as valueType: ValueType = .float32) -> [UInt8] {
        var payload: [UInt8] = Array(metadata.utf8)
        let metaBytes = payload.count
        payload += [UInt8](repeating: 0, count: (8 - metaBytes % 8) % 8)
        for id in rawIDs { withUnsafeBytes(of: id.littleEndian) { payload += $0 } }
        for v in values {
            switch valueType {
            case .float32: withUnsafeBytes(of: v.bitPattern.littleEndian) { payload += $0 }
            case .float16: withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { payload += $0 }
            }
        }
        var header = [UInt8](repeating: 0, count: Self.headerBytes)
        func put<I: FixedWidthInteger>(_ value: I, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { header[offset + i] = b } }
        }
        for (i, b) in Self.magic.enumerated() { header[i] = b }
        put(Self.version, at: 8)
        put(UInt32(dim), at: 12)
        put(UInt64(count), at: 16)
        put(valueType.rawValue, at: 24)
        put(UInt32(metaBytes), at: 28)
        put(CRC32.of(payload), at: 32)
        put(CRC32.of(header), at: 36)
        return header + payload
    }

    /// Writes the file atomically (temporary name, fsync, rename).
    public func write(to path: String, as valueType: ValueType = .float32) throws {
        try FileOps.writeAtomically(encoded(as: valueType), to: path)
    }

    static func hex(_ x: UInt32) -> String {
        let s = String(x, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}
