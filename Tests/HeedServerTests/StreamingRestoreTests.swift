import Foundation
import HeedCheckpoint
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

/// The streaming restore (`restore(directory:model:)`, one pass over the files in blocks)
/// gives the same shards as the whole-file restore (`ParameterFile.read` +
/// `restore(from:slotCount:)`) and refuses damaged files.
@Suite struct StreamingRestoreTests {
    typealias R = ShardRestoreTests

    /// The 4 trained shards saved as a checkpoint directory with its manifest.
    static func saved() throws -> (directory: String, model: SavedModel, original: [ParameterShard]) {
        let original = try R.trained()
        let directory = NSTemporaryDirectory() + "heed-stream-restore-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try SavedModel.prepareDirectory(directory)
        let files = try original.map { try $0.save(directory: directory, slotCount: R.slots) }
        var config = RunConfig()
        config.layout.denseCount = R.denseCount
        config.layout.tableDims = [1: 4, 2: 8]
        let model = SavedModel(step: 5, config: config, servers: 4, slots: R.slots, files: files, kind: .checkpoint)
        try model.write(to: directory)
        return (directory, model, original)
    }

    /// Flips a bit of a float in the first row of the first file that holds rows (only
    /// the checksum can notice) and returns that file's rank.
    static func damageARow(in directory: String) throws -> Int {
        for rank in 0..<4 {
            let path = directory + "/" + ParameterFile.fileName(rank: rank)
            guard let table = try ParameterFile.layout(path: path).tables.first(where: { $0.rows > 0 }) else { continue }
            var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[table.rowsOffset + 20] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return rank
        }
        throw HeedError(.internalError, "no file holds rows")
    }

    @Test(arguments: [1, 2, 4, 5])
    func streamingRestoreEqualsTheWholeFileRestore(servers: Int) throws {
        let (directory, model, original) = try Self.saved()
        defer { FileOps.removeTree(directory) }
        let files = try model.readFiles(directory: directory)
        let whole = try R.shards(servers, initialDense: [Float](repeating: 0, count: R.denseCount))
        let streamed = try R.shards(servers, initialDense: [Float](repeating: 0, count: R.denseCount))
        let loadedWhole = try whole.map { try $0.restore(from: files, slotCount: R.slots) }
        let loadedStreamed = try streamed.map { try $0.restore(directory: directory, model: model) }
        #expect(loadedStreamed == loadedWhole)
        #expect(R.equal(try R.rows(whole), try R.rows(streamed)))
        #expect(R.equal(try R.rows(original), try R.rows(streamed)))
        let plan = ShardingPlan(serverCount: servers, slotCount: R.slots)
        for shard in streamed {
            for table in shard.tables.values {
                try table.forEachRow(plan: plan) { #expect(plan.server(of: $0.key) == shard.rank, "key \($0.key) restored on the wrong server") }
            }
        }
        #expect(loadedStreamed.reduce(0, +) == 800)
        let (w0, s0, t0) = R.dense(whole), (w1, s1, t1) = R.dense(streamed)
        #expect(w0.map(\.bitPattern) == w1.map(\.bitPattern))
        #expect(s0.map { $0.map(\.bitPattern) } == s1.map { $0.map(\.bitPattern) })
        #expect(t0 == t1 && t1 == [5])
        #expect(w1.map(\.bitPattern) == R.dense(original).weights.map(\.bitPattern))
    }

    @Test(arguments: [1, 3, 5])
    func aDamagedFileFailsEveryServerThatReadsIt(servers: Int) throws {
        let (directory, model, _) = try Self.saved()
        defer { FileOps.removeTree(directory) }
        let damaged = try Self.damageARow(in: directory)
        for shard in try R.shards(servers, initialDense: [Float](repeating: 0, count: R.denseCount)) {
            let error = try #require(throws: HeedError.self) { try shard.restore(directory: directory, model: model) }
            #expect(error.code == .corrupt && error.message.contains(ParameterFile.fileName(rank: damaged)) && error.message.contains("checksum"))
        }
    }

    @Test func onTheSameServerCountOnlyTheOwnersFileIsRead() throws {
        let (directory, model, _) = try Self.saved()
        defer { FileOps.removeTree(directory) }
        let damaged = try Self.damageARow(in: directory)
        for shard in try R.shards(4, initialDense: [Float](repeating: 0, count: R.denseCount)) {
            if shard.rank == damaged {
                #expect(throws: HeedError.self) { try shard.restore(directory: directory, model: model) }
            } else {
                try shard.restore(directory: directory, model: model)
            }
        }
    }

    @Test func aFileFromAnotherSaveIsRefused() throws {
        let (directory, model, original) = try Self.saved()
        defer { FileOps.removeTree(directory) }
        // A later save of server 1 (one more step), under the old manifest.
        try R.push(original, keys: (0..<400).map { FeatureKey(group: 1, id: UInt64($0)).rawValue }, round: 7)
        _ = try original[1].save(directory: directory, slotCount: R.slots)
        let shard = try R.shards(4, initialDense: [Float](repeating: 0, count: R.denseCount))[1]
        let error = try #require(throws: HeedError.self) { try shard.restore(directory: directory, model: model) }
        #expect(error.code == .corrupt && error.message.contains("shard-1.bin") && error.message.contains("manifest"))
    }

    @Test func restoreNeedsAFreshShard() throws {
        let (directory, model, _) = try Self.saved()
        defer { FileOps.removeTree(directory) }
        let shard = try R.shards(1, initialDense: [Float](repeating: 0, count: R.denseCount))[0]
        _ = try shard.pullRows(table: 1, keys: [123])
        let error = try #require(throws: HeedError.self) { try shard.restore(directory: directory, model: model) }
        #expect(error.message.contains("fresh shard"))
    }
}
