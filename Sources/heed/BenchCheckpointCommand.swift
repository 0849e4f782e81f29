import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedOptim
import HeedServer
#if canImport(Glibc)
import Glibc
#endif

/// `heed bench checkpoint`: writing and restoring one server's checkpoint file against
/// the disk's sequential write and read bandwidth, measured in the same run and directory.
struct BenchCheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Checkpoint write and restore GB/s vs the disk's sequential write and read GB/s.",
        discussion: """
            Fills one server's table with --rows rows of dim --dim with Adam state (3 · dim floats a row), \
            then times (a) ParameterShard.save (fsync and rename included) against writing as many bytes \
            with 8 MiB writes and fsync, and (b) the streaming restore into a fresh shard against reading \
            the same bytes sequentially. Before each read the files are evicted from the page cache \
            (posix_fadvise DONTNEED on the clean, fsynced files; the residency left is printed), so both \
            reads come from the disk. Targets: write/disk write >= 0.5, restore/disk read >= 0.5. \
            Scales --rows down if the table would not fit in 3/4 of the available memory.
            """
    )

    @Option(help: "Rows in the table.") var rows = 10_000_000
    @Option(help: "Embedding dimension.") var dim = 64
    @Option(help: "Directory for the checkpoint and the bandwidth file (on the disk to measure; emptied of them at the end).")
    var directory = "out/bench-checkpoint"
    @Flag(help: "Also time the whole-file restore (ParameterFile.read + restore(from:)) if it fits in memory.")
    var wholeFile = false
    @Option(help: "Seed for the row values.") var seed: UInt64 = 1

    func validate() throws {
        guard rows >= 1, dim >= 1 else { throw ValidationError("--rows and --dim must be >= 1") }
    }

    func run() throws {
        let dim = dim, seed = seed
        // Row state plus the table's key index and arena overhead (bench storage measures ~1.05 of raw).
        let rowBytes = Double(8 + 4 + 4 + 4 * 3 * dim) * 1.1
        let available = Double(Self.memAvailable())
        var rows = self.rows
        if available > 0, Double(rows) * rowBytes > 0.75 * available {
            let fit = max(1, Int(0.75 * available / rowBytes))
            print("scaled down: \(rows) rows need ~\(fixed(Double(rows) * rowBytes / 1e9, 1)) GB of table, "
                  + "\(fixed(available / 1e9, 1)) GB available; using \(fit) rows")
            rows = fit
        }
        try FileOps.makeDirectories(directory)
        let checkpointDir = directory + "/checkpoint", diskFile = directory + "/disk-bandwidth.bin"
        defer { FileOps.removeTree(checkpointDir); FileOps.removeTree(diskFile) }
        let slots = 4096
        print("heed bench checkpoint: \(rows) rows × dim \(dim), Adam (\(3 * dim) floats a row), one server, in \(directory)")

        // Fill.
        var shard: ParameterShard? = try makeShard()
        var fillSeconds = 0.0
        fillSeconds = try seconds {
            let table = shard!.tables[1]!
            let block = 65_536
            var keys = [UInt64](repeating: 0, count: block), steps = [UInt32](repeating: 0, count: block)
            var values = [Float](repeating: 0, count: block * table.width)
            var rng = SeededGenerator(seed: seed)
            for start in stride(from: 0, to: rows, by: block) {
                let n = min(block, rows - start)
                for i in 0..<n {
                    keys[i] = FeatureKey(group: 1, id: UInt64(start + i)).rawValue
                    steps[i] = UInt32(truncatingIfNeeded: rng.next() & 0xFFFF)
                }
                // Cheap distinct values: a random base per block plus the position.
                let base = Float(rng.next() % 1000) / 1000
                for j in 0..<n * table.width { values[j] = base + Float(j) * 1e-6 }
                keys.withUnsafeBufferPointer { k in
                    values.withUnsafeBufferPointer { v in
                        steps.withUnsafeBufferPointer { s in
                            table.restore(keys: UnsafeBufferPointer(rebasing: k[0..<n]), values: UnsafeBufferPointer(rebasing: v[0..<n * table.width]),
                                          steps: UnsafeBufferPointer(rebasing: s[0..<n]), lastTouched: 0)
                        }
                    }
                }
            }
        }
        print("fill (EmbeddingTable.restore): \(rows) rows in \(fixed(fillSeconds, 2)) s")

        // (a) Checkpoint write against the disk's sequential write.
        FileOps.removeTree(checkpointDir)
        var written: ParameterFile.Written!
        let (writeSeconds, writeCPU) = try timed { written = try shard!.save(directory: checkpointDir, slotCount: slots) }
        let bytes = written.bytes
        var config = RunConfig()
        config.layout.denseCount = shard!.denseTotal
        config.layout.tableDims = [1: dim]
        let model = SavedModel(step: 0, config: config, servers: 1, slots: slots, files: [written], kind: .checkpoint)
        try model.write(to: checkpointDir)
        let diskWriteSeconds = try seconds { try Self.writeSequential(diskFile, bytes: bytes) }
        let writeRate = Double(bytes) / writeSeconds, diskWriteRate = Double(bytes) / diskWriteSeconds
        print("checkpoint write (ParameterShard.save, fsync included): \(fixed(Double(bytes) / 1e9, 2)) GB in \(fixed(writeSeconds, 2)) s = \(fixed(writeRate / 1e9, 2)) GB/s, CPU share \(fixed(writeCPU, 2))")
        print("disk sequential write (8 MiB writes + fsync, same directory): \(fixed(diskWriteRate / 1e9, 2)) GB/s")
        shard = nil   // free the table before restoring into a fresh one

        // (b) Restore against the disk's sequential read, both from the disk.
        let checkpointFile = checkpointDir + "/" + written.name
        let diskResident = Self.evict(diskFile)
        let diskReadSeconds = try seconds { try Self.readSequential(diskFile) }
        let diskReadRate = Double(bytes) / diskReadSeconds
        print("disk sequential read (8 MiB reads, \(fixed(100 * diskResident, 1)) % in page cache before): \(fixed(diskReadRate / 1e9, 2)) GB/s")
        // Restoring creates every row in fresh memory: the first write to each page (the
        // kernel zeroing it, and on a VM the host backing it) bounds the restore as well.
        let touchSeconds = try seconds { try Self.firstTouch(bytes: Int(Double(rows) * rowBytes)) }
        let touchRate = Double(rows) * rowBytes / touchSeconds
        print("first touch of fresh memory (\(fixed(Double(rows) * rowBytes / 1e9, 2)) GB, the table's size): \(fixed(touchRate / 1e9, 2)) GB/s")
        let restored = try makeShard()
        let checkpointResident = Self.evict(checkpointFile)
        var loaded = 0
        let (restoreSeconds, restoreCPU) = try timed { loaded = try restored.restore(directory: checkpointDir, model: model) }
        guard loaded == rows, restored.tables[1]!.stats().rows == rows else {
            throw HeedError(.internalError, "bench checkpoint: restored \(loaded) rows of \(rows)")
        }
        let restoreRate = Double(bytes) / restoreSeconds
        print("restore (streaming: ParameterShard.restore(directory:model:), \(fixed(100 * checkpointResident, 1)) % in page cache before): "
              + "\(rows) rows in \(fixed(restoreSeconds, 2)) s = \(fixed(restoreRate / 1e9, 2)) GB/s, CPU share \(fixed(restoreCPU, 2)) (reader thread + applying thread: up to 2)")

        if wholeFile {
            // ParameterFile.read holds the file's bytes and its parsed rows (2 × the file) next to the table.
            let need = 2 * Double(bytes) + Double(rows) * rowBytes
            if need > 0.9 * Double(Self.memAvailable()) {
                print("whole-file restore: skipped (needs ~\(fixed(need / 1e9, 1)) GB, \(fixed(Double(Self.memAvailable()) / 1e9, 1)) GB available)")
            } else {
                let fresh = try makeShard()
                let resident = Self.evict(checkpointFile)
                let t = try seconds {
                    let files = try model.readFiles(directory: checkpointDir)
                    try fresh.restore(from: files, slotCount: slots)
                }
                print("whole-file restore (ParameterFile.read + restore(from:), \(fixed(100 * resident, 1)) % in page cache before): "
                      + "\(fixed(t, 2)) s = \(fixed(Double(bytes) / t / 1e9, 2)) GB/s")
            }
        }
        print("ratio checkpoint write / disk write: \(fixed(writeRate / diskWriteRate, 2)) (target >= 0.5)")
        print("ratio restore / disk read: \(fixed(restoreRate / diskReadRate, 2)) (target >= 0.5); "
              + "restore / min(disk read, first touch): \(fixed(restoreRate / min(diskReadRate, touchRate * Double(bytes) / (Double(rows) * rowBytes)), 2))")
    }

    /// The shard under test: one table (id 1) with lazy Adam, no dense weights.
    private func makeShard() throws -> ParameterShard {
        let table = EmbeddingTableConfig(name: "bench", dim: dim, initializer: .uniform(scale: 0.01), optimizer: .adam(AdamConfig(lr: 1e-3)))
        return try ParameterShard(rank: 0, serverCount: 1, tableConfigs: [1: table], initialDense: [],
                                  denseOptimizer: .adam(AdamConfig(lr: 1e-3)))
    }

    /// Writes `bytes` bytes to `path` in 8 MiB writes, then fsyncs it.
    static func writeSequential(_ path: String, bytes: Int) throws {
        let file = try PosixFile(creating: path)
        let chunk = [UInt8](repeating: 0x5A, count: 8 << 20)
        var done = 0
        try chunk.withUnsafeBytes { c in
            while done < bytes {
                let n = min(c.count, bytes - done)
                try file.write(UnsafeRawBufferPointer(rebasing: c[0..<n]), at: done)
                done += n
            }
        }
        try file.syncAndClose()
    }

    /// Maps `bytes` of fresh anonymous memory, writes one byte per page, unmaps it.
    static func firstTouch(bytes: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let map = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), map != MAP_FAILED else {
            throw HeedError(.io, "bench checkpoint: cannot map \(bytes) bytes (\(String(cString: strerror(errno))))")
        }
        defer { munmap(map, bytes) }
        _ = madvise(map, bytes, MADV_HUGEPAGE)   // as the table's arenas are
        // Safe: every offset is below `bytes`, inside the mapping.
        for offset in stride(from: 0, to: bytes, by: page) { map.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
    }

    /// Reads `path` front to back in 8 MiB reads.
    static func readSequential(_ path: String) throws {
        let file = try PosixReadFile(path: path)
        file.adviseSequential()
        var chunk = [UInt8](repeating: 0, count: 8 << 20)
        var done = 0
        try chunk.withUnsafeMutableBytes { c in
            while done < file.size {
                let n = min(c.count, file.size - done)
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: c[0..<n]), at: done)
                done += n
            }
        }
    }

    /// Drops `path`'s (clean) pages from the page cache and returns the fraction still
    /// resident (mincore), so a read after it comes from the disk. No root needed, and
    /// other processes' cache is left alone (unlike /proc/sys/vm/drop_caches).
    static func evict(_ path: String) -> Double {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 1 }
        defer { close(fd) }
        fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return 0 }
        let size = Int(st.st_size), page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return 1 }
        defer { munmap(map, size) }
        let pages = (size + page - 1) / page
        var vec = [UInt8](repeating: 0, count: pages)
        // Safe: vec holds one byte per page of the mapping.
        guard vec.withUnsafeMutableBufferPointer({ mincore(map, size, $0.baseAddress) }) == 0 else { return 1 }
        return Double(vec.reduce(0) { $0 + Int($1 & 1) }) / Double(pages)
    }

    /// MemAvailable from /proc/meminfo in bytes (0 if unknown).
    static func memAvailable() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count > 1, let kib = Int(fields[1]) { return kib << 10 }
        }
        return 0
    }

    /// Wall-clock seconds of `body` and the process CPU seconds it used per wall second,
    /// so a run starved by other processes on the machine can be recognised.
    private func timed(_ body: () throws -> Void) throws -> (wall: Double, cpuShare: Double) {
        let cpu0 = Self.processCPUSeconds(), start = ContinuousClock.now
        try body()
        let (s, atto) = (ContinuousClock.now - start).components
        let wall = Double(s) + Double(atto) * 1e-18
        return (wall, (Self.processCPUSeconds() - cpu0) / max(wall, 1e-9))
    }

    /// Wall-clock seconds of `body`.
    private func seconds(_ body: () throws -> Void) throws -> Double { try timed(body).wall }

    /// CPU time used by this process so far.
    private static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// `x` with `digits` decimals.
    private func fixed(_ x: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", x)
    }
}
