import HeedCore
#if canImport(Glibc)
import Glibc
#endif

/// One server's parameters on disk: its chunk of the dense vector and every row of every
/// embedding table it holds, with the rows' optimizer state, so the file can seed a
/// shard of any server count (rows are routed again by key when read).
///
/// Layout (version 2, explicit little-endian, no padding):
///
///     magic "HEEDPARM" (8 bytes) · u32 version · u32 rank · u32 serverCount · u32 slotCount
///     u32 tableCount · u64 denseStart · u64 denseTotal · u64 denseChunk
///     denseChunk × f32                         the dense weights [denseStart, denseStart + denseChunk)
///     u32 denseStateWidth · u32 denseStep      dense optimizer: state floats per weight, updates applied
///     denseStateWidth × denseChunk × f32       its state, blockwise (Adam: m of every weight, then v)
///     tableCount × table:
///         u32 id · u32 dim · u32 width · u64 rows
///         rows × (u64 key · u32 step · width × f32)   w (dim) then optimizer state, in (slot, key) order
///     u32 CRC-32 (zlib) of every preceding byte
///
/// Version 1 (no dense optimizer state; written before checkpoints existed) is still read:
/// its dense state comes back empty, so a run resumed from it starts fresh dense moments.
public enum ParameterFile {
    /// The file magic.
    public static let magic: [UInt8] = Array("HEEDPARM".utf8)
    /// The layout version this build writes.
    public static let version: UInt32 = 2
    /// Versions this build reads.
    public static let readableVersions: ClosedRange<UInt32> = 1...2

    /// A server's dense optimizer state as stored: `width` floats per dense weight,
    /// blockwise (`state[k * chunk + i]` is state k of weight i), and the update count.
    public struct DenseState: Equatable, Sendable {
        public var width: Int
        public var step: UInt32
        /// (width × chunk) floats.
        public var values: [Float]
        public init(width: Int, step: UInt32, values: [Float]) {
            self.width = width
            self.step = step
            self.values = values
        }
        /// No state (plain SGD, or a version 1 file).
        public static let empty = DenseState(width: 0, step: 0, values: [])
    }

    /// The fixed-size header.
    public struct Header: Equatable, Sendable {
        public var rank: Int
        public var serverCount: Int
        public var slotCount: Int
        public var tableCount: Int
        /// Index of this file's first dense value in the model's flat dense vector.
        public var denseStart: Int
        /// Length of the model's whole dense vector.
        public var denseTotal: Int
        /// Dense values in this file.
        public var denseChunk: Int

        public init(rank: Int, serverCount: Int, slotCount: Int, tableCount: Int, denseStart: Int, denseTotal: Int, denseChunk: Int) {
            self.rank = rank
            self.serverCount = serverCount
            self.slotCount = slotCount
            self.tableCount = tableCount
            self.denseStart = denseStart
            self.denseTotal = denseTotal
            self.denseChunk = denseChunk
        }
    }

    /// One table as read back.
    public struct Table: Sendable {
        public var id: UInt8
        public var dim: Int
        /// Floats per row: `w` (dim) then the optimizer state.
        public var width: Int
        /// (rows) keys, in file order.
        public var keys: [UInt64]
        /// (rows) per-row update counts.
        public var steps: [UInt32]
        /// (rows × width), row-major.
        public var values: [Float]
    }

    /// A whole file as read back.
    public struct Contents: Sendable {
        public var header: Header
        /// (header.denseChunk) dense weights.
        public var dense: [Float]
        /// The dense weights' optimizer state (`.empty` from a version 1 file).
        public var denseState: DenseState
        /// The layout version the file was written in.
        public var version: UInt32
        /// Tables in ascending id order.
        public var tables: [Table]
        /// The file's CRC-32 (verified against its bytes when read).
        public var crc32: UInt32
    }

    /// Size and checksum of a written file, for the manifest.
    public struct Written: Codable, Equatable, Sendable {
        /// File name inside the model directory.
        public var name: String
        public var bytes: Int
        public var crc32: UInt32
        public var rows: Int
        public init(name: String, bytes: Int, crc32: UInt32, rows: Int) {
            self.name = name
            self.bytes = bytes
            self.crc32 = crc32
            self.rows = rows
        }
    }

    /// The file name of server `rank`'s parameters.
    public static func fileName(rank: Int) -> String { "shard-\(rank).bin" }
}

// MARK: - Writing

extension ParameterFile {
    /// Streams one parameter file to a temporary name, fsyncs it and renames it into
    /// place, so a reader never sees a partial file under the final name.
    ///
    /// Call `beginTable` then `appendRow` exactly `rows` times per table, `tableCount`
    /// tables in all, then `finish()`. Any mismatch is an error and leaves no file.
    public final class Writer {
        public let path: String
        private let temporary: String
        private let file: PosixFile
        private var buffer: [UInt8] = []
        private var offset = 0
        private var crc = CRC32()
        private var tablesLeft: Int
        private var rowsLeft = 0
        private var width = 0
        private var totalRows = 0
        private var finished = false

        /// Starts `path` (written as `path.tmp-<pid>` until `finish`).
        /// - Parameters:
        ///   - dense: (header.denseChunk) this server's dense weights.
        ///   - denseState: their optimizer state, (denseState.width × header.denseChunk) floats.
        public init(path: String, header: Header, dense: [Float], denseState: DenseState = .empty) throws {
            guard dense.count == header.denseChunk, denseState.values.count == denseState.width * header.denseChunk else {
                throw HeedError(.internalError, "\(path): \(dense.count) dense values and \(denseState.values.count) state values for a chunk of \(header.denseChunk) (state width \(denseState.width))")
            }
            self.path = path
            temporary = path + ".tmp-\(getpid())"
            file = try PosixFile(creating: temporary)
            tablesLeft = header.tableCount
            buffer.reserveCapacity(1 << 20)
            buffer += ParameterFile.magic
            put(ParameterFile.version)
            put(UInt32(header.rank)); put(UInt32(header.serverCount)); put(UInt32(header.slotCount))
            put(UInt32(header.tableCount))
            put(UInt64(header.denseStart)); put(UInt64(header.denseTotal)); put(UInt64(header.denseChunk))
            for v in dense { put(v.bitPattern) }
            put(UInt32(denseState.width)); put(denseState.step)
            for v in denseState.values { put(v.bitPattern) }
            try flushIfFull()
        }

        deinit { if !finished { FileOps.removeTree(temporary) } }

        /// Starts a table of `rows` rows of `width` floats.
        public func beginTable(id: UInt8, dim: Int, width: Int, rows: Int) throws {
            guard tablesLeft > 0, rowsLeft == 0 else {
                throw HeedError(.internalError, "\(path): table \(id) begun with \(rowsLeft) rows of the last table still due or no tables left")
            }
            tablesLeft -= 1
            rowsLeft = rows
            self.width = width
            put(UInt32(id)); put(UInt32(dim)); put(UInt32(width)); put(UInt64(rows))
        }

        /// Appends one row of the current table.
        /// - Parameter values: (width) floats.
        public func appendRow(key: UInt64, step: UInt32, values: UnsafeBufferPointer<Float>) throws {
            guard rowsLeft > 0, values.count == width else {
                throw HeedError(.internalError, "\(path): row \(key) does not fit (rows left \(rowsLeft), \(values.count) values for width \(width))")
            }
            rowsLeft -= 1
            totalRows += 1
            put(key); put(step)
            #if _endian(little)
            // One copy per row: the floats' in-memory bytes are already little-endian
            // (appending them one by one was most of a checkpoint's write time).
            buffer.append(contentsOf: UnsafeRawBufferPointer(values))
            #else
            for v in values { put(v.bitPattern) }
            #endif
            try flushIfFull()
        }

        /// Writes the checksum, fsyncs, renames into place and syncs the directory.
        public func finish() throws -> Written {
            guard tablesLeft == 0, rowsLeft == 0 else {
                throw HeedError(.internalError, "\(path): finished with \(tablesLeft) tables and \(rowsLeft) rows still due")
            }
            try flush()
            let sum = crc.value
            buffer = []
            put(sum)
            try file.write(buffer, at: offset)
            offset += buffer.count
            try file.syncAndClose()
            try FileOps.rename(temporary, path)
            finished = true
            try FileOps.syncDirectory(FileOps.dirname(of: path))
            return Written(name: FileOps.basename(of: path), bytes: offset, crc32: sum, rows: totalRows)
        }

        private func put<I: FixedWidthInteger>(_ v: I) {
            withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
        }

        private func flushIfFull() throws { if buffer.count >= 1 << 20 { try flush() } }

        private func flush() throws {
            crc.update(buffer)
            try file.write(buffer, at: offset)
            offset += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }
    }
}

// MARK: - Reading

extension ParameterFile {
    /// Reads and verifies a whole file: magic, version, every length against the file
    /// size, and the checksum. Errors name the file and the byte offset.
    public static func read(path: String) throws -> Contents {
        let bytes = try readAll(path)
        guard bytes.count >= magic.count + 4 + 4 else {
            throw HeedError(.corrupt, "\(path): \(bytes.count) bytes is too short for a parameter file")
        }
        let body = bytes.count - 4
        var reader = ByteReader(bytes: bytes, limit: body, path: path)
        let stored = ByteReader(bytes: bytes, limit: bytes.count, path: path).u32(at: body)
        let actual = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        guard Array(bytes[0..<8]) == magic else { throw HeedError(.corrupt, "\(path): byte offset 0: not a Heed parameter file (bad magic)") }
        reader.position = 8
        let version = try reader.u32()
        guard readableVersions.contains(version) else {
            throw HeedError(.unsupported, "\(path): byte offset 8: parameter file version \(version); this build reads versions \(readableVersions.lowerBound)-\(readableVersions.upperBound)")
        }
        guard stored == actual else {
            throw HeedError(.corrupt, "\(path): checksum mismatch (stored \(hex(stored)), computed \(hex(actual))): the file is damaged")
        }
        let header = Header(rank: Int(try reader.u32()), serverCount: Int(try reader.u32()), slotCount: Int(try reader.u32()),
                            tableCount: Int(try reader.u32()), denseStart: try reader.count("dense start"),
                            denseTotal: try reader.count("dense total"), denseChunk: try reader.count("dense chunk"))
        guard header.denseStart + header.denseChunk <= header.denseTotal, header.rank < header.serverCount else {
            throw HeedError(.corrupt, "\(path): header is inconsistent (rank \(header.rank) of \(header.serverCount), dense \(header.denseStart)+\(header.denseChunk) of \(header.denseTotal))")
        }
        let dense = try reader.floats(header.denseChunk)
        var denseState = DenseState.empty
        if version >= 2 {
            let at = reader.position
            let width = Int(try reader.u32()), step = try reader.u32()
            guard width <= 8 else { throw HeedError(.corrupt, "\(path): byte offset \(at): dense state width \(width) (at most 8)") }
            denseState = DenseState(width: width, step: step, values: try reader.floats(width * header.denseChunk))
        }
        var tables: [Table] = []
        for _ in 0..<header.tableCount {
            let at = reader.position
            let id = try reader.u32(), dim = Int(try reader.u32()), width = Int(try reader.u32()), rows = try reader.count("row count")
            guard id <= 255, dim >= 1, width >= dim, rows <= (body - reader.position) / (12 + 4 * width) else {
                throw HeedError(.corrupt, "\(path): byte offset \(at): bad table header (id \(id), dim \(dim), width \(width), rows \(rows))")
            }
            var keys = [UInt64](repeating: 0, count: rows), steps = [UInt32](repeating: 0, count: rows)
            var values = [Float](repeating: 0, count: rows * width)
            for r in 0..<rows {
                keys[r] = try reader.u64()
                steps[r] = try reader.u32()
                try reader.floats(into: &values, at: r * width, count: width)
            }
            tables.append(Table(id: UInt8(id), dim: dim, width: width, keys: keys, steps: steps, values: values))
        }
        guard reader.position == body else {
            throw HeedError(.corrupt, "\(path): byte offset \(reader.position): \(body - reader.position) unexpected bytes before the checksum")
        }
        return Contents(header: header, dense: dense, denseState: denseState, version: version, tables: tables, crc32: stored)
    }

    /// The checksum stored at the end of the file at `path` and the one computed over its
    /// other bytes, streaming 4 MiB at a time (no parsing, bounded memory).
    public static func checksums(path: String) throws -> (stored: UInt32, computed: UInt32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw HeedError(.notFound, "\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let size = try FileOps.size(path)
        guard size >= magic.count + 8 else { throw HeedError(.corrupt, "\(path): \(size) bytes is too short for a parameter file") }
        let body = size - 4
        var crc = CRC32()
        var chunk = [UInt8](repeating: 0, count: 4 << 20)
        var done = 0
        var tail = [UInt8]()
        while done < size {
            // Safe: at most chunk.count bytes are read into chunk.
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, min($0.count, size - done)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw HeedError(.io, "\(path): read failed at byte offset \(done) of \(size)") }
            let bodyPart = max(0, min(n, body - done))
            chunk.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<bodyPart])) }
            if bodyPart < n { tail += chunk[bodyPart..<n] }
            done += n
        }
        let stored = tail.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        return (stored, crc.value)
    }

    /// `v` as 0x-prefixed hex, for messages.
    package static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw HeedError(.notFound, "\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let size = try FileOps.size(path)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            // Safe: [done, size) lies inside `bytes`.
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw HeedError(.io, "\(path): read failed at byte offset \(done) of \(size)") }
            done += n
        }
        return bytes
    }
}

/// Bounds-checked little-endian reads over a byte array; errors name the file and offset.
struct ByteReader {
    let bytes: [UInt8]
    /// Reads must end at or before this offset.
    let limit: Int
    let path: String
    var position = 0

    func u32(at offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, position <= limit - n else {
            throw HeedError(.corrupt, "\(path): byte offset \(position): file ends inside a \(n)-byte field (\(limit) bytes of data)")
        }
        defer { position += n }
        return position
    }

    mutating func u32() throws -> UInt32 { u32(at: try take(4)) }

    /// A u64 count or offset, refused above 2^48 (far beyond any table or dense vector) so
    /// sums and products of counts cannot overflow.
    mutating func count(_ what: String) throws -> Int {
        let at = position
        let v = try u64()
        guard v <= 1 << 48 else { throw HeedError(.corrupt, "\(path): byte offset \(at): \(what) \(v) is impossibly large") }
        return Int(v)
    }

    mutating func u64() throws -> UInt64 {
        let at = try take(8)
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    }

    mutating func floats(_ n: Int) throws -> [Float] {
        // Checked before allocating: a damaged count must not ask for terabytes.
        guard n >= 0, n <= (limit - position) / 4 else {
            throw HeedError(.corrupt, "\(path): byte offset \(position): file ends inside \(n) floats")
        }
        var out = [Float](repeating: 0, count: n)
        try floats(into: &out, at: 0, count: n)
        return out
    }

    mutating func floats(into out: inout [Float], at start: Int, count n: Int) throws {
        guard n <= (limit - position) / 4 else {
            throw HeedError(.corrupt, "\(path): byte offset \(position): file ends inside \(n) floats")
        }
        let at = try take(4 * n)
        bytes.withUnsafeBytes { src in
            for i in 0..<n {
                // Safe: take() checked that 4n bytes from `at` lie inside the data.
                out[start + i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: at + 4 * i, as: UInt32.self)))
            }
        }
    }
}
