import HeedCore

extension SavedModel {
    /// One saved embedding row.
    public struct Row: Equatable, Sendable {
        public var key: UInt64
        /// Updates the row had received.
        public var step: UInt32
        /// (width) floats: `w` (dim) then the optimizer state (Adam: `m` (dim), `v` (dim)).
        public var values: [Float]
    }

    /// The saved rows of table `table` whose keys are in `keys`, found by scanning that
    /// table's rows in every file (4 MiB reads). Keys the model does not hold are absent
    /// from the result. Checksums are not verified here (`verifyFiles` does that).
    public func rows(directory: String, table: UInt8, keys: Set<UInt64>) throws -> [UInt64: Row] {
        var found: [UInt64: Row] = [:]
        for layout in try layouts(directory: directory) {
            guard let t = layout.tables.first(where: { $0.id == table }), t.rows > 0 else { continue }
            let file = try PosixReadFile(path: layout.path)
            try t.forEachRowBlock(in: try PosixReadFile(path: layout.path)) { b, _, n in
                for r in 0..<n {
                    // Safe: row r (rowBytes bytes) lies inside the n rows just read.
                    let at = r * t.rowBytes
                    let key = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                    guard keys.contains(key) else { continue }
                    let step = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))
                    let values = (0..<t.width).map {
                        Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at + 12 + 4 * $0, as: UInt32.self)))
                    }
                    found[key] = Row(key: key, step: step, values: values)
                }
            }
        }
        return found
    }
}
