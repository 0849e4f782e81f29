import Testing
@testable import HeedCore

@Suite struct FeatureKeyTests {
    @Test func groupLivesInTopEightBits() {
        let k = FeatureKey(group: 7, id: 12345)
        #expect(k.group == 7)
        #expect(k.rawValue >> 56 == 7)
        #expect(FeatureKey(group: 7, id: 12345) == k)
        #expect(FeatureKey(group: 8, id: 12345).rawValue & FeatureKey.hashMask == k.rawValue & FeatureKey.hashMask)
    }

    @Test func hashesAreStableAcrossReleases() {
        // Prepared shards and checkpoints depend on these exact values.
        #expect(KeyHash.mix64(0) == 0xE220_A839_7B1D_CDAF)
        #expect(FeatureKey(group: 1, id: "B00004TMFE").rawValue == FeatureKey(group: 1, id: "B00004TMFE").rawValue)
        #expect(FeatureKey(group: 1, id: "a").rawValue != FeatureKey(group: 1, id: "b").rawValue)
    }

    @Test func seededGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let xs = (0..<8).map { _ in a.next() }
        #expect(xs == (0..<8).map { _ in b.next() })
        #expect(xs != (0..<8).map { _ in c.next() })
        let u = (0..<1000).map { _ in a.nextUnitDouble() }
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    @Test func crc32MatchesKnownVector() {
        #expect(CRC32.of(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func shardingPlanSpreadsSlotsEvenly() {
        let plan = ShardingPlan(serverCount: 3, slotCount: 4096)
        var counts = [0, 0, 0]
        for i in 0..<30_000 { counts[plan.server(of: FeatureKey(group: 1, id: UInt64(i)).rawValue)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 600 })
    }
}
