import Testing
@testable import HeedCore

@Suite struct ShardingPlanTests {
    /// The slot is `mix64(key ^ 0x5EED_5107) mod slotCount` (the plan's documented rule, which
    /// saved models and every role depend on), whichever way it is computed: with a mask for
    /// power-of-two counts, with a division otherwise.
    @Test(arguments: [4096, 64, 1, 1000, 3])
    func aKeysSlotIsItsHashModuloTheSlotCount(slots: Int) {
        let plan = ShardingPlan(serverCount: 1, slotCount: slots)
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<10_000 {
            let key = rng.next()
            #expect(plan.slot(of: key) == Int(KeyHash.mix64(key ^ 0x5EED_5107) % UInt64(slots)))
        }
    }
}
