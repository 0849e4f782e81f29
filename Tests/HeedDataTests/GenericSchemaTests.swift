import Foundation
import HeedCore
import Testing
@testable import HeedData

/// "Your own data in": the generic schema without timestamps, with a numeric rating column
/// (`--positive-rating`) and with `|`-separated item tags, on rows cut from real data.
@Suite struct GenericSchemaTests {
    /// Real Ciao rows (`data/cuts/ciao/ratings.tsv.gz`, users 2415 and 2464, file order kept
    /// per user) as a ratings export: no `event`, no `timestamp`; the category id written as
    /// its name (`categories.tsv`) in `tags`, item 45884 with a second real category name.
    /// The two users' rows are interleaved, so only the order *within* a user is the order.
    static let ratings = """
    user,item,rating,tags
    2415,79138,4,Games
    2415,79139,5,Cameras
    2464,41505,5,Games
    2415,79137,5,Entertainment
    2464,79655,4,Internet
    2415,45884,4,Music|Entertainment
    2464,36686,4,Shopping
    2415,3960,5,DVDs
    2464,79979,5,Internet
    2415,79136,4,Electronics
    2464,75246,,Internet
    2415,2082,4,Family
    2464,75412,4,Education & Careers
    2415,1447,1,Internet
    2464,73385,1,Ciao Caf?
    2464,75722,4,Entertainment
    2464,31725,3,Entertainment

    """

    static func key(_ g: FeatureGroup, _ s: String) -> UInt64 { g.key(FeatureGroup.rawID(s)) }
    static func tag(_ s: String) -> UInt64 { FeatureGroup.attribute.key(FeatureGroup.rawID("tag=" + s)) }

    static func prepare(_ dir: Scratch, _ files: [String: String], name: String = "out",
                        _ configure: (inout PrepareOptions) -> Void = { _ in }) throws -> (DatasetManifest, String) {
        for (f, text) in files { dir.write(f, text) }
        var o = PrepareOptions(dataset: .generic, input: dir.path, output: dir.path + "/" + name)
        o.maxLength = 4
        configure(&o)
        return (try Preparer.prepare(o), dir.path + "/" + name)
    }

    /// The positive record of `user` in `split` (leave-one-out: one per user in valid and test).
    static func positive(_ shard: SampleShard, user: String) -> Int? {
        (0..<shard.count).first { shard.userID($0) == FeatureGroup.rawID(user) && ($0 % 2 == 0) }
    }

    @Test func eventsWithoutTimestampFollowFileOrderWithinEachUser() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir, ["events.csv": Self.ratings])
        let s = m.schema
        #expect(s.slotIndex("hist_gaps") == nil, "no timestamps: no time gaps")
        #expect(s.slotIndex("hist_events") == nil, "every row is a rating: one behaviour type")
        #expect(s.labels == ["click", "rating"])
        #expect(m.stats.eventsKept == 17 && m.stats.users == 2)
        // 2415 has 8 rows: test = its 8th (1447), valid = 7th (2082), history of test = rows 4…7.
        let test = try m.open(.test, directory: out)[0]
        let r = try #require(Self.positive(test, user: "2415"))
        #expect(test.itemID(r) == 1447)
        #expect(test.timestamp(r) == 0)
        #expect(test.keys(slot: s.slotIndex("hist_items")!, record: r) == ["45884", "3960", "79136", "2082"].map { Self.key(.item, $0) })
        let valid = try m.open(.valid, directory: out)[0]
        let v = try #require(Self.positive(valid, user: "2464"))
        #expect(valid.itemID(v) == 75722)   // 2464's 8th of 9 rows, whatever 2415's rows between
        #expect(valid.keys(slot: s.slotIndex("hist_items")!, record: v) == ["79979", "75246", "75412", "73385"].map { Self.key(.item, $0) })
        // A time split needs times.
        let e = #expect(throws: HeedError.self) { _ = try Self.prepare(dir, [:], name: "timed") { $0.split = .time(validFrom: nil, testFrom: nil) } }
        #expect(e?.message.contains("no timestamps") == true)
    }

    /// The retail sample is in time order, so dropping its timestamp column changes nothing but
    /// the time features: same records, same histories, same labels.
    @Test func droppingTheTimestampOfTimeOrderedRetailRowsKeepsEveryRecord() throws {
        let dir = Scratch(); defer { dir.remove() }
        let lines = try readLines(repoData + "/generic-online-retail-sample/events.csv.gz").prefix(3001)
        #expect(lines.first == "user,item,event,timestamp,price")
        let timed = lines.joined(separator: "\n") + "\n"
        let untimed = lines.map { line in
            var f = line.split(separator: ",", omittingEmptySubsequences: false)
            f.remove(at: 3)
            return f.joined(separator: ",")
        }.joined(separator: "\n") + "\n"
        dir.write("timed.csv", timed)
        dir.write("untimed.csv", untimed)
        func prepare(_ file: String) throws -> (DatasetManifest, String) {
            var o = PrepareOptions(dataset: .generic, input: nil, output: dir.path + "/" + file + "-out")
            o.events = dir.path + "/" + file + ".csv"
            return (try Preparer.prepare(o), o.output)
        }
        let (a, outA) = try prepare("timed"), (b, outB) = try prepare("untimed")
        #expect(a.schema.slotIndex("hist_gaps") != nil && b.schema.slotIndex("hist_gaps") == nil)
        for split in Split.allCases {
            #expect(a.recordCount(split) == b.recordCount(split) && a.recordCount(split) > 0)
            let x = try a.open(split, directory: outA)[0], y = try b.open(split, directory: outB)[0]
            // The first differing record, if any (one issue per split, not one per record).
            let differing = (0..<x.count).first { r in
                x.userID(r) != y.userID(r) || x.itemID(r) != y.itemID(r) || x.labels(r) != y.labels(r)
                    || ["item", "hist_items", "price_level", "spend_level"].contains { name in
                        x.keys(slot: x.schema.slotIndex(name)!, record: r) != y.keys(slot: y.schema.slotIndex(name)!, record: r)
                    }
            }
            #expect(differing == nil, "\(split.rawValue) record \(differing ?? -1) differs without timestamps")
        }
    }

    @Test func positiveRatingDecidesTheClickLabel() throws {
        let dir = Scratch(); defer { dir.remove() }
        let stars: [UInt64: Float] = [79138: 4, 79139: 5, 41505: 5, 79137: 5, 79655: 4, 45884: 4, 36686: 4, 3960: 5, 79979: 5,
                                      79136: 4, 75246: .nan, 2082: 4, 75412: 4, 1447: 1, 73385: 1, 75722: 4, 31725: 3]
        for threshold in [nil, 4.0] {
            let (m, out) = try Self.prepare(dir, ["events.csv": Self.ratings], name: "out-\(threshold ?? 0)") { $0.positiveRating = threshold }
            #expect(m.settings.positiveRating == threshold)
            var negativesFromRatings = 0
            for split in Split.allCases {
                for shard in try m.open(split, directory: out) {
                    for r in stride(from: 0, to: shard.count, by: 2) {
                        let star = try #require(stars[shard.itemID(r)])
                        let positive = threshold.map { star.isNaN || Double(star) >= $0 } ?? true
                        #expect(shard.label(r, 0) == (positive ? 1 : 0), "item \(shard.itemID(r)) rated \(star)")
                        #expect(shard.label(r, 1) == (star.isNaN ? 0 : star), "rating label of item \(shard.itemID(r))")
                        #expect(shard.labels(r + 1) == [0, 0], "the sampled negative")
                        if !positive { negativesFromRatings += 1 }
                    }
                }
            }
            // Targets rated below 4: 1447, 73385, 31725 (75246 is unrated: a positive).
            #expect(negativesFromRatings == (threshold == nil ? 0 : 3))
        }
        // Without a rating column there is nothing to threshold.
        let e = #expect(throws: HeedError.self) {
            _ = try Self.prepare(dir, ["events.csv": "user,item\n2415,79138\n2415,79139\n2415,79137\n"], name: "unrated") { $0.positiveRating = 4 }
        }
        #expect(e?.message.contains("--positive-rating 4.0: dataset generic has no ratings") == true)
    }

    @Test func tagsBecomeAttributeTokensAndTheFirstTagTheCategory() throws {
        let dir = Scratch(); defer { dir.remove() }
        let (m, out) = try Self.prepare(dir, ["events.csv": Self.ratings])
        let s = m.schema
        #expect(s.slots.map(\.name) == ["user", "item", "category", "attributes", "hist_items", "hist_categories"])
        let catalog = try m.openCatalog(directory: out)
        let cs = catalog.schema
        let byItem = Dictionary(uniqueKeysWithValues: (0..<catalog.count).map { (catalog.itemID($0), $0) })
        let music = try #require(byItem[45884])
        #expect(catalog.keys(slot: cs.slotIndex("attributes")!, record: music) == [Self.tag("Music"), Self.tag("Entertainment")])
        #expect(catalog.keys(slot: cs.slotIndex("category")!, record: music) == [Self.key(.category, "Music")])
        let education = try #require(byItem[75412])
        #expect(catalog.keys(slot: cs.slotIndex("attributes")!, record: education) == [Self.tag("Education & Careers")])
        // Behaviour categories come from the tags too: 2415's test history 45884, 3960, 79136, 2082.
        let test = try m.open(.test, directory: out)[0]
        let r = try #require(Self.positive(test, user: "2415"))
        #expect(test.keys(slot: s.slotIndex("hist_categories")!, record: r) == ["Music", "DVDs", "Electronics", "Family"].map { Self.key(.category, $0) })
        #expect(test.keys(slot: s.slotIndex("attributes")!, record: r) == [Self.tag("Internet")])
    }

    /// Tags in the item file: a `category` column keeps naming the category, blanks around a
    /// tag and empty tags are dropped, repeats kept once; brand and tags share the attributes.
    @Test func itemFileTagsJoinBrandAndLeaveAnExplicitCategory() throws {
        let dir = Scratch(); defer { dir.remove() }
        let items = """
        item,category,brand,tags
        79138,24,Nintendo, Games | Family||Games
        45884,,,Music|Entertainment
        3960,1,,

        """
        let (m, out) = try Self.prepare(dir, ["events.csv": Self.ratings, "items.csv": items])
        let catalog = try m.openCatalog(directory: out)
        let cs = catalog.schema
        let byItem = Dictionary(uniqueKeysWithValues: (0..<catalog.count).map { (catalog.itemID($0), $0) })
        let brand = FeatureGroup.attribute.key(FeatureGroup.rawID("brand=Nintendo"))
        #expect(catalog.keys(slot: cs.slotIndex("attributes")!, record: byItem[79138]!) == [brand, Self.tag("Games"), Self.tag("Family")])
        #expect(catalog.keys(slot: cs.slotIndex("category")!, record: byItem[79138]!) == [FeatureGroup.category.key(24)])
        // No category in the item file: the events file's first tag stays the category.
        #expect(catalog.keys(slot: cs.slotIndex("category")!, record: byItem[45884]!) == [Self.key(.category, "Music")])
        #expect(catalog.keys(slot: cs.slotIndex("attributes")!, record: byItem[3960]!).isEmpty)
        #expect(catalog.keys(slot: cs.slotIndex("category")!, record: byItem[3960]!) == [FeatureGroup.category.key(1)])
    }

    struct BadCase: CustomTestStringConvertible, Sendable {
        var name: String
        var events: String
        var location: String
        var expect: String
        var testDescription: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(name: "non-numeric rating", events: "user,item,rating\n2415,79138,4\n2415,79139,five\n",
                location: "events.csv:3:", expect: "bad rating 'five' (expected a number or empty)"),
        BadCase(name: "infinite rating", events: "user,item,rating\n2415,79138,inf\n",
                location: "events.csv:2:", expect: "bad rating 'inf'"),
        BadCase(name: "missing item column", events: "user,rating,tags\n2415,4,Games\n",
                location: "events.csv:1:", expect: "header lacks required column 'item' (required: user,item; optional: event,timestamp,rating,price,category,tags)"),
        BadCase(name: "misspelt column", events: "user,item,ratings\n2415,79138,4\n",
                location: "events.csv:1:", expect: "unknown column 'ratings' in header"),
        BadCase(name: "empty user", events: "user,item,rating\n,79138,4\n",
                location: "events.csv:2:", expect: "empty user id"),
        BadCase(name: "bad timestamp when the column exists", events: "user,item,timestamp\n2415,79138,959842800\n2415,79139,soon\n",
                location: "events.csv:3:", expect: "bad timestamp 'soon'"),
        BadCase(name: "short row", events: "user,item,rating,tags\n2415,79138,4\n",
                location: "events.csv:2:", expect: "wrong column count: expected 4 fields (user,item,rating,tags), found 3"),
    ]

    @Test(arguments: badCases)
    func badInputNamesFileAndLine(_ c: BadCase) throws {
        let dir = Scratch(); defer { dir.remove() }
        let e = #expect(throws: HeedError.self) { _ = try Self.prepare(dir, ["events.csv": c.events]) }
        let message = e?.message ?? ""
        #expect(message.contains(c.location) && message.contains(c.expect), "got: \(message)")
        #expect(dir.entries() == ["events.csv"], "no output left behind")
    }

    @Test func skippedBadRatingsAreCounted() throws {
        let dir = Scratch(); defer { dir.remove() }
        let events = Self.ratings + "2415,79140,five,Games\n2464,79141,4.5.1,\n"
        let (m, _) = try Self.prepare(dir, ["events.csv": events]) { $0.skipBadRows = true }
        #expect(m.stats.badRows == ["badNumber": 2])
        #expect(m.stats.eventsKept == 17)
    }
}
