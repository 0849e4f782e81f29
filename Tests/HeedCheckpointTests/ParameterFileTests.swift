import Foundation
import Testing
import HeedCore
@testable import HeedCheckpoint

/// A fresh temporary directory per test.
func temporaryDirectory() -> String {
    let dir = NSTemporaryDirectory() + "heed-ckpt-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Writes a small two-table file: table 3 (dim 2, width 6, 3 rows), table 9 (dim 1, width 3, 1 row).
@discardableResult
func writeSample(_ path: String, dense: [Float] = [0.5, -1.25, 3], rank: Int = 0, servers: Int = 1,
                 denseStart: Int = 0, denseTotal: Int = 3) throws -> ParameterFile.Written {
    let header = ParameterFile.Header(rank: rank, serverCount: servers, slotCount: 64, tableCount: 2,
                                      denseStart: denseStart, denseTotal: denseTotal, denseChunk: dense.count)
    let w = try ParameterFile.Writer(path: path, header: header, dense: dense)
    try w.beginTable(id: 3, dim: 2, width: 6, rows: 3)
    for r in 0..<3 {
        let values = (0..<6).map { Float(r * 10 + $0) + 0.25 }
        try values.withUnsafeBufferPointer { try w.appendRow(key: UInt64(100 + r) << 40, step: UInt32(r + 1), values: $0) }
    }
    try w.beginTable(id: 9, dim: 1, width: 3, rows: 1)
    try [Float(-7), 1e-8, 42].withUnsafeBufferPointer { try w.appendRow(key: .max, step: 9, values: $0) }
    return try w.finish()
}

@Suite struct ParameterFileTests {
    @Test func writtenRowsDenseAndStepsReadBackExactly() throws {
        let dir = temporaryDirectory()
        let path = dir + "/shard-0.bin"
        let written = try writeSample(path)
        #expect(written.rows == 4 && written.name == "shard-0.bin")
        #expect(try FileOps.size(path) == written.bytes)
        let c = try ParameterFile.read(path: path)
        #expect(c.crc32 == written.crc32)
        #expect(c.header == ParameterFile.Header(rank: 0, serverCount: 1, slotCount: 64, tableCount: 2, denseStart: 0, denseTotal: 3, denseChunk: 3))
        #expect(c.dense == [0.5, -1.25, 3])
        #expect(c.tables.map(\.id) == [3, 9])
        #expect(c.tables[0].keys == [100 << 40, 101 << 40, 102 << 40])
        #expect(c.tables[0].steps == [1, 2, 3])
        #expect(c.tables[0].values[6..<12] == [10.25, 11.25, 12.25, 13.25, 14.25, 15.25])
        #expect(c.tables[1].keys == [.max] && c.tables[1].values == [-7, 1e-8, 42])
        // Only the final name is left behind.
        #expect(FileOps.list(dir) == ["shard-0.bin"])
    }

    @Test(arguments: [0, 9, 40, 60, 100])
    func anyFlippedByteIsReportedWithThePath(offset: Int) throws {
        let path = temporaryDirectory() + "/shard-0.bin"
        try writeSample(path)
        var bytes = try ParameterFile.readAll(path)
        bytes[offset] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: HeedError.self) { try ParameterFile.read(path: path) }
        #expect([.corrupt, .unsupported].contains(error.code))
        #expect(error.message.contains(path))
    }

    @Test func aTruncatedFileIsCorrupt() throws {
        let path = temporaryDirectory() + "/shard-0.bin"
        try writeSample(path)
        let bytes = try ParameterFile.readAll(path)
        for cut in [3, 20, bytes.count / 2, bytes.count - 1] {
            try Data(bytes.prefix(cut)).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: HeedError.self) { try ParameterFile.read(path: path) }
            #expect(error.code == .corrupt, "cut at \(cut): \(error)")
        }
    }

    @Test func aWriterGivenTooFewRowsFailsAndLeavesNoFile() throws {
        let dir = temporaryDirectory()
        let header = ParameterFile.Header(rank: 0, serverCount: 1, slotCount: 8, tableCount: 1, denseStart: 0, denseTotal: 0, denseChunk: 0)
        do {
            let w = try ParameterFile.Writer(path: dir + "/shard-0.bin", header: header, dense: [])
            try w.beginTable(id: 1, dim: 1, width: 3, rows: 2)
            try [Float(1), 2, 3].withUnsafeBufferPointer { try w.appendRow(key: 1, step: 1, values: $0) }
            #expect(throws: HeedError.self) { _ = try w.finish() }
        }
        #expect(FileOps.list(dir).isEmpty)
    }
}

@Suite struct SavedModelTests {
    func config() -> RunConfig {
        var c = RunConfig()
        c.layout.denseCount = 5
        c.layout.tableDims = [3: 2, 9: 1]
        return c
    }

    /// Two servers' files and a manifest, as a 2-server run writes them.
    func saveTwoServers(_ dir: String) throws -> SavedModel {
        try SavedModel.prepareDirectory(dir)
        let a = try writeSample(dir + "/shard-0.bin", dense: [1, 2, 3], rank: 0, servers: 2, denseStart: 0, denseTotal: 5)
        let b = try writeSample(dir + "/shard-1.bin", dense: [4, 5], rank: 1, servers: 2, denseStart: 3, denseTotal: 5)
        let model = SavedModel(step: 12, config: config(), servers: 2, slots: 64, files: [a, b])
        try model.write(to: dir)
        return model
    }

    @Test func aSavedModelLoadsWithItsFilesAndDenseVector() throws {
        let dir = temporaryDirectory()
        let model = try saveTwoServers(dir)
        let loaded = try SavedModel.load(directory: dir)
        #expect(loaded == model)
        let files = try loaded.readFiles(directory: dir)
        #expect(files.count == 2 && files.flatMap(\.dense) == [1, 2, 3, 4, 5])
    }

    @Test func aDirectoryWithoutAManifestIsNotAModel() throws {
        let dir = temporaryDirectory()
        _ = try saveTwoServers(dir)
        try SavedModel.prepareDirectory(dir)   // a new save starts: the old manifest goes first
        let error = try #require(throws: HeedError.self) { _ = try SavedModel.load(directory: dir) }
        #expect(error.code == .notFound && error.message.contains("no manifest.json"))
    }

    @Test func aFileFromAnotherSaveIsRejected() throws {
        let dir = temporaryDirectory()
        _ = try saveTwoServers(dir)
        // Same size, different content: rewrite shard-1 with other dense values.
        try writeSample(dir + "/shard-1.bin", dense: [4, 6], rank: 1, servers: 2, denseStart: 3, denseTotal: 5)
        let model = try SavedModel.load(directory: dir)
        let error = try #require(throws: HeedError.self) { _ = try model.readFiles(directory: dir) }
        #expect(error.code == .corrupt && error.message.contains("shard-1.bin") && error.message.contains("manifest"))
    }

    @Test func aMissingOrShortFileIsNamed() throws {
        let dir = temporaryDirectory()
        _ = try saveTwoServers(dir)
        let bytes = try ParameterFile.readAll(dir + "/shard-0.bin")
        try Data(bytes.dropLast(8)).write(to: URL(fileURLWithPath: dir + "/shard-0.bin"))
        let short = try #require(throws: HeedError.self) { _ = try SavedModel.load(directory: dir) }
        #expect(short.message.contains("shard-0.bin"))
        unlink(dir + "/shard-0.bin")
        let missing = try #require(throws: HeedError.self) { _ = try SavedModel.load(directory: dir) }
        #expect(missing.message.contains("shard-0.bin"))
    }
}
