import Foundation
import HeedCore
import Testing
@testable import HeedData

/// The progress a long `heed prepare` shows: phases in order, input bytes counted against
/// the input's size, records written against the count pass's total, and the line a person reads.
@Suite struct PrepareProgressTests {
    @Test func aPreparationReportsEveryPhaseItsBytesAndItsRecords() throws {
        let dir = Scratch(); defer { dir.remove() }
        var o = PrepareOptions(dataset: .taobao, input: repoData + "/cuts/taobao", output: dir.path + "/out")
        o.shards = 2
        let total = Preparer.inputBytes(o)
        #expect(total == (try FileOps.size(repoData + "/cuts/taobao/UserBehavior.csv.gz")))
        let meter = PrepareProgress(bytesTotal: total)
        let m = try Preparer.prepare(o, meter: meter)
        #expect(meter.phaseLog == [.read, .sort, .count, .write])
        let s = meter.snapshot()
        #expect(s.bytesRead == total, "every compressed byte of the input is counted once")
        #expect(s.events == m.stats.eventsKept)
        let records = Split.allCases.reduce(0) { $0 + m.recordCount($1) }
        #expect(s.recordsTotal == records && s.recordsWritten == records)
        #expect(PrepareProgress.active == nil, "the meter is released when the preparation ends")
    }

    @Test func aPlainInputFileIsCountedByItsBytes() throws {
        let dir = Scratch(); defer { dir.remove() }
        dir.write("events.csv", GenericSchemaTests.ratings)
        var o = PrepareOptions(dataset: .generic, input: dir.path + "/events.csv", output: dir.path + "/out")
        o.maxLength = 4
        let total = Preparer.inputBytes(o)
        #expect(total == GenericSchemaTests.ratings.utf8.count)
        let meter = PrepareProgress(bytesTotal: total)
        try Preparer.prepare(o, meter: meter)
        #expect(meter.snapshot().bytesRead == total)
    }

    @Test func theLineGivesPhaseProgressRateAndETA() {
        var s = PrepareProgress.Snapshot()
        s.phase = .read
        s.bytesRead = 1_200_000_000
        s.bytesTotal = 3_600_000_000
        s.events = 21_000_000
        s.phaseElapsed = 10
        // 120 MB/s over 2.4 GB left: 20 s.
        #expect(PrepareProgress.line(s) == "read 1.20 GB / 3.60 GB (33 %) · 2.10 M events/s · ETA 20s")
        s.phase = .write
        s.recordsWritten = 4_000_000
        s.recordsTotal = 18_000_000
        s.phaseElapsed = 2
        // 2 M records/s over 14 M left: 7 s.
        #expect(PrepareProgress.line(s) == "write 4.00 M / 18.00 M records (22 %) · 2.00 M records/s · ETA 7s")
        s.recordsWritten = 0
        #expect(PrepareProgress.line(s).hasSuffix("ETA ?"), "no rate yet: no invented ETA")
        s.phase = .sort
        s.phaseElapsed = 75
        #expect(PrepareProgress.line(s) == "sort 21.00 M events · 75s")
        s.phase = .read
        s.bytesRead = 100_000_000
        s.bytesTotal = 1_000_000_000
        s.phaseElapsed = 1
        #expect(PrepareProgress.line(s).hasSuffix("ETA 9s") && PrepareProgress.line(s).contains("100.0 MB / 1.00 GB (10 %)"))
        s.phaseElapsed = 0.1
        #expect(PrepareProgress.line(s).hasSuffix("ETA 1s"))
        s.bytesTotal = 100_000_000_000
        s.phaseElapsed = 1
        #expect(PrepareProgress.line(s).hasSuffix("ETA 16m39s"))
    }
}
