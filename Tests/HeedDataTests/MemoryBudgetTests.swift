import Foundation
import HeedCore
import Testing
@testable import HeedData

/// `--memory-budget`: the external sort of events by (user, time) gives the dataset the
/// in-memory prepare gives, byte for byte (every shard, the sequence file, the catalog and the
/// manifest), whether its runs stay in memory or are spilled to disk and merged, on every
/// loader's committed cut, the bundled samples, both protocols and both split rules.
@Suite struct MemoryBudgetTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var dataset: PrepareOptions.Dataset
        var input: String
        var sampleProtocol: PrepareOptions.SampleProtocol = .ctr
        var split: PrepareOptions.SplitRule = .leaveOneOut
        var shardFormat = 2
        var testDescription: String {
            "\(FileOps.basename(of: input)) \(sampleProtocol.rawValue) \(split == .leaveOneOut ? "loo" : "time") v\(shardFormat)"
        }
    }

    static let cases: [Case] = CompactShardTests.cases.map {
        Case(dataset: $0.dataset, input: repoData + "/cuts/" + $0.folder, sampleProtocol: $0.sampleProtocol, split: $0.split)
    } + [
        Case(dataset: .amazonBeauty, input: repoData + "/amazon-beauty-sample"),
        Case(dataset: .amazonBeauty, input: repoData + "/amazon-beauty-sample", sampleProtocol: .seq, shardFormat: 1),
        Case(dataset: .amazonGrocery, input: repoData + "/amazon-grocery-sample", sampleProtocol: .seq),
        Case(dataset: .taobao, input: repoData + "/taobao-userbehavior-sample", split: .time(validFrom: nil, testFrom: nil)),
        Case(dataset: .generic, input: repoData + "/generic-online-retail-sample"),
    ]

    /// Every file of dataset directory `a` equals the same file of `b`, and neither has more files.
    static func expectSameFiles(_ a: String, _ b: String, _ what: String) throws {
        let names = FileOps.list(a).sorted()
        #expect(names == FileOps.list(b).sorted(), "\(what): file lists differ")
        #expect(names.contains(DatasetManifest.fileName))
        for name in names {
            let x = FileManager.default.contents(atPath: a + "/" + name), y = FileManager.default.contents(atPath: b + "/" + name)
            #expect(x != nil && x == y, "\(what): \(name) differs")
        }
    }

    /// Prepares `c` with every event in memory, then through the external sort with `budgets`;
    /// returns the output folders and the runs each spilled (from the progress lines).
    static func prepare(_ c: Case, budgets: [Int], in dir: Scratch, configure: (inout PrepareOptions) -> Void = { _ in }) throws -> (outs: [String], runs: [Int]) {
        var outs: [String] = []
        var runs: [Int] = []
        for (n, budget) in ([nil] + budgets.map { Optional($0) }).enumerated() {
            var o = PrepareOptions(dataset: c.dataset, input: c.input, output: dir.path + "/out\(n)")
            o.shards = 3
            o.maxLength = 9
            o.sampleProtocol = c.sampleProtocol
            o.split = c.split
            o.shardFormat = c.shardFormat
            o.memoryBudget = budget
            configure(&o)
            var spilled = 0
            try Preparer.prepare(o) { line in
                if let r = line.range(of: "sorted them in ") { spilled = Int(line[r.upperBound...].prefix { $0.isNumber }) ?? -1 }
            }
            outs.append(o.output)
            runs.append(spilled)
        }
        return (outs, runs)
    }

    /// A budget so small that every run holds the floor of 16 events: hundreds of runs, merged
    /// through intermediate generations (more than 128 runs).
    static let tiny = 64

    @Test(arguments: cases)
    func spilledAndUnspilledPreparesEqualTheInMemoryOne(_ c: Case) throws {
        let dir = Scratch(); defer { dir.remove() }
        let (outs, runs) = try Self.prepare(c, budgets: [PrepareOptions.defaultMemoryBudget, Self.tiny], in: dir)
        #expect(runs[0] == 0 && runs[1] == 0, "in memory and within the default budget nothing is spilled")
        let m0 = try DatasetManifest.load(directory: outs[0])
        #expect(runs[2] >= m0.stats.eventsKept / 16, "the tiny budget spills a run per 16 events (\(runs[2]) runs)")
        try Self.expectSameFiles(outs[0], outs[1], "\(c.testDescription), runs in memory")
        try Self.expectSameFiles(outs[0], outs[2], "\(c.testDescription), runs spilled")
        let m = try DatasetManifest.load(directory: outs[0])
        #expect(m.stats.eventsKept > 0 && Split.allCases.allSatisfy { m.recordCount($0) > 0 })
        // No run file or temporary folder is left beside the output.
        #expect(FileOps.list(dir.path).sorted() == ["out0", "out1", "out2"])
    }

    /// Ratings, prices paid per event (per-item medians from the spilled price samples), no
    /// timestamps (file order from the running row number), tags, and a `--positive-rating`.
    @Test func genericRatingsPricesAndFileOrderSurviveSpilling() throws {
        let dir = Scratch(); defer { dir.remove() }
        var rows = ["user,item,rating,price,tags"]
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<3000 {
            let u = rng.next() % 97, i = rng.next() % 211
            let rating = rng.next() % 6 == 0 ? "" : String(1 + rng.next() % 5)
            let price = rng.next() % 4 == 0 ? "" : String(format: "%.2f", Double(1 + rng.next() % 5000) / 100)
            rows.append("u\(u),i\(i),\(rating),\(price),cat\(i % 13)|brand\(i % 7)")
        }
        dir.write("events.csv", rows.joined(separator: "\n") + "\n")
        let c = Case(dataset: .generic, input: dir.path + "/events.csv")
        let (outs, runs) = try Self.prepare(c, budgets: [Self.tiny], in: dir) { $0.positiveRating = 3 }
        #expect(runs[1] > 128, "spilled in generations (\(runs[1]) runs)")
        try Self.expectSameFiles(outs[0], outs[1], "generic ratings and prices")
        let m = try DatasetManifest.load(directory: outs[1])
        #expect(m.schema.labels.contains("rating") && m.schema.dense.contains("log_price"))
    }

    /// The sorter itself: rows come back in order from memory, from spilled runs, and from runs
    /// merged in generations, and can be read twice.
    @Test func externalSorterMergesRunsInOrder() throws {
        let dir = Scratch(); defer { dir.remove() }
        var rng = SeededGenerator(seed: 3)
        let rows = (0..<5000).map { n in
            EventRow(userRaw: rng.next() % 50, time: Int64(rng.next() % 20), order: UInt32(n), item: 0, rating: .nan, type: 0)
        }
        let expected = rows.sorted(by: <).map(\.order)
        for (runRows, maxOpen) in [(10_000, 128), (333, 128), (17, 4)] {
            let sorter = ExternalSorter<EventRow>(directory: dir.path, name: "t\(runRows)")
            for r in rows {
                sorter.append(r)
                if sorter.buffer.count == runRows { try sorter.spill() }
            }
            try sorter.finish(maxOpenRuns: maxOpen)
            #expect(sorter.runCount <= maxOpen)
            #expect((sorter.runCount == 0) == (runRows > rows.count))
            for _ in 0..<2 {
                var got: [UInt32] = []
                try sorter.forEachSorted(readBytes: 256) { got.append($0.order) }
                #expect(got == expected, "runs of \(runRows), at most \(maxOpen) open")
            }
            sorter.removeRuns()
        }
        #expect(FileOps.list(dir.path).isEmpty, "every run file is removed")
    }

    /// A bad row after some runs were spilled fails the prepare naming the file and line, and
    /// leaves neither an output nor run files behind.
    @Test func aFailureAfterSpillingLeavesNothing() throws {
        let dir = Scratch(); defer { dir.remove() }
        var rows = ["user,item,event,timestamp"]
        for n in 0..<2000 { rows.append("\(n % 37),\(n % 101),view,\(1_700_000_000 + n)") }
        rows.append("5,7,teleport,1700009999")
        dir.write("events.csv", rows.joined(separator: "\n") + "\n")
        var o = PrepareOptions(dataset: .generic, input: dir.path + "/events.csv", output: dir.path + "/out")
        o.memoryBudget = Self.tiny
        #expect(throws: HeedError.self) { try Preparer.prepare(o) }
        do { try Preparer.prepare(o) } catch let e as HeedError {
            #expect(e.description.contains("events.csv") && e.description.contains("2002"), "\(e.description)")
        }
        #expect(FileOps.list(dir.path) == ["events.csv"])
    }

    /// A budget that is not positive, and `--part` without the external sort, are refused by name.
    @Test func badBudgetsAndPartsWithoutABudgetAreRefused() throws {
        var o = PrepareOptions(dataset: .generic, input: nil, output: "/nonexistent/out")
        o.memoryBudget = 0
        do { try Preparer.prepare(o); Issue.record("a zero budget was accepted") } catch let e as HeedError {
            #expect(e.description.contains("--memory-budget must be positive"), "\(e.description)")
        }
        o.memoryBudget = nil
        o.part = PrepareOptions.Part(index: 0, count: 2)
        do { try Preparer.prepare(o); Issue.record("--part without a budget was accepted") } catch let e as HeedError {
            #expect(e.description.contains("--part needs the external sort"))
        }
    }
}
