import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

@Suite struct EmbeddingTableCheckpointTests {
    /// A table with 300 rows of varied step counts.
    func trainedTable(stripes: Int) throws -> EmbeddingTable {
        let t = try makeTable(stripes: stripes)
        let keys = itemKeys(0..<300)
        _ = t.pull(keys, step: 0)
        for round in 0..<3 {
            let part = Array(keys[(round * 50)...])
            t.push(part, grads: part.indices.flatMap { i in (0..<4).map { Float((i + $0) % 7) - 3 } }, step: UInt32(round + 1))
        }
        return t
    }

    @Test func exportVisitsRowsInSlotThenKeyOrderWithFullState() throws {
        let t = try trainedTable(stripes: 8)
        let plan = ShardingPlan(serverCount: 2, slotCount: 64)
        var seen: [(slot: Int, key: UInt64)] = []
        try t.forEachRow(plan: plan) { r in
            seen.append((r.slot, r.key))
            #expect(r.slot == plan.slot(of: r.key))
            #expect(r.values.count == 12)
        }
        #expect(seen.count == 300)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { a, b in a.slot < b.slot || (a.slot == b.slot && a.key < b.key) })
        let counts = t.rowCounts(plan: plan)
        #expect(counts.reduce(0, +) == 300)
        for slot in 0..<64 { #expect(counts[slot] == seen.filter { $0.slot == slot }.count) }
        // Steps: keys 0..<50 got 1 push, 50..<100 two, the rest three.
        let steps = try dump(t, plan: plan).map { $0.1 }
        #expect(steps.filter { $0 == 1 }.count == 50 && steps.filter { $0 == 2 }.count == 50 && steps.filter { $0 == 3 }.count == 200)
    }

    // Export → restore into a table with another stripe count → identical export, and the
    // restored rows keep training exactly like the originals (step counts included).
    @Test func restoreReproducesTheTableAndItsOptimizerState() throws {
        let src = try trainedTable(stripes: 8)
        var keys: [UInt64] = [], values: [Float] = [], steps: [UInt32] = []
        try src.forEachRow(plan: ShardingPlan(serverCount: 1)) { r in
            keys.append(r.key)
            values += r.values
            steps.append(r.step)
        }
        let dst = try makeTable(stripes: 2)
        dst.restore(keys, values: values, steps: steps, lastTouched: 3)
        let a = try dump(src), b = try dump(dst)
        #expect(differingRows(a, b) == 0)
        #expect(dst.stats().created == 0 && dst.rowCount == 300)
        let probe = itemKeys(0..<300)
        let g = [Float](repeating: 0.3, count: 1200)
        src.push(probe, grads: g, step: 4)
        dst.push(probe, grads: g, step: 4)
        #expect(src.pull(probe, step: 5) == dst.pull(probe, step: 5))
        // Restoring over existing rows overwrites them.
        dst.restore(keys, values: values, steps: steps, lastTouched: 3)
        let c = try dump(dst)
        #expect(differingRows(c, a) == 0 && dst.rowCount == 300)
    }

    // Sharded == unsharded: route keys to two tables by the sharding plan, run the same
    // pulls and pushes, and the union of the shards equals the single table.
    @Test func shardedTablesEqualTheUnshardedTable() throws {
        let plan = ShardingPlan(serverCount: 2, slotCount: 256)
        let whole = try makeTable(stripes: 4), shards = [try makeTable(stripes: 1), try makeTable(stripes: 8)]
        var rng = SeededGenerator(seed: 5)
        for step in 1...20 {
            let batch = Array(Set((0..<64).map { _ in FeatureKey(group: 2, id: rng.next() % 500).rawValue })).sorted()
            let grads = (0..<batch.count * 4).map { _ in Float(rng.nextGaussian()) }
            let w = whole.pull(batch, step: UInt32(step))
            var fromShards = [Float](repeating: 0, count: w.count)
            for s in 0..<2 {
                let mine = batch.indices.filter { plan.server(of: batch[$0]) == s }
                let got = shards[s].pull(mine.map { batch[$0] }, step: UInt32(step))
                for (j, i) in mine.enumerated() { fromShards.replaceSubrange(i * 4..<(i + 1) * 4, with: got[j * 4..<(j + 1) * 4]) }
                shards[s].push(mine.map { batch[$0] }, grads: mine.flatMap { grads[$0 * 4..<($0 + 1) * 4] }, step: UInt32(step))
            }
            #expect(w == fromShards)
            whole.push(batch, grads: grads, step: UInt32(step))
        }
        let union = (try dump(shards[0], plan: plan) + dump(shards[1], plan: plan)).sorted { $0.0 < $1.0 }
        let reference = try dump(whole, plan: plan).sorted { $0.0 < $1.0 }
        #expect(union.count == reference.count)
        #expect(differingRows(union, reference) == 0)
        for (s, table) in shards.enumerated() {
            try table.forEachRow(plan: plan) { #expect(plan.server(of: $0.key) == s) }
        }
    }
}
