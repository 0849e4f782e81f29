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

    /// Prepared shards and checkpoints depend on these exact values, so they are literals,
    /// computed once outside Swift with an independent Python implementation of SplitMix64
    /// (Steele et al.) and FNV-1a 64 (scripts/feature-key-literals.py prints them). Anchors
    /// of that implementation: SplitMix64's first output for state 0 is 0xE220A8397B1DCDAF
    /// and FNV-1a 64 of "a" is 0xAF63DC4C8601EC8C (the published test vectors).
    @Test func hashesAreStableAcrossReleases() {
        #expect(KeyHash.mix64(0) == 0xE220_A839_7B1D_CDAF)
        #expect(KeyHash.mix64(1) == 0x910A_2DEC_8902_5CC1)
        // hashBytes = mix64(FNV-1a(bytes)); FNV-1a("a") = 0xAF63DC4C8601EC8C.
        #expect(KeyHash.hashBytes(Array("a".utf8)) == 0x5F29_C2AA_DD9B_8527)
        // Real ids of the bundled datasets (data/): numeric ids take mix64 of the number,
        // textual ids mix64 of their FNV-1a, both masked to 56 bits under the group.
        #expect(FeatureKey(group: 1, id: 1).rawValue == 0x010A_2DEC_8902_5CC1)               // Beauty user 1
        #expect(FeatureKey(group: 2, id: 2_268_318).rawValue == 0x02B7_2ED3_B014_2490)       // Taobao item
        #expect(FeatureKey(group: 3, id: 2_520_377).rawValue == 0x03B0_7563_305C_4255)       // Taobao category
        #expect(FeatureKey(group: 1, id: 17_850).rawValue == 0x01C4_5B11_D4B5_6595)          // UCI customer
        #expect(FeatureKey(group: 2, id: "85123A").rawValue == 0x02A2_E95E_9624_35AF)        // UCI stock code
        #expect(FeatureKey(group: 2, id: "B00004TMFE").rawValue == 0x02BA_CCD4_3634_148E)    // Amazon ASIN
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

    /// Checkpoints store rows per virtual slot, so slot(of:) is part of the on-disk format:
    /// pinned for real keys, with literals from scripts/feature-key-literals.py
    /// (slot = mix64(key ^ 0x5EED5107) mod 4096; round-robin owner = slot mod servers).
    @Test func shardingPlanMapsRealKeysToPinnedSlotsAndServers() {
        let plan = ShardingPlan(serverCount: 3)
        let keys: [UInt64] = [0x010A_2DEC_8902_5CC1, 0x02B7_2ED3_B014_2490, 0x02A2_E95E_9624_35AF]
        #expect(keys.map { plan.slot(of: $0) } == [1998, 5, 2501])
        #expect(keys.map { plan.server(of: $0) } == [0, 2, 2])
        #expect(keys.map { ShardingPlan(serverCount: 2).server(of: $0) } == [0, 1, 1])
        #expect(ShardingPlan.denseRange(rank: 1, serverCount: 3, count: 10) == 3..<6)
    }

    @Test func shardingPlanSpreadsSlotsEvenly() {
        let plan = ShardingPlan(serverCount: 3, slotCount: 4096)
        var counts = [0, 0, 0]
        for i in 0..<30_000 { counts[plan.server(of: FeatureKey(group: 1, id: UInt64(i)).rawValue)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 600 })
    }
}
