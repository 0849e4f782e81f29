import Foundation
import HeedCore
import Testing
@testable import HeedData

/// `--part k/N` and `heed prepare --merge`: the N parts of a prepare, merged, are the dataset
/// the single-process prepare writes, byte for byte (every shard, the sequence file, the
/// catalog and the manifest), on every loader's committed cut, the bundled samples, both
/// protocols and both split rules, whether the parts' runs stay in memory or are spilled;
/// merges of parts that do not form one prepare are refused, naming the directory.
@Suite struct PartMergeTests {
    /// The compact cases of the memory-budget tests (merging reads format 2 only).
    static let cases = MemoryBudgetTests.cases.filter { $0.shardFormat == 2 }

    /// The options `MemoryBudgetTests.prepare` uses for `c`, writing to `output`.
    static func options(_ c: MemoryBudgetTests.Case, output: String) -> PrepareOptions {
        var o = PrepareOptions(dataset: c.dataset, input: c.input, output: output)
        o.shards = 3
        o.maxLength = 9
        o.sampleProtocol = c.sampleProtocol
        o.split = c.split
        return o
    }

    /// Prepares the `count` parts of `c` into `prefix-k`; returns the directories.
    static func prepareParts(_ c: MemoryBudgetTests.Case, count: Int, prefix: String, budget: Int = PrepareOptions.defaultMemoryBudget,
                             configure: (inout PrepareOptions) -> Void = { _ in }) throws -> [String] {
        try (0..<count).map { k in
            var o = options(c, output: "\(prefix)-\(k)")
            o.memoryBudget = budget
            o.part = PrepareOptions.Part(index: k, count: count)
            configure(&o)
            let m = try Preparer.prepare(o)
            #expect(m.settings.part == "\(k)/\(count)")
            return o.output
        }
    }

    /// Expects the parts' counts to add up to the whole's, and their global counts to equal it.
    static func expectPartCounts(_ parts: [String], whole: DatasetManifest) throws {
        let ms = try parts.map { try DatasetManifest.load(directory: $0) }
        #expect(ms.reduce(0) { $0 + $1.stats.eventsKept } == whole.stats.eventsKept)
        #expect(ms.reduce(0) { $0 + $1.stats.users } == whole.stats.users)
        #expect(ms.reduce(0) { $0 + $1.stats.evaluatedUsers } == whole.stats.evaluatedUsers)
        for split in Split.allCases {
            #expect(ms.reduce(0) { $0 + $1.recordCount(split) } == whole.recordCount(split))
        }
        for m in ms {
            #expect(m.stats.rowsRead == whole.stats.rowsRead && m.stats.filtered == whole.stats.filtered && m.stats.items == whole.stats.items)
            #expect(m.catalog == whole.catalog && m.schema == whole.schema && m.settings.validFrom == whole.settings.validFrom && m.settings.testFrom == whole.settings.testFrom)
        }
    }

    @Test(arguments: cases)
    func mergedPartsEqualTheSingleProcessPrepare(_ c: MemoryBudgetTests.Case) throws {
        let dir = Scratch(); defer { dir.remove() }
        let whole = Self.options(c, output: dir.path + "/whole")
        let wm = try Preparer.prepare(whole)
        #expect(wm.settings.part == nil)

        let parts = try Self.prepareParts(c, count: 3, prefix: dir.path + "/part")
        try Self.expectPartCounts(parts, whole: wm)
        #expect(try parts.allSatisfy { try DatasetManifest.load(directory: $0).stats.users < wm.stats.users }, "every part leaves users to the others")
        // Given in any order.
        let merged = try DatasetMerge.merge(parts: [parts[2], parts[0], parts[1]], output: dir.path + "/merged")
        #expect(merged == wm)
        try MemoryBudgetTests.expectSameFiles(whole.output, dir.path + "/merged", "\(c.testDescription), 3 parts")

        // Parts whose runs were spilled (a 64-byte budget: a run per 16 events) merge the same.
        let spilled = try Self.prepareParts(c, count: 3, prefix: dir.path + "/spilled", budget: MemoryBudgetTests.tiny)
        try DatasetMerge.merge(parts: spilled, output: dir.path + "/merged-spilled")
        try MemoryBudgetTests.expectSameFiles(whole.output, dir.path + "/merged-spilled", "\(c.testDescription), 3 spilled parts")

        // One part of one is the whole dataset, apart from its manifest's part.
        let one = try Self.prepareParts(c, count: 1, prefix: dir.path + "/one")
        try DatasetMerge.merge(parts: one, output: dir.path + "/merged-one")
        try MemoryBudgetTests.expectSameFiles(whole.output, dir.path + "/merged-one", "\(c.testDescription), 1 part")
        // Nothing but the outputs is left beside them.
        #expect(dir.entries().filter { $0.hasPrefix(".") }.isEmpty)
    }

    /// Parts without any user (3 users, 8 parts) still prepare (their catalog and schema are
    /// the whole's) and merge into the whole dataset.
    @Test func partsWithoutUsersMergeToo() throws {
        let dir = Scratch(); defer { dir.remove() }
        var rows = ["user,item,event,timestamp,price"]
        for n in 0..<60 { rows.append("u\(n % 3),i\(n % 11),\(["view", "cart", "buy"][n % 3]),\(1_700_000_000 + n * 37),\(1 + n % 7).5") }
        let input = dir.write("events.csv", rows.joined(separator: "\n") + "\n")
        let c = MemoryBudgetTests.Case(dataset: .generic, input: input)
        let whole = Self.options(c, output: dir.path + "/whole")
        let wm = try Preparer.prepare(whole)
        let parts = try Self.prepareParts(c, count: 8, prefix: dir.path + "/part")
        let ms = try parts.map { try DatasetManifest.load(directory: $0) }
        #expect(ms.filter { $0.stats.users == 0 }.count >= 5, "\(ms.map(\.stats.users))")
        for (m, p) in zip(ms, parts) where m.stats.users == 0 {
            #expect(m.catalog == wm.catalog && m.schema == wm.schema && Split.allCases.allSatisfy { m.recordCount($0) == 0 })
            _ = try m.open(.train, directory: p)
        }
        try Self.expectPartCounts(parts, whole: wm)
        try DatasetMerge.merge(parts: parts, output: dir.path + "/merged")
        try MemoryBudgetTests.expectSameFiles(whole.output, dir.path + "/merged", "8 parts of 3 users")
    }

    /// Merges that are not the N distinct parts of one intact prepare fail naming a directory
    /// (or the damaged file) and leave no output.
    @Test func badMergesAreRefusedNamingTheDirectory() throws {
        let dir = Scratch(); defer { dir.remove() }
        let c = MemoryBudgetTests.Case(dataset: .taobao, input: repoData + "/cuts/taobao")
        let parts = try Self.prepareParts(c, count: 3, prefix: dir.path + "/part")
        let out = dir.path + "/merged"
        func refused(_ dirs: [String], _ words: [String], _ what: String) {
            do {
                try DatasetMerge.merge(parts: dirs, output: out)
                Issue.record("\(what): merged")
            } catch let e as HeedError {
                #expect(words.allSatisfy { e.description.contains($0) }, "\(what): \(e.description)")
            } catch {
                Issue.record("\(what): \(error)")
            }
            #expect(!FileOps.exists(out), "\(what): an output was left")
            #expect(dir.entries().filter { $0.hasPrefix(".") }.isEmpty, "\(what): a temporary folder was left")
        }
        refused([], ["--merge needs"], "no parts")
        refused([parts[0], parts[2]], ["1/3", "missing"], "a missing part")
        refused([parts[0], parts[1], parts[1]], [parts[1], "both part 1/3"], "the same part twice")
        let copy = dir.path + "/copy-of-2"
        try FileOps.makeDirectory(copy)
        for name in FileOps.list(parts[2]) { try FileManager.default.copyItem(atPath: parts[2] + "/" + name, toPath: copy + "/" + name) }
        refused([parts[0], parts[2], copy], [copy, parts[2], "both part 2/3"], "a copy of a part")
        refused(parts + [dir.path + "/nowhere"], [dir.path + "/nowhere"], "a directory that does not exist")

        // Parts of other prepares: another seed, another part count, a whole dataset, format 1.
        let seeded = try Self.prepareParts(c, count: 3, prefix: dir.path + "/seed2") { $0.seed = 2 }
        refused([parts[0], parts[1], seeded[2]], [seeded[2], "not parts of the same prepare", "settings"], "a part of another seed")
        let halves = try Self.prepareParts(c, count: 2, prefix: dir.path + "/half")
        refused([parts[0], parts[1], halves[1]], [halves[1], "1/2", "not parts of one prepare"], "a part of 2 among parts of 3")
        let wholeDir = dir.path + "/whole"
        var wholeOptions = Self.options(c, output: wholeDir)
        try Preparer.prepare(wholeOptions)
        refused([parts[0], parts[1], wholeOptions.output], [wholeOptions.output, "not a part"], "a whole dataset")
        wholeOptions.output = dir.path + "/v1"
        wholeOptions.shardFormat = 1
        wholeOptions.part = PrepareOptions.Part(index: 2, count: 3)
        try Preparer.prepare(wholeOptions)
        refused([parts[0], parts[1], wholeOptions.output], [wholeOptions.output, "shard format 1", "--shard-format 2"], "a format 1 part")

        // A damaged file of a part: a flipped byte in a shard's payload, then in the sequence file.
        for name in [try DatasetManifest.load(directory: parts[1]).train[0].file, SequenceFile.fileName] {
            let damaged = dir.path + "/damaged-" + name
            try FileOps.makeDirectory(damaged)
            for f in FileOps.list(parts[1]) { try FileManager.default.copyItem(atPath: parts[1] + "/" + f, toPath: damaged + "/" + f) }
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: damaged + "/" + name)))
            bytes[bytes.count - 70] ^= 0x10
            try Data(bytes).write(to: URL(fileURLWithPath: damaged + "/" + name))
            refused([parts[0], damaged, parts[2]], [damaged + "/", "checksum"], "a damaged \(name)")
        }

        // The refused merges changed nothing: the parts still merge.
        try DatasetMerge.merge(parts: parts, output: out)
        try MemoryBudgetTests.expectSameFiles(wholeDir, out, "after the refusals")
        // An existing output is kept unless overwriting.
        do { try DatasetMerge.merge(parts: parts, output: out); Issue.record("merged over an existing output") } catch let e as HeedError {
            #expect(e.description.contains("already exists"))
        }
        try DatasetMerge.merge(parts: parts, output: out, overwrite: true)
    }

    /// The part of a user is `mix64(raw id) % N`, and every record of a part belongs to its users.
    @Test func aPartHoldsExactlyTheRecordsOfItsUsers() throws {
        let dir = Scratch(); defer { dir.remove() }
        let c = MemoryBudgetTests.Case(dataset: .amazonBeauty, input: repoData + "/amazon-beauty-sample")
        let whole = Self.options(c, output: dir.path + "/whole")
        let wm = try Preparer.prepare(whole)
        let parts = try Self.prepareParts(c, count: 3, prefix: dir.path + "/part")
        for split in Split.allCases {
            let all = allRecords(try wm.open(split, directory: whole.output))
            for (k, p) in parts.enumerated() {
                let m = try DatasetManifest.load(directory: p)
                let mine = allRecords(try m.open(split, directory: p))
                let expected = all.filter { KeyHash.mix64($0.0.userID($0.1)) % 3 == UInt64(k) }
                #expect(mine.count == expected.count && mine.count > 0)
                #expect(zip(mine, expected).allSatisfy { a, b in
                    a.0.userID(a.1) == b.0.userID(b.1) && a.0.itemID(a.1) == b.0.itemID(b.1) && a.0.labels(a.1) == b.0.labels(b.1)
                }, "part \(k) \(split.rawValue)")
            }
        }
    }
}
