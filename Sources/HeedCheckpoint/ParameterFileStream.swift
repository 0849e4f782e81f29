import Foundation
import HeedCore

/// Reads a parameter file front to back exactly once, in large blocks, checksumming every
/// byte on the way, and hands its dense part and its table rows to the caller block by
/// block, so a file of any size is applied in bounded memory (three blocks plus the dense
/// chunk) instead of being loaded whole (`ParameterFile.read`).
///
/// A reader thread reads and checksums the next blocks while the caller applies the
/// current one: reading plus CRC-32 and applying rows each take about as long, so on two
/// cores the pipeline roughly halves the time of doing them one after the other.
///
/// The checksum is known only at the end: `read` throws `.corrupt` then if it does not
/// match, after the callbacks have seen the (damaged) data. Callers apply into state they
/// discard on error (a fresh shard not yet serving) or verify first (`checksums(path:)`).
public struct ParameterFileStream {
    /// The file's layout (`ParameterFile.layout(path:)`).
    public let layout: ParameterFile.Layout
    /// Bytes per read of table rows (rounded down to whole rows, at least one row).
    public var blockBytes: Int

    public init(layout: ParameterFile.Layout, blockBytes: Int = 8 << 20) {
        self.layout = layout
        self.blockBytes = blockBytes
    }

    /// Consecutive rows of one table, viewing the bytes just read; valid only during the
    /// callback that receives it.
    public struct RowBlock {
        /// The table the rows belong to.
        public let table: ParameterFile.TableLayout
        /// Index of the block's first row within the table.
        public let firstRow: Int
        /// Rows in the block.
        public let count: Int
        /// (count × table.rowBytes) bytes.
        let bytes: UnsafeRawBufferPointer

        /// Row i's key.
        public func key(_ i: Int) -> UInt64 {
            // Safe: i < count, so the 8 bytes lie inside `bytes` (checked in debug builds).
            assert(i < count)
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * table.rowBytes, as: UInt64.self))
        }

        /// Row i's update count.
        public func step(_ i: Int) -> UInt32 {
            assert(i < count)
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * table.rowBytes + 8, as: UInt32.self))
        }

        /// Copies row i's (table.width) floats to `out`.
        public func copyValues(_ i: Int, to out: UnsafeMutablePointer<Float>) {
            assert(i < count)
            let at = i * table.rowBytes + 12
            #if _endian(little)
            // Safe: the row's 4 · width value bytes follow its 12-byte key and step inside `bytes`;
            // `out` has room for width floats (the caller's contract).
            UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress! + at, byteCount: 4 * table.width)
            #else
            for j in 0..<table.width {
                out[j] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 4 * j, as: UInt32.self)))
            }
            #endif
        }
    }

    /// Reads the whole file once.
    /// - Parameters:
    ///   - dense: called first with (header.denseChunk) weights and their optimizer state,
    ///     (denseStateWidth × denseChunk) floats, blockwise.
    ///   - rows: called for every block of rows of every table, in file order, on the
    ///     calling thread.
    /// - Returns: the file's checksum, verified against the one it stores.
    /// - Throws: `.corrupt` naming the file if the checksum does not match or the file
    ///   changed size since its layout was read; `.io` for a failed read; whatever a
    ///   callback throws (reading stops).
    @discardableResult
    public func read(dense: ([Float], [Float]) throws -> Void, rows: (RowBlock) throws -> Void) throws -> UInt32 {
        let file = try PosixReadFile(path: layout.path)
        guard file.size == layout.fileSize else {
            throw HeedError(.corrupt, "\(layout.path): \(file.size) bytes, \(layout.fileSize) when its layout was read (the file changed)")
        }
        file.adviseSequential()
        var crc = CRC32()
        let headEnd = layout.tables.first.map { $0.rowsOffset - 20 } ?? layout.bodyBytes
        let head = try file.read(count: headEnd, at: 0)
        crc.update(head)
        let chunk = layout.header.denseChunk
        try dense(Self.floats(head, at: layout.denseOffset, count: chunk),
                  Self.floats(head, at: layout.denseStateOffset, count: layout.denseStateWidth * chunk))

        let longest = layout.tables.map(\.rowBytes).max() ?? 0
        let bufferBytes = max(20, longest * max(1, blockBytes / max(1, longest)))
        let pipeline = BlockPipeline(buffers: 3, bytes: bufferBytes)
        let tables = layout.tables
        let startCRC = crc
        let reader = Thread {
            pipeline.finish(Result { try Self.produce(file: file, tables: tables, crc: startCRC, into: pipeline) })
        }
        reader.start()
        var failure: (any Error)?
        while let block = pipeline.takeFull() {
            if failure == nil {
                do {
                    try block.buffer.withUnsafeBytes { b in
                        let t = tables[block.table]
                        try rows(RowBlock(table: t, firstRow: block.firstRow, count: block.count,
                                          bytes: UnsafeRawBufferPointer(rebasing: b[0..<block.count * t.rowBytes])))
                    }
                } catch {
                    failure = error
                    pipeline.cancel()
                }
            }
            pipeline.putFree(block.buffer)
        }
        let outcome = Result { try pipeline.result() }
        if let failure { throw failure }
        let computed = try outcome.get()
        let tail = try file.read(count: 4, at: layout.bodyBytes)
        let stored = tail.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        guard stored == computed else {
            throw HeedError(.corrupt, "\(layout.path): checksum mismatch (stored \(ParameterFile.hex(stored)), computed \(ParameterFile.hex(computed))): the file is damaged")
        }
        return stored
    }

    /// The reader thread's loop: every table header and block of rows in file order, read
    /// into free buffers, checksummed, and queued. Returns the checksum of the body.
    private static func produce(file: PosixReadFile, tables: [ParameterFile.TableLayout], crc start: CRC32,
                                into pipeline: BlockPipeline) throws -> UInt32 {
        var crc = start
        var header = [UInt8](repeating: 0, count: 20)
        for (index, t) in tables.enumerated() {
            try header.withUnsafeMutableBytes { try file.read(into: $0, at: t.rowsOffset - 20) }
            crc.update(header)
            var row = 0
            while row < t.rows {
                guard var buffer = pipeline.takeFree() else { return crc.value }   // the consumer gave up
                let n = min(max(1, buffer.count / t.rowBytes), t.rows - row)
                try buffer.withUnsafeMutableBytes { b in
                    let block = UnsafeMutableRawBufferPointer(rebasing: b[0..<n * t.rowBytes])
                    try file.read(into: block, at: t.rowsOffset + row * t.rowBytes)
                    crc.update(UnsafeRawBufferPointer(block))
                }
                pipeline.putFull(.init(table: index, firstRow: row, count: n, buffer: buffer))
                row += n
            }
        }
        return crc.value
    }

    /// `count` little-endian floats of `bytes` from `at`.
    private static func floats(_ bytes: [UInt8], at: Int, count: Int) -> [Float] {
        bytes.withUnsafeBytes { b in
            (0..<count).map {
                // Safe: the layout placed these floats before the first table header, inside `bytes`.
                Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at + 4 * $0, as: UInt32.self)))
            }
        }
    }
}

/// Buffers passed between `ParameterFileStream`'s reader thread and its caller: free
/// buffers go to the reader, filled ones come back in order, then the reader's result.
private final class BlockPipeline: @unchecked Sendable {
    /// A filled buffer: rows [firstRow, firstRow + count) of table `table` (its index in the layout).
    struct Block {
        var table: Int
        var firstRow: Int
        var count: Int
        var buffer: [UInt8]
    }

    private let condition = NSCondition()
    private var free: [[UInt8]]
    private var full: [Block] = []
    private var outcome: Result<UInt32, any Error>?
    private var cancelled = false

    init(buffers: Int, bytes: Int) {
        free = (0..<buffers).map { _ in [UInt8](repeating: 0, count: bytes) }
    }

    /// A free buffer for the reader; nil once the caller cancelled.
    func takeFree() -> [UInt8]? {
        condition.lock(); defer { condition.unlock() }
        while free.isEmpty && !cancelled { condition.wait() }
        return cancelled ? nil : free.removeLast()
    }

    func putFull(_ block: Block) {
        condition.lock(); defer { condition.unlock() }
        full.append(block)
        condition.broadcast()
    }

    /// The next filled buffer in file order; nil when the reader has finished and all were taken.
    func takeFull() -> Block? {
        condition.lock(); defer { condition.unlock() }
        while full.isEmpty && outcome == nil { condition.wait() }
        return full.isEmpty ? nil : full.removeFirst()
    }

    func putFree(_ buffer: [UInt8]) {
        condition.lock(); defer { condition.unlock() }
        free.append(buffer)
        condition.broadcast()
    }

    /// The reader's last act: its checksum or its error.
    func finish(_ result: Result<UInt32, any Error>) {
        condition.lock(); defer { condition.unlock() }
        outcome = result
        condition.broadcast()
    }

    /// Stops the reader at its next buffer.
    func cancel() {
        condition.lock(); defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
    }

    /// Waits for the reader to finish and returns its checksum or rethrows its error.
    func result() throws -> UInt32 {
        condition.lock()
        while outcome == nil { condition.wait() }
        let r = outcome!
        condition.unlock()
        return try r.get()
    }
}
