import Foundation
import HeedCore
import Testing
@testable import HeedData

/// Expected record counts from per-user event counts, as docs/data-format.md defines them:
/// positions 1..<n are eligible; with >= 2 eligible the last is test, the one before valid.
func expectedCTRCounts(_ lengths: [Int]) -> (train: Int, valid: Int, test: Int) {
    var t = 0, v = 0, s = 0
    for n in lengths {
        let eligible = max(0, n - 1)
        if eligible >= 2 { t += eligible - 2; v += 1; s += 1 } else { t += eligible }
    }
    return (2 * t, 2 * v, 2 * s)
}

/// Counts on the committed samples under data/ (always run) and on the shared datasets
/// (run when /work/shared/data exists), compared with counts taken from the raw files
/// or their READMEs.
@Suite struct DatasetCountTests {
    @Test func amazonBeautySampleMatchesItsRawLines() throws {
        let dir = Scratch(); defer { dir.remove() }
        let input = repoData + "/amazon-beauty-sample"
        let lines = try readLines(input + "/Beauty.txt.gz").map { $0.split(separator: " ").map(String.init) }
        var o = PrepareOptions(dataset: .amazonBeauty, input: input, output: dir.path + "/out")
        o.maxLength = 20
        let m = try Preparer.prepare(o)
        let lengths = lines.map { $0.count - 1 }
        #expect(m.stats.users == lines.count)
        #expect(m.stats.eventsKept == lengths.reduce(0, +))
        #expect(m.stats.items == Set(lines.flatMap { $0.dropFirst() }).count)
        let want = expectedCTRCounts(lengths)
        #expect(m.recordCount(.train) == want.train && m.recordCount(.valid) == want.valid && m.recordCount(.test) == want.test)
        #expect(m.catalog.records == m.stats.items)

        // The first user's test record: last item as target, the rest as history (most recent last).
        let first = lines[0]
        let test = try m.open(.test, directory: dir.path + "/out")[0]
        let r = (0..<test.count).first { test.userID($0) == UInt64(first[0])! && test.label($0, 0) == 1 }!
        #expect(test.itemID(r) == UInt64(first.last!)!)
        let hist = first.dropFirst().dropLast().suffix(20).map { FeatureGroup.item.key(UInt64($0)!) }
        #expect(test.keys(slot: test.schema.slotIndex("hist_items")!, record: r) == Array(hist))
        // Target attributes and leaf category come from the attribute file.
        let json = try JSONSerialization.jsonObject(with: Data(try readLines(input + "/Beauty_item2attributes.json.gz").joined().utf8)) as! [String: [Int]]
        let attrs = json[first.last!]!
        #expect(test.keys(slot: test.schema.slotIndex("attributes")!, record: r) == attrs.prefix(16).map { FeatureGroup.attribute.key(UInt64($0)) })
        #expect(test.keys(slot: test.schema.slotIndex("category")!, record: r) == [FeatureGroup.category.key(UInt64(attrs.last!))])

        // No negative is an item its user interacted with.
        let itemsOf = Dictionary(uniqueKeysWithValues: lines.map { (UInt64($0[0])!, Set($0.dropFirst().map { UInt64($0)! })) })
        for split in Split.allCases {
            for shard in try m.open(split, directory: dir.path + "/out") {
                for r in 0..<shard.count where shard.label(r, 0) == 0 {
                    #expect(!itemsOf[shard.userID(r)]!.contains(shard.itemID(r)))
                }
            }
        }
    }

    @Test func taobaoSampleLabelsMatchBehaviourCounts() throws {
        let dir = Scratch(); defer { dir.remove() }
        let input = repoData + "/taobao-userbehavior-sample"
        let rows = try readLines(input + "/UserBehavior.csv.gz").map { $0.split(separator: ",").map(String.init) }
        var perUser: [String: [(Int64, Int, String)]] = [:]
        for (i, r) in rows.enumerated() { perUser[r[0], default: []].append((Int64(r[4])!, i, r[3])) }
        var typeCounts: [String: Int] = [:]   // behaviours at positions >= 1 (targets)
        for (_, evs) in perUser {
            let sorted = evs.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            for e in sorted.dropFirst() { typeCounts[e.2, default: 0] += 1 }
        }
        var o = PrepareOptions(dataset: .taobao, input: input, output: dir.path + "/out")
        o.maxLength = 10
        o.shards = 2
        let m = try Preparer.prepare(o)
        #expect(m.stats.rowsRead == rows.count && m.stats.eventsKept == rows.count)
        #expect(m.stats.users == perUser.count)
        #expect(m.stats.items == Set(rows.map { $0[1] }).count)
        let want = expectedCTRCounts(perUser.values.map(\.count))
        #expect(m.recordCount(.train) == want.train && m.recordCount(.valid) == want.valid && m.recordCount(.test) == want.test)
        #expect(m.schema.labels == ["click", "cart", "fav", "purchase"])
        var sums = [Double](repeating: 0, count: 4)
        for split in Split.allCases {
            for shard in try m.open(split, directory: dir.path + "/out") {
                for r in 0..<shard.count { for l in 0..<4 { sums[l] += Double(shard.label(r, l)) } }
            }
        }
        #expect(Int(sums[0]) == typeCounts.values.reduce(0, +))
        #expect(Int(sums[1]) == typeCounts["cart"] ?? 0)
        #expect(Int(sums[2]) == typeCounts["fav"] ?? 0)
        #expect(Int(sums[3]) == typeCounts["buy"] ?? 0)
    }

    @Test func genericRetailSampleHasPricesAndTitles() throws {
        let dir = Scratch(); defer { dir.remove() }
        let input = repoData + "/generic-online-retail-sample"
        let events = try readLines(input + "/events.csv.gz").dropFirst()
        var o = PrepareOptions(dataset: .generic, input: input, output: dir.path + "/out")
        o.split = .time(validFrom: nil, testFrom: nil)
        let m = try Preparer.prepare(o)
        #expect(m.stats.eventsKept == events.count)
        #expect(m.schema.slotIndex("text") != nil && m.schema.slotIndex("price_level") != nil && m.schema.slotIndex("spend_level") != nil)
        let catalog = try m.openCatalog(directory: dir.path + "/out")
        let text = catalog.schema.slotIndex("text")!
        #expect((0..<catalog.count).filter { catalog.keyCount(slot: text, record: $0) > 0 }.count > catalog.count * 9 / 10)
        #expect(m.settings.split == "time" && m.settings.validFrom! <= m.settings.testFrom!)
    }

    static let hasShared = FileManager.default.fileExists(atPath: sharedData)

    @Test(.enabled(if: hasShared, "needs the shared datasets in /work/shared/data"))
    func sharedAmazonBeautyMatchesItsReadme() throws {
        let dir = Scratch(); defer { dir.remove() }
        var o = PrepareOptions(dataset: .amazonBeauty, input: sharedData + "/amazon2014-beauty-sports-toys-s3rec", output: dir.path + "/out")
        o.maxLength = 5
        let m = try Preparer.prepare(o)
        // README: 22,363 users, 12,101 items, 198,502 interactions, every user has >= 5.
        #expect(m.stats.users == 22_363 && m.stats.items == 12_101 && m.stats.eventsKept == 198_502 && m.stats.rowsRead == 198_502)
        #expect(m.recordCount(.train) == 2 * (198_502 - 3 * 22_363))
        #expect(m.recordCount(.valid) == 2 * 22_363 && m.recordCount(.test) == 2 * 22_363)
        #expect(m.catalog.records == 12_101)
        o.sampleProtocol = .seq
        o.output = dir.path + "/seq"
        let s = try Preparer.prepare(o)
        #expect(s.recordCount(.train) == 22_363 && s.recordCount(.valid) == 22_363 && s.recordCount(.test) == 22_363)
    }

    @Test(.enabled(if: hasShared, "needs the shared datasets in /work/shared/data"))
    func sharedTaobaoMatchesItsReadme() throws {
        let dir = Scratch(); defer { dir.remove() }
        var o = PrepareOptions(dataset: .taobao, input: sharedData + "/taobao-userbehavior-sample", output: dir.path + "/out")
        o.maxLength = 5
        let m = try Preparer.prepare(o)
        // README: 84,287 rows, 814 users, 55,233 items; no filtering, every user has >= 3 rows.
        #expect(m.stats.rowsRead == 84_287 && m.stats.eventsKept == 84_287)
        #expect(m.stats.users == 814 && m.stats.items == 55_233)
        #expect(m.recordCount(.train) + m.recordCount(.valid) + m.recordCount(.test) == 2 * (84_287 - 814))
        #expect(m.recordCount(.valid) == 2 * 814 && m.recordCount(.test) == 2 * 814)
        var sums = [Double](repeating: 0, count: 4)
        for split in Split.allCases {
            for shard in try m.open(split, directory: dir.path + "/out") {
                shard.withLabels { all in for (i, v) in all.enumerated() { sums[i % 4] += Double(v) } }
            }
        }
        // Positives exclude each user's first event only: README totals minus first events.
        #expect(Int(sums[0]) == 84_287 - 814)
        #expect(Int(sums[1]) <= 4_494 && Int(sums[2]) <= 2_351 && Int(sums[3]) <= 1_749)
        #expect(Int(sums[1]) + Int(sums[2]) + Int(sums[3]) >= 4_494 + 2_351 + 1_749 - 814)
    }

    @Test(.enabled(if: hasShared, "needs the shared datasets in /work/shared/data"))
    func sharedGroceryAndOnlineRetailMatchTheirReadmes() throws {
        let dir = Scratch(); defer { dir.remove() }
        var g = PrepareOptions(dataset: .amazonGrocery, input: sharedData + "/amazon2014-grocery-rechorus", output: dir.path + "/g")
        g.maxLength = 5
        let mg = try Preparer.prepare(g)
        // README: 121,892 interactions, 14,681 users, 8,687 items.
        #expect(mg.stats.eventsKept == 121_892 && mg.stats.users == 14_681 && mg.stats.items == 8_687)
        // Online Retail: loading only (building its 780k records is slow in debug builds).
        let u = PrepareOptions(dataset: .uciRetail, input: sharedData + "/uci-online-retail", output: dir.path + "/u")
        var log = BadRowLog(skip: false)
        let du = try Preparer.load(u, log: &log)
        // README: 541,909 lines; 397,884 clean purchase lines; minus 1,547 non-product stock codes.
        #expect(du.rowsRead == 541_909)
        #expect(du.filtered["missing_customer"] == 135_080)
        #expect(du.eventCount == 397_884 - 1_547)
        #expect(du.eventCount + du.filtered.values.reduce(0, +) == 541_909)
    }
}
