import HeedCore

extension ParameterFile {
    /// Where one table's rows lie in a parameter file.
    public struct TableLayout: Equatable, Sendable {
        public var id: UInt8
        public var dim: Int
        /// Floats per row: `w` (dim) then the optimizer state.
        public var width: Int
        public var rows: Int
        /// Byte offset of the first row.
        public var rowsOffset: Int
        /// Bytes per row: key (8) · step (4) · width floats.
        public var rowBytes: Int { 12 + 4 * width }
        /// Byte offset just past the last row.
        public var endOffset: Int { rowsOffset + rows * rowBytes }

        /// Reads this table's rows from `file` in blocks of about 4 MiB and calls `body`
        /// with each block's bytes ((count × rowBytes): u64 key · u32 step · width × f32 per
        /// row) and the index of its first row. Valid only during the call.
        func forEachRowBlock(in file: PosixReadFile, _ body: (UnsafeRawBufferPointer, _ firstRow: Int, _ count: Int) throws -> Void) throws {
            let perBlock = max(1, (4 << 20) / rowBytes)
            var block = [UInt8](repeating: 0, count: min(perBlock, max(rows, 1)) * rowBytes)
            var row = 0
            while row < rows {
                let n = min(perBlock, rows - row)
                try block.withUnsafeMutableBytes { b in
                    let part = UnsafeMutableRawBufferPointer(rebasing: b[0 ..< n * rowBytes])
                    try file.read(into: part, at: rowsOffset + row * rowBytes)
                    try body(UnsafeRawBufferPointer(part), row, n)
                }
                row += n
            }
        }
    }

    /// Everything of a parameter file but its rows and dense values: the header and where
    /// each part lies, read from the fixed header and the table headers alone (a few small
    /// reads whatever the file's size). The checksum is not verified here
    /// (`checksums(path:)` streams it; `RowStream` verifies it while reading).
    public struct Layout: Sendable {
        public var path: String
        public var version: UInt32
        public var header: Header
        public var fileSize: Int
        /// Byte offset of the dense chunk, (header.denseChunk) f32.
        public var denseOffset: Int
        /// Dense optimizer state floats per weight (0: none, e.g. a version 1 file).
        public var denseStateWidth: Int
        /// Dense optimizer updates applied.
        public var denseStep: UInt32
        /// Byte offset of the dense state, (denseStateWidth × denseChunk) f32, blockwise.
        public var denseStateOffset: Int
        /// Tables in file order (ascending id).
        public var tables: [TableLayout]
        /// Bytes covered by the checksum (all but the trailing 4).
        public var bodyBytes: Int { fileSize - 4 }
    }

    /// Reads the layout of the file at `path`, with the same structural checks as
    /// `read(path:)` (magic, version, header, table headers, every length against the file
    /// size, nothing between the last row and the checksum). Errors name the file and offset.
    public static func layout(path: String) throws -> Layout {
        try layout(of: try PosixReadFile(path: path))
    }

    /// `layout(path:)` over an open file.
    package static func layout(of file: PosixReadFile) throws -> Layout {
        let path = file.path, size = file.size
        guard size >= magic.count + 4 + 4 else {
            throw HeedError(.corrupt, "\(path): \(size) bytes is too short for a parameter file")
        }
        let body = size - 4
        let fixed = try file.read(count: min(body, 8 + 4 * 6 + 8 * 3), at: 0)
        guard Array(fixed[0..<8]) == magic else { throw HeedError(.corrupt, "\(path): byte offset 0: not a Heed parameter file (bad magic)") }
        var reader = ByteReader(bytes: fixed, limit: fixed.count, path: path)
        reader.position = 8
        let version = try reader.u32()
        guard readableVersions.contains(version) else {
            throw HeedError(.unsupported, "\(path): byte offset 8: parameter file version \(version); this build reads versions \(readableVersions.lowerBound)-\(readableVersions.upperBound)")
        }
        let header = Header(rank: Int(try reader.u32()), serverCount: Int(try reader.u32()), slotCount: Int(try reader.u32()),
                            tableCount: Int(try reader.u32()), denseStart: Int(try reader.u64()),
                            denseTotal: Int(try reader.u64()), denseChunk: Int(try reader.u64()))
        guard header.denseStart + header.denseChunk <= header.denseTotal, header.rank < header.serverCount,
              header.denseChunk <= (body - reader.position) / 4 else {
            throw HeedError(.corrupt, "\(path): header is inconsistent (rank \(header.rank) of \(header.serverCount), dense \(header.denseStart)+\(header.denseChunk) of \(header.denseTotal), \(size) bytes)")
        }
        let denseOffset = reader.position
        var position = denseOffset + 4 * header.denseChunk
        var stateWidth = 0, denseStep: UInt32 = 0
        if version >= 2 {
            let at = position
            guard body - at >= 8 else {
                throw HeedError(.corrupt, "\(path): byte offset \(at): file ends inside the dense state header (\(body) bytes of data)")
            }
            var r = ByteReader(bytes: try file.read(count: 8, at: at), limit: 8, path: path)
            stateWidth = Int(try r.u32())
            denseStep = try r.u32()
            guard stateWidth <= 8, stateWidth * header.denseChunk <= (body - at - 8) / 4 else {
                throw HeedError(.corrupt, "\(path): byte offset \(at): dense state width \(stateWidth) (at most 8, and it must fit the file)")
            }
            position += 8
        }
        let denseStateOffset = position
        position += 4 * stateWidth * header.denseChunk
        var tables: [TableLayout] = []
        for _ in 0..<header.tableCount {
            let at = position
            guard body - at >= 20 else {
                throw HeedError(.corrupt, "\(path): byte offset \(at): file ends inside a table header (\(body) bytes of data)")
            }
            var r = ByteReader(bytes: try file.read(count: 20, at: at), limit: 20, path: path)
            let id = try r.u32(), dim = Int(try r.u32()), width = Int(try r.u32()), rows = Int(try r.u64())
            position = at + 20
            guard id <= 255, dim >= 1, width >= dim, width <= 1 << 20, rows <= (body - position) / (12 + 4 * width) else {
                throw HeedError(.corrupt, "\(path): byte offset \(at): bad table header (id \(id), dim \(dim), width \(width), rows \(rows))")
            }
            let t = TableLayout(id: UInt8(id), dim: dim, width: width, rows: rows, rowsOffset: position)
            tables.append(t)
            position = t.endOffset
        }
        guard position == body else {
            throw HeedError(.corrupt, "\(path): byte offset \(position): \(body - position) unexpected bytes before the checksum")
        }
        return Layout(path: path, version: version, header: header, fileSize: size, denseOffset: denseOffset,
                      denseStateWidth: stateWidth, denseStep: denseStep, denseStateOffset: denseStateOffset, tables: tables)
    }
}
