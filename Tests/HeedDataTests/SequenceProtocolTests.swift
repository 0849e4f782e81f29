import Foundation
import HeedCore
import Testing
@testable import HeedData

/// `--protocol seq` on the real S3-Rec and SASRec file formats reproduces the published
/// leave-one-out split: per user, the last item is the test target (history: everything
/// before it), the second last the valid target, and one train record whose history and
/// target are the rest — checked against the raw lines read independently of the loaders.
@Suite struct SequenceProtocolTests {
    /// Per raw user id, its items in file order, from either format.
    static func sequences(_ path: String, oneUserPerLine: Bool) throws -> [UInt64: [UInt64]] {
        var out: [UInt64: [UInt64]] = [:]
        for line in try readLines(path) where !line.isEmpty {
            let ids = line.split(separator: " ").map { UInt64($0)! }
            if oneUserPerLine { out[ids[0], default: []] += ids.dropFirst() } else { out[ids[0], default: []].append(ids[1]) }
        }
        return out
    }

    @Test(arguments: [(PrepareOptions.Dataset.amazonBeauty, "amazon-beauty", "Beauty.txt.gz", true),
                      (.amazonVideoGames, "amazon-video-games", "Video.txt.gz", false)])
    func leaveOneOutSplitsMatchTheRawSequences(dataset: PrepareOptions.Dataset, cut: String, file: String, oneUserPerLine: Bool) throws {
        let dir = Scratch(); defer { dir.remove() }
        var o = PrepareOptions(dataset: dataset, input: repoData + "/cuts/" + cut, output: dir.path + "/seq")
        o.sampleProtocol = .seq
        o.maxLength = 1000
        o.shards = 2
        let m = try Preparer.prepare(o)
        let raw = try Self.sequences(repoData + "/cuts/\(cut)/" + file, oneUserPerLine: oneUserPerLine)
        let item = { (id: UInt64) in FeatureGroup.item.key(id) }
        var seen: [Split: Set<UInt64>] = [:]
        for split in Split.allCases {
            for (shard, r) in allRecords(try m.open(split, directory: o.output)) {
                let user = shard.userID(r)
                let s = try #require(raw[user])
                let n = s.count
                #expect(n >= 3, "user \(user) has \(n) items; leave-one-out needs 3")
                let cut = split == .test ? n - 1 : split == .valid ? n - 2 : n - 3
                #expect(shard.itemID(r) == s[cut], "\(split) target of user \(user)")
                #expect(shard.keys(slot: shard.schema.slotIndex("hist_items")!, record: r) == s[..<cut].map(item), "\(split) history of user \(user)")
                #expect(shard.keys(slot: shard.schema.slotIndex("item")!, record: r) == [item(s[cut])])
                #expect(seen[split, default: []].insert(user).inserted, "two \(split) records for user \(user)")
            }
        }
        #expect(seen[.train] == Set(raw.keys) && seen[.valid] == Set(raw.keys) && seen[.test] == Set(raw.keys))
        let catalog = try m.openCatalog(directory: o.output)
        #expect(Set((0..<catalog.count).map { catalog.itemID($0) }) == Set(raw.values.flatMap { $0 }))
    }

    /// A history longer than `--max-len` keeps its most recent items.
    @Test func longHistoriesKeepTheMostRecentItems() throws {
        let dir = Scratch(); defer { dir.remove() }
        var o = PrepareOptions(dataset: .amazonBeauty, input: repoData + "/cuts/amazon-beauty", output: dir.path + "/seq")
        o.sampleProtocol = .seq
        o.maxLength = 3
        let m = try Preparer.prepare(o)
        let raw = try Self.sequences(repoData + "/cuts/amazon-beauty/Beauty.txt.gz", oneUserPerLine: true)
        let test = try m.open(.test, directory: o.output)[0]
        for r in 0..<test.count {
            let s = raw[test.userID(r)]!
            #expect(test.keys(slot: test.schema.slotIndex("hist_items")!, record: r) == s.dropLast().suffix(3).map { FeatureGroup.item.key($0) })
        }
    }
}
