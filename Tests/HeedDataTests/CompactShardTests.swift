import Foundation
import HeedCore
import Testing
@testable import HeedData

/// Compact (version 2) shards: every record reads exactly as the same record of a version 1
/// shard prepared from the same input with the same options (ids, time, labels, dense
/// values, every slot's keys), on every loader's committed cut of real data, both
/// protocols, and the generic schema without timestamps, with ratings and tags.
@Suite struct CompactShardTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var dataset: PrepareOptions.Dataset
        var folder: String
        var sampleProtocol: PrepareOptions.SampleProtocol = .ctr
        var split: PrepareOptions.SplitRule = .leaveOneOut
        var testDescription: String { "\(folder) \(sampleProtocol.rawValue) \(split == .leaveOneOut ? "loo" : "time")" }
    }

    static let cases: [Case] = [
        Case(dataset: .amazonBeauty, folder: "amazon-beauty"),
        Case(dataset: .amazonBeauty, folder: "amazon-beauty", sampleProtocol: .seq),
        Case(dataset: .amazonVideoGames, folder: "amazon-video-games", sampleProtocol: .seq),
        Case(dataset: .amazonGrocery, folder: "amazon-grocery"),
        Case(dataset: .taobao, folder: "taobao"),
        Case(dataset: .taobao, folder: "taobao", split: .time(validFrom: nil, testFrom: nil)),
        Case(dataset: .ciao, folder: "ciao"),
        Case(dataset: .uciRetail, folder: "uci-retail"),
        Case(dataset: .completeJourney, folder: "completejourney"),
    ]

    /// Prepares `input` twice (format 1 and 2) with `configure`d options; returns both directories.
    static func prepareBoth(_ dir: Scratch, dataset: PrepareOptions.Dataset, input: String?,
                            _ configure: (inout PrepareOptions) -> Void) throws -> (stored: String, compact: String) {
        for format in [1, 2] {
            var o = PrepareOptions(dataset: dataset, input: input, output: dir.path + "/v\(format)")
            o.shards = 2
            o.maxLength = 7
            configure(&o)
            o.shardFormat = format
            let m = try Preparer.prepare(o)
            #expect(m.formatVersion == format)
            #expect((m.sequences != nil) == (format == 2))
        }
        return (dir.path + "/v1", dir.path + "/v2")
    }

    /// Expects every split's records of the two directories to read the same, bit for bit.
    static func expectSameRecords(stored: String, compact: String) throws {
        let a = try DatasetManifest.load(directory: stored), b = try DatasetManifest.load(directory: compact)
        #expect(a.schema == b.schema && a.catalogSchema == b.catalogSchema && a.stats == b.stats)
        var compared = 0
        for split in Split.allCases {
            let sa = try a.open(split, directory: stored), sb = try b.open(split, directory: compact)
            #expect(sa.count == sb.count)
            for (x, y) in zip(sa, sb) {
                #expect(x.version == 1 && y.version == 2)
                #expect(x.count == y.count, "\(y.path)")
                for r in 0..<min(x.count, y.count) {
                    let same = x.userID(r) == y.userID(r) && x.itemID(r) == y.itemID(r) && x.timestamp(r) == y.timestamp(r)
                        && x.labels(r).map(\.bitPattern) == y.labels(r).map(\.bitPattern)
                        && x.dense(r).map(\.bitPattern) == y.dense(r).map(\.bitPattern)
                        && x.schema.slots.indices.allSatisfy { s in x.keys(slot: s, record: r) == y.keys(slot: s, record: r) && x.keyCount(slot: s, record: r) == y.keyCount(slot: s, record: r) }
                    if !same {
                        Issue.record("\(y.path) record \(r) differs from \(x.path): user \(x.userID(r))/\(y.userID(r)), item \(x.itemID(r))/\(y.itemID(r)), labels \(x.labels(r))/\(y.labels(r)), dense \(x.dense(r))/\(y.dense(r)), keys \(x.schema.slots.indices.map { x.keys(slot: $0, record: r) })/\(y.schema.slots.indices.map { y.keys(slot: $0, record: r) })")
                        return
                    }
                    compared += 1
                }
                // The batch gatherer reads both the same way too (records out of order, repeated).
                let picks = (0..<min(x.count, 64)).map { ($0 * 7) % x.count } + [0]
                let ba = SampleBatch.gather(from: x, records: picks), bb = SampleBatch.gather(from: y, records: picks)
                #expect(ba.keys == bb.keys && ba.masks == bb.masks && ba.lengths == bb.lengths && ba.labels.map(\.bitPattern) == bb.labels.map(\.bitPattern)
                        && ba.dense.map(\.bitPattern) == bb.dense.map(\.bitPattern) && ba.userIDs == bb.userIDs && ba.itemIDs == bb.itemIDs && ba.timestamps == bb.timestamps)
            }
        }
        #expect(compared == a.recordCount(.train) + a.recordCount(.valid) + a.recordCount(.test) && compared > 0)
    }

    @Test(arguments: cases)
    func compactShardsReadAsStoredShardsOnEveryLoadersCut(_ c: Case) throws {
        let dir = Scratch(); defer { dir.remove() }
        let (stored, compact) = try Self.prepareBoth(dir, dataset: c.dataset, input: repoData + "/cuts/" + c.folder) {
            $0.sampleProtocol = c.sampleProtocol
            $0.split = c.split
        }
        try Self.expectSameRecords(stored: stored, compact: compact)
    }

    @Test func compactShardsReadAsStoredShardsForRatingsWithoutTimestampsAndWithTags() throws {
        let dir = Scratch(); defer { dir.remove() }
        dir.write("events.csv", GenericSchemaTests.ratings)
        let (stored, compact) = try Self.prepareBoth(dir, dataset: .generic, input: dir.path) { $0.positiveRating = 4 }
        try Self.expectSameRecords(stored: stored, compact: compact)
    }

    @Test func compactRecordsStoreEightBytesAndHistoriesOnce() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (stored, compact) = try Self.prepareBoth(dir, dataset: .taobao, input: repoData + "/cuts/taobao") { _ in }
        let a = try DatasetManifest.load(directory: stored), b = try DatasetManifest.load(directory: compact)
        let records = Split.allCases.reduce(0) { $0 + b.recordCount($1) }
        let shardBytes = Split.allCases.flatMap { b.shards($0) }.reduce(0) { $0 + $1.bytes }
        let storedBytes = Split.allCases.flatMap { a.shards($0) }.reduce(0) { $0 + $1.bytes }
        // Per shard: a header (schema JSON, < 4 KiB) plus 8 bytes per record, each section padded to 64.
        let fixed = Split.allCases.flatMap { b.shards($0) }.count * (4096 + 3 * 64)
        #expect(shardBytes <= 8 * records + fixed, "compact shards: \(shardBytes) bytes for \(records) records")
        // The sequence file holds each event once, at most 34 bytes per event plus per-user tables.
        let seq = try #require(b.sequences)
        #expect(seq.records == b.stats.eventsKept)
        #expect(seq.bytes <= 34 * seq.records + 24 * b.stats.users + 4096 + 16 * 64)
        #expect(shardBytes + seq.bytes < storedBytes / 3, "compact \(shardBytes) + \(seq.bytes) bytes vs stored \(storedBytes)")
        // `heed prepare --describe` says which format a dataset has.
        #expect(try Preparer.describe(path: compact).contains("sequences: \(seq.records) events stored once"))
        #expect(try Preparer.describe(path: stored).contains("shard format 1"))
        #expect(try Preparer.describe(path: compact + "/" + b.train[0].file).contains("format version 2"))
    }

    /// A compact shard whose record points past its sequence file, whose side file was replaced,
    /// or is missing, is refused with a message naming the file.
    @Test func damagedOrMismatchedCompactShardsAreRefused() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (_, compact) = try Self.prepareBoth(dir, dataset: .taobao, input: repoData + "/cuts/taobao") { _ in }
        let m = try DatasetManifest.load(directory: compact)
        let shardPath = compact + "/" + m.train[0].file
        let original = try #require(FileManager.default.contents(atPath: shardPath))

        // An event index past the sequence file, with the payload CRC recomputed so only the range check can catch it.
        var bytes = [UInt8](original)
        let c = try SectionedFile(path: shardPath, magic: ShardLayout.magic, what: "sample shard", versions: 2...2, verifyChecksum: true)
        let at = c.sections[0].offset
        for i in 0..<4 { bytes[at + i] = 0xFF }
        let crc = bytes[c.headerBytes...].withUnsafeBytes { CRC32.of($0) }
        withUnsafeBytes(of: crc.littleEndian) { for (i, b) in $0.enumerated() { bytes[32 + i] = b } }
        var h = CRC32()
        bytes[0..<44].withUnsafeBytes { h.update($0) }
        h.update([0, 0, 0, 0])
        bytes[48..<c.headerBytes].withUnsafeBytes { h.update($0) }
        withUnsafeBytes(of: h.value.littleEndian) { for (i, b) in $0.enumerated() { bytes[44 + i] = b } }
        FileManager.default.createFile(atPath: shardPath, contents: Data(bytes))
        #expect(throws: HeedError.self) { _ = try SampleShard(path: shardPath) }
        do { _ = try SampleShard(path: shardPath) } catch let e as HeedError {
            #expect(e.code == .corrupt && e.description.contains(shardPath) && e.description.contains("record 0 refers to an event"))
        }
        FileManager.default.createFile(atPath: shardPath, contents: original)
        #expect(try SampleShard(path: shardPath).count == m.train[0].records)

        // The sequence file of another preparation (another seed's negatives do not change it; another cap does not either,
        // so prepare different data) is refused by its CRC link.
        let seqPath = compact + "/" + SequenceFile.fileName
        let seqOriginal = try #require(FileManager.default.contents(atPath: seqPath))
        var other = PrepareOptions(dataset: .amazonBeauty, input: repoData + "/cuts/amazon-beauty", output: dir.path + "/other")
        other.shards = 1
        try Preparer.prepare(other)
        try FileManager.default.removeItem(atPath: seqPath)
        try FileManager.default.copyItem(atPath: dir.path + "/other/" + SequenceFile.fileName, toPath: seqPath)
        do { _ = try SampleShard(path: shardPath); Issue.record("a shard opened against another dataset's sequence file") } catch let e as HeedError {
            #expect(e.code == .corrupt && e.description.contains("sequence file with crc"), "\(e)")
        }
        // A missing sequence file is named.
        try FileManager.default.removeItem(atPath: seqPath)
        do { _ = try SampleShard(path: shardPath); Issue.record("a shard opened without its sequence file") } catch let e as HeedError {
            #expect(e.code == .notFound && e.description.contains(SequenceFile.fileName), "\(e)")
        }
        // A truncated sequence file is named as such.
        FileManager.default.createFile(atPath: seqPath, contents: seqOriginal.prefix(seqOriginal.count - 64))
        do { _ = try SampleShard(path: shardPath); Issue.record("a shard opened with a truncated sequence file") } catch let e as HeedError {
            #expect(e.code == .corrupt && e.description.contains(seqPath) && e.description.contains("truncated"), "\(e)")
        }
    }

    /// A sequence file whose user ranges do not tile its events is refused even with a valid checksum.
    @Test func aSequenceFileWhoseEventsNameTheWrongUserIsRefused() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (_, compact) = try Self.prepareBoth(dir, dataset: .taobao, input: repoData + "/cuts/taobao") { _ in }
        let seqPath = compact + "/" + SequenceFile.fileName
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: seqPath)))
        let c = try SectionedFile(path: seqPath, magic: SequenceFile.magic, what: "sequence file", versions: 1...1, verifyChecksum: true)
        let at = try #require(c.sections.first { $0.kind == .eventUser }).offset
        bytes[at] ^= 1   // event 0 now names user 1
        FileManager.default.createFile(atPath: seqPath, contents: Data(bytes))
        do { _ = try SequenceFile(path: seqPath, verifyChecksum: false); Issue.record("inconsistent user ranges accepted") } catch let e as HeedError {
            #expect(e.code == .corrupt && e.description.contains("event 0 lies in user 0's range"), "\(e)")
        }
    }
}
