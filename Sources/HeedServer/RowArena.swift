/// Fixed-size rows carved from large chunks that never move, with a free list.
///
/// Chunks are page-aligned (fresh `mmap`s), so with a stride that is a multiple of 64
/// every row starts on a cache line.
/// Chunks grow geometrically from 16 KiB to 64 MiB and are never reallocated, so a row's
/// address is stable for its lifetime (the key index stores addresses) and growing a
/// 10M-row table never copies it. Chunks of 2 MiB and more are mapped on huge pages.
/// A released row keeps its memory for the next allocation; the first 8 bytes of a
/// released row hold the free-list link. Not thread-safe: each table stripe owns one arena
/// under its lock. The arena owns its chunks, so it keeps their addresses (the one place
/// raw pointers are stored, as `Array` does for its buffer).
final class RowArena {
    /// One mapping.
    private struct Chunk {
        var base: UnsafeMutableRawPointer
        var rows: Int
        var bytes: Int
        var hugePages: Bool
    }

    /// Bytes per row (a multiple of 16).
    let stride: Int
    private let hugePages: Bool
    private var chunks: [Chunk] = []
    /// Rows carved from the last chunk so far.
    private var carved = 0
    private var freeHead: UnsafeMutableRawPointer?
    /// Rows handed out and not released.
    private(set) var liveRows = 0

    /// Size of the first chunk; each next one doubles.
    static let firstChunkBytes = 16 << 10
    /// Size at which chunks stop doubling.
    static let maxChunkBytes = 64 << 20

    /// An empty arena for rows of `stride` bytes.
    init(stride: Int, hugePages: Bool) {
        precondition(stride > 0 && stride % 16 == 0, "RowArena: stride must be a positive multiple of 16")
        self.stride = stride
        self.hugePages = hugePages
    }

    deinit {
        for c in chunks { PageMemory.unmap(c.base, bytes: c.bytes, hugePages: c.hugePages) }
    }

    /// A row of `stride` bytes: a released one if any (contents stale), else fresh zeros.
    @inline(__always)
    func allocate() -> UnsafeMutableRawPointer {
        liveRows += 1
        if let row = freeHead {
            // Safe: released rows store the next free row's address in their first 8 bytes.
            freeHead = UnsafeMutableRawPointer(bitPattern: row.load(as: UInt.self))
            return row
        }
        if chunks.isEmpty || carved == chunks[chunks.count - 1].rows { addChunk() }
        let row = chunks[chunks.count - 1].base + carved * stride
        carved += 1
        return row
    }

    /// Gives `row` back; it must come from `allocate()` and not be released twice.
    /// Overwrites the row's first 8 bytes.
    @inline(__always)
    func release(_ row: UnsafeMutableRawPointer) {
        row.storeBytes(of: UInt(bitPattern: freeHead), as: UInt.self)
        freeHead = row
        liveRows -= 1
    }

    /// Every row ever carved (live or released), in address order within each chunk.
    func forEachCarvedRow(_ body: (UnsafeMutableRawPointer) throws -> Void) rethrows {
        for (i, c) in chunks.enumerated() {
            let n = i == chunks.count - 1 ? carved : c.rows
            for r in 0..<n { try body(c.base + r * stride) }
        }
    }

    /// Bytes of memory the arena has touched: full chunks plus the used part of the last
    /// one rounded up to its page size (what the kernel has had to back).
    var touchedBytes: Int {
        guard let last = chunks.last else { return 0 }
        var total = 0
        for c in chunks.dropLast() { total += c.bytes }
        return total + min(last.bytes, PageMemory.mappedSize(carved * stride, hugePages: last.hugePages))
    }

    /// Bytes mapped (reserved address space).
    var mappedBytes: Int { chunks.reduce(0) { $0 + $1.bytes } }

    private func addChunk() {
        let previous = chunks.last?.bytes ?? (Self.firstChunkBytes / 2)
        var bytes = min(Self.maxChunkBytes, previous * 2)
        bytes = max(bytes, stride)
        let huge = hugePages && bytes >= PageMemory.hugePageSize
        bytes = PageMemory.mappedSize(bytes, hugePages: huge)
        let base = PageMemory.map(bytes: bytes, hugePages: huge)
        chunks.append(Chunk(base: base, rows: bytes / stride, bytes: bytes, hugePages: huge))
        carved = 0
    }
}
