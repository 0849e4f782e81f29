import Foundation
import HeedCore
import Testing
@testable import HeedData

/// Exact record semantics on a tiny hand-written generic dataset.
@Suite struct SampleBuilderTests {
    static let events = """
    # heed-schema: 1
    user,item,event,timestamp,price,category
    u1,a,view,1000,10,c1
    u1,b,view,1010,20,c1
    u1,a,purchase,1100,10,c1
    u1,c,cart,1200,5,c2
    u1,d,view,1300,,
    u2,b,view,1000,20,c1
    u2,c,view,2000,5,c2
    u2,e,purchase,3000,30,c1
    u3,b,view,600,20,c1
    u3,a,view,500,10,c1

    """
    static let social = "user,friend\nu1,u3\nu1,u2\nu1,u3\nu2,u1\nu3,u3\n"

    static func key(_ g: FeatureGroup, _ s: String) -> UInt64 { g.key(FeatureGroup.rawID(s)) }

    /// Prepares the tiny dataset with `configure` applied; returns manifest and directory.
    static func prepare(_ dir: Scratch, _ name: String = "out", _ configure: (inout PrepareOptions) -> Void = { _ in }) throws -> (DatasetManifest, String) {
        dir.write("events.csv", events)
        dir.write("social.csv", social)
        var o = PrepareOptions(dataset: .generic, input: dir.path, output: dir.path + "/" + name)
        o.maxLength = 2
        configure(&o)
        return (try Preparer.prepare(o), dir.path + "/" + name)
    }

    @Test func leaveOneOutCTRRecordsHaveTheExpectedTargetsAndNegatives() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir)
        #expect(m.recordCount(.train) == 6)   // u1 positions 1, 2; u3 position 1; each + negative
        #expect(m.recordCount(.valid) == 4)   // u1 position 3, u2 position 1
        #expect(m.recordCount(.test) == 4)    // u1 position 4, u2 position 2
        #expect(m.stats.evaluatedUsers == 2)
        #expect(m.schema.labels == ["click", "cart", "purchase"])
        #expect(m.schema.slots.map(\.name) == ["user", "item", "category", "price_level", "spend_level", "neighbors",
                                              "hist_items", "hist_categories", "hist_events", "hist_gaps"])
        let items: [String: Set<String>] = ["u1": ["a", "b", "c", "d"], "u2": ["b", "c", "e"], "u3": ["a", "b"]]
        var seen: [String] = []
        for split in Split.allCases {
            let shard = try m.open(split, directory: out)[0]
            for r in stride(from: 0, to: shard.count, by: 2) {
                // Positive, then its negative, with the same user, time and history.
                #expect(shard.label(r, 0) == 1 && shard.label(r + 1, 0) == 0)
                #expect(shard.userID(r) == shard.userID(r + 1) && shard.timestamp(r) == shard.timestamp(r + 1))
                let hist = shard.schema.slotIndex("hist_items")!
                #expect(shard.keys(slot: hist, record: r) == shard.keys(slot: hist, record: r + 1))
                let user = ["u1", "u2", "u3"].first { FeatureGroup.rawID($0) == shard.userID(r) }!
                let neg = ["a", "b", "c", "d", "e"].first { FeatureGroup.rawID($0) == shard.itemID(r + 1) }!
                #expect(!items[user]!.contains(neg), "negative \(neg) was interacted with by \(user)")
                seen.append("\(split.rawValue):\(user)")
            }
        }
        #expect(seen.sorted() == ["test:u1", "test:u2", "train:u1", "train:u1", "train:u3", "valid:u1", "valid:u2"])
    }

    @Test func validationRecordCarriesCappedHistoryGapsEventsAndPrices() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir)
        let shard = try m.open(.valid, directory: out)[0]
        let r = (0..<shard.count).first { shard.userID($0) == FeatureGroup.rawID("u1") && shard.label($0, 0) == 1 }!
        let s = shard.schema
        #expect(shard.itemID(r) == FeatureGroup.rawID("c"))
        #expect(shard.timestamp(r) == 1200)
        // History capped at 2, most recent last: b (1010), a (1100).
        #expect(shard.keys(slot: s.slotIndex("hist_items")!, record: r) == [Self.key(.item, "b"), Self.key(.item, "a")])
        #expect(shard.keys(slot: s.slotIndex("hist_categories")!, record: r) == [Self.key(.category, "c1"), Self.key(.category, "c1")])
        #expect(shard.keys(slot: s.slotIndex("hist_events")!, record: r) == [FeatureGroup.eventType.key(1), FeatureGroup.eventType.key(4)])
        // Gaps 190 s and 100 s: bit lengths 8 and 7.
        #expect(shard.keys(slot: s.slotIndex("hist_gaps")!, record: r) == [FeatureGroup.timeGap.key(8), FeatureGroup.timeGap.key(7)])
        #expect(shard.labels(r) == [1, 1, 0])  // click, cart, purchase
        // c is the only priced item of c2: mid-rank 0.5 → level 5 of 10.
        #expect(shard.keys(slot: s.slotIndex("price_level")!, record: r) == [FeatureGroup.priceLevel.key(5)])
        // History before position 3 of u1: a (1/6), b (1/2), a (1/6) → mean 5/18 → spend level 2.
        #expect(shard.keys(slot: s.slotIndex("spend_level")!, record: r) == [FeatureGroup.spendLevel.key(2)])
        let dense = shard.dense(r)
        #expect(s.dense == ["log_hist_len", "log_price", "price_pct", "user_price_pct", "price_gap"])
        #expect(abs(dense[0] - Float(log1p(3.0))) < 1e-6)
        #expect(abs(dense[1] - Float(log1p(5.0))) < 1e-6)
        #expect(abs(dense[2] - 0.5) < 1e-6 && abs(dense[3] - 5.0 / 18) < 1e-6 && abs(dense[4] - (0.5 - 5.0 / 18)) < 1e-6)
        // Neighbours: deduplicated, most active first (u2 has 3 events, u3 has 2).
        #expect(shard.keys(slot: s.slotIndex("neighbors")!, record: r) == [Self.key(.user, "u2"), Self.key(.user, "u3")])
    }

    @Test func missingCategoryAndPriceUseTheMissingKeys() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir)
        let shard = try m.open(.test, directory: out)[0]
        let s = shard.schema
        let r = (0..<shard.count).first { shard.itemID($0) == FeatureGroup.rawID("d") }!
        #expect(shard.keys(slot: s.slotIndex("category")!, record: r) == [FeatureGroup.category.missingKey])
        #expect(shard.keys(slot: s.slotIndex("price_level")!, record: r) == [FeatureGroup.priceLevel.missingKey])
        let catalog = try m.openCatalog(directory: out)
        #expect(catalog.count == 5)
        #expect(Set((0..<5).map { catalog.itemID($0) }) == Set(["a", "b", "c", "d", "e"].map { FeatureGroup.rawID($0) }))
        // Price levels within c1: a 10, b 20, e 30 → mid-ranks 1/6, 1/2, 5/6 → levels 1, 5, 8.
        let level = catalog.schema.slotIndex("price_level")!
        for (name, lv) in [("a", 1), ("b", 5), ("e", 8)] {
            let row = (0..<5).first { catalog.itemID($0) == FeatureGroup.rawID(name) }!
            #expect(catalog.keys(slot: level, record: row) == [FeatureGroup.priceLevel.key(UInt64(lv))])
        }
    }

    @Test func sequenceProtocolKeepsOneTrainRecordPerUser() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir) { $0.sampleProtocol = .seq }
        #expect(m.recordCount(.train) == 2 && m.recordCount(.valid) == 2 && m.recordCount(.test) == 2)
        let train = try m.open(.train, directory: out)[0]
        let u1 = (0..<train.count).first { train.userID($0) == FeatureGroup.rawID("u1") }!
        #expect(train.itemID(u1) == FeatureGroup.rawID("a"))   // the last train position of u1
        #expect((0..<train.count).allSatisfy { train.label($0, 0) == 1 })
    }

    @Test func timeSplitFollowsTheBounds() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir) { $0.split = .time(validFrom: 1150, testFrom: 2500) }
        #expect(m.recordCount(.train) == 6 && m.recordCount(.valid) == 6 && m.recordCount(.test) == 2)
        for split in Split.allCases {
            for shard in try m.open(split, directory: out) {
                for r in 0..<shard.count {
                    let t = shard.timestamp(r)
                    switch split {
                    case .train: #expect(t < 1150)
                    case .valid: #expect(t >= 1150 && t < 2500)
                    case .test: #expect(t >= 2500)
                    }
                }
            }
        }
        #expect(m.settings.validFrom == 1150 && m.settings.testFrom == 2500)
    }

    @Test func targetEventFilterKeepsFullHistory() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir) { $0.targetEvents = [.purchase] }
        #expect(m.recordCount(.train) == 4 && m.recordCount(.valid) == 0 && m.recordCount(.test) == 0)
        let train = try m.open(.train, directory: out)[0]
        let s = train.schema.slotIndex("hist_items")!
        let r = (0..<train.count).first { train.userID($0) == FeatureGroup.rawID("u2") && train.label($0, 0) == 1 }!
        #expect(train.keys(slot: s, record: r) == [Self.key(.item, "b"), Self.key(.item, "c")])
        #expect(train.labels(r) == [1, 0, 1])
    }

    @Test func outputIsByteIdenticalForTheSameSeedAndShardsPartitionRecords() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m1, o1) = try Self.prepare(dir, "a") { $0.seed = 9 }
        let (m2, o2) = try Self.prepare(dir, "b") { $0.seed = 9 }
        #expect(m1 == m2)
        for e in m1.train + m1.valid + m1.test + [m1.catalog] {
            #expect(FileManager.default.contents(atPath: o1 + "/" + e.file) == FileManager.default.contents(atPath: o2 + "/" + e.file))
        }
        #expect(FileManager.default.contents(atPath: o1 + "/manifest.json") == FileManager.default.contents(atPath: o2 + "/manifest.json"))
        let (m3, o3) = try Self.prepare(dir, "c") { $0.seed = 9; $0.shards = 3 }
        for split in Split.allCases {
            #expect(m3.shards(split).count == 3)
            #expect(m3.recordCount(split) == m1.recordCount(split))
            let pairs = try m3.open(split, directory: o3).flatMap { s in (0..<s.count).map { (s.userID($0), s.itemID($0), s.label($0, 0)) } }
            let single = try m1.open(split, directory: o1).flatMap { s in (0..<s.count).map { (s.userID($0), s.itemID($0), s.label($0, 0)) } }
            #expect(pairs.map { "\($0)" }.sorted() == single.map { "\($0)" }.sorted())
            if split != .train {
                // Held-out records of one user share a shard.
                for s in try m3.open(split, directory: o3) {
                    for r in 0..<s.count {
                        #expect(try m3.open(split, directory: o3).filter { o in (0..<o.count).contains { o.userID($0) == s.userID(r) } }.count == 1)
                    }
                }
            }
        }
    }
}

@Suite struct LoadOrPrepareTests {
    @Test func reusesAMatchingDatasetAndRebuildsAChangedOne() throws {
        let dir = Scratch(); defer { dir.remove() }
        dir.write("events.csv", SampleBuilderTests.events)
        var o = PrepareOptions(dataset: .generic, input: dir.path, output: dir.path + "/out")
        let first = try Preparer.loadOrPrepare(o)
        let marker = dir.path + "/out/marker"
        _ = FileManager.default.createFile(atPath: marker, contents: Data())
        let again = try Preparer.loadOrPrepare(o)
        #expect(again == first)
        #expect(FileManager.default.fileExists(atPath: marker))   // not rebuilt
        o.maxLength = 1
        let changed = try Preparer.loadOrPrepare(o)
        #expect(changed.settings.maxLength == 1)
        #expect(!FileManager.default.fileExists(atPath: marker))  // rebuilt from scratch
    }
}
