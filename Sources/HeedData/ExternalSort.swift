import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A fixed-width row an `ExternalSorter` can spill: plain bytes, no references.
///
/// `<` must be a strict total order (callers include a unique tie-breaker such as the file
/// order), so the output does not depend on where runs were cut.
protocol SpillableRow: BitwiseCopyable, Comparable {}

/// Sorts more rows than fit in memory: rows are buffered, a full buffer is sorted and
/// spilled as a run file, and `forEachSorted` merges the runs (k-way, a binary heap).
///
/// When nothing was spilled the buffer is sorted in place and read from memory, so a small
/// input costs no I/O. The order of equal rows is unspecified: `SpillableRow.<` must break
/// every tie. Run files live in `directory`, named `<name>-NNNNN.run`; `removeRuns()`
/// deletes them (the preparer also deletes its whole temporary folder on failure).
final class ExternalSorter<Row: SpillableRow> {
    /// Folder of the run files.
    let directory: String
    /// File-name prefix of this sorter's runs.
    let name: String
    private(set) var buffer: [Row] = []
    private(set) var runs: [String] = []
    /// Rows appended so far (buffered and spilled).
    private(set) var count = 0
    private var sortedInMemory = false

    /// Bytes one buffered row takes.
    static var rowBytes: Int { MemoryLayout<Row>.stride }

    init(directory: String, name: String) {
        self.directory = directory
        self.name = name
    }

    /// Bytes held by the buffer (its capacity, what the process pays for).
    var bufferedBytes: Int { buffer.capacity * Self.rowBytes }

    @inline(__always)
    func append(_ row: Row) {
        buffer.append(row)
        count += 1
    }

    /// Sorts the buffer and writes it as a new run; frees the buffer.
    func spill() throws {
        guard !buffer.isEmpty else { return }
        buffer.sort(by: <)
        let path = directory + "/" + name + "-" + String(format: "%05d", runs.count) + ".run"
        try Self.write(buffer, to: path)
        runs.append(path)
        buffer = []
    }

    /// Ends appending: spills the rest when earlier runs exist (else sorts in memory), and
    /// merges runs down to at most `maxOpenRuns` so the merge needs few file descriptors.
    func finish(maxOpenRuns: Int = 128) throws {
        if runs.isEmpty {
            buffer.sort(by: <)
            sortedInMemory = true
            return
        }
        try spill()
        var generation = 0
        while runs.count > maxOpenRuns {
            var merged: [String] = []
            for start in stride(from: 0, to: runs.count, by: maxOpenRuns) {
                let group = Array(runs[start..<min(runs.count, start + maxOpenRuns)])
                let path = directory + "/" + name + "-g\(generation)-" + String(format: "%05d", merged.count) + ".run"
                let out = try PosixFile(creating: path)
                var pending: [Row] = []
                pending.reserveCapacity(1 << 15)
                var offset = 0
                try Self.merge(group, readBytes: 1 << 18) { row in
                    pending.append(row)
                    if pending.count == 1 << 15 {
                        offset += try Self.write(pending, to: out, at: offset)
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                offset += try Self.write(pending, to: out, at: offset)
                for r in group { unlink(r) }
                merged.append(path)
            }
            runs = merged
            generation += 1
        }
    }

    /// Calls `body` with every row in sorted order; can be repeated after `finish()`.
    ///
    /// - Parameter readBytes: each run's read buffer (the merge holds `runs × readBytes`).
    func forEachSorted(readBytes: Int = 1 << 20, _ body: (Row) throws -> Void) throws {
        precondition(sortedInMemory || buffer.isEmpty, "finish() before forEachSorted")
        if sortedInMemory {
            for row in buffer { try body(row) }
            return
        }
        try Self.merge(runs, readBytes: readBytes, body)
    }

    /// Deletes the run files and frees the buffer.
    func removeRuns() {
        for r in runs { unlink(r) }
        runs = []
        buffer = []
    }

    /// Number of run files (0 when everything stayed in memory).
    var runCount: Int { runs.count }

    private static func write(_ rows: [Row], to path: String) throws {
        // Not synced: a run only lives as long as this process (a crash loses the whole prepare).
        let file = try PosixFile(creating: path)
        _ = try write(rows, to: file, at: 0)
    }

    @discardableResult
    private static func write(_ rows: [Row], to file: PosixFile, at offset: Int) throws -> Int {
        try rows.withUnsafeBytes { try file.write($0, at: offset) }
        return rows.count * rowBytes
    }

    /// A run file read front to back through a fixed buffer.
    private final class RunCursor {
        let file: PosixReadFile
        let rowsTotal: Int
        let storage: UnsafeMutableBufferPointer<Row>
        var filled = 0, next = 0, readRows = 0

        init(path: String, bufferRows: Int) throws {
            file = try PosixReadFile(path: path)
            file.adviseSequential()
            guard file.size % rowBytes == 0 else {
                throw HeedError(.corrupt, "\(path): run file of \(file.size) bytes is not a whole number of \(rowBytes)-byte rows")
            }
            rowsTotal = file.size / rowBytes
            storage = .allocate(capacity: max(1, bufferRows))
        }

        deinit { storage.deallocate() }

        /// The next row, or nil at the end of the run.
        @inline(__always)
        func pop() throws -> Row? {
            if next == filled {
                let n = min(storage.count, rowsTotal - readRows)
                if n == 0 { return nil }
                // Rows are plain bytes (BitwiseCopyable), so filling their memory from the file is a valid initialisation.
                try file.read(into: UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(storage.baseAddress!), count: n * rowBytes),
                              at: readRows * rowBytes)
                readRows += n
                filled = n
                next = 0
            }
            defer { next += 1 }
            return storage[next]
        }
    }

    /// K-way merge of sorted run files.
    private static func merge(_ paths: [String], readBytes: Int, _ body: (Row) throws -> Void) throws {
        let cursors = try paths.map { try RunCursor(path: $0, bufferRows: max(64, readBytes / rowBytes)) }
        // Binary min-heap of (row, cursor index); ties cannot happen (rows are totally ordered).
        var heap: [(Row, Int)] = []
        heap.reserveCapacity(cursors.count)
        func less(_ a: (Row, Int), _ b: (Row, Int)) -> Bool { a.0 < b.0 }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for (c, cursor) in cursors.enumerated() { if let row = try cursor.pop() { heap.append((row, c)) } }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        while !heap.isEmpty {
            let (row, c) = heap[0]
            try body(row)
            if let nextRow = try cursors[c].pop() {
                heap[0] = (nextRow, c)
            } else {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
    }
}
