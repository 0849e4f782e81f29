import Foundation
import HeedCore
import Testing
@testable import HeedData

/// `--threads`: records are built by several threads over contiguous ranges of users, and the
/// dataset is the one a single thread writes, byte for byte.
@Suite struct ParallelPrepareTests {
    /// The whole prepare: 1 thread (every event in memory) against 2 and 3 threads, spilled or not.
    @Test(arguments: MemoryBudgetTests.cases.filter { $0.shardFormat == 2 })
    func moreThreadsWriteTheSameDataset(_ c: MemoryBudgetTests.Case) throws {
        let dir = Scratch(); defer { dir.remove() }
        var outs: [String] = []
        for (n, (threads, budget)) in [(1, nil), (2, PrepareOptions.defaultMemoryBudget), (3, MemoryBudgetTests.tiny)].enumerated() {
            var o = PrepareOptions(dataset: c.dataset, input: c.input, output: dir.path + "/out\(n)")
            o.shards = 3
            o.maxLength = 9
            o.sampleProtocol = c.sampleProtocol
            o.split = c.split
            o.threads = threads
            o.memoryBudget = budget
            try Preparer.prepare(o)
            outs.append(o.output)
        }
        try MemoryBudgetTests.expectSameFiles(outs[0], outs[1], "\(c.testDescription), 2 threads")
        try MemoryBudgetTests.expectSameFiles(outs[0], outs[2], "\(c.testDescription), 3 threads, spilled")
    }

    /// The parallel generator in small blocks (many blocks, uneven ranges, empty lanes) gives the
    /// serial generator's records in its order.
    @Test func blocksOfUsersGiveTheSerialRecordsInOrder() throws {
        for (protocolName, sampleProtocol) in [("ctr", PrepareOptions.SampleProtocol.ctr), ("seq", .seq)] {
            var o = PrepareOptions(dataset: .taobao, input: repoData + "/taobao-userbehavior-sample", output: "/unused")
            o.sampleProtocol = sampleProtocol
            o.shards = 4
            o.memoryBudget = nil
            var log = BadRowLog(skip: false)
            let builder = try SampleBuilder(dataset: try Preparer.load(o, log: &log), options: o)
            var serial: [SampleBuilder.GeneratedRef] = []
            try builder.generate(filling: false) { rec, ref, split, shard in
                serial.append(SampleBuilder.GeneratedRef(userID: rec.userID, ref: ref, split: split, shard: shard))
            }
            #expect(serial.count > 1000)
            for (threads, block) in [(1, 1 << 18), (2, 1), (3, 97), (5, 1000)] {
                var parallel: [SampleBuilder.GeneratedRef] = []
                try builder.generateReferences(threads: threads, blockEvents: block) { parallel.append($0) }
                let same = parallel.count == serial.count && zip(parallel, serial).allSatisfy {
                    $0.userID == $1.userID && $0.ref == $1.ref && $0.split == $1.split && $0.shard == $1.shard
                }
                #expect(same, "\(protocolName): \(threads) threads, blocks of \(block) events")
            }
        }
    }
}
