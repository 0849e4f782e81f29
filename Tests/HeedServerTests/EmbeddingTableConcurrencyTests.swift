import Dispatch
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

@Suite struct EmbeddingTableConcurrencyTests {
    /// Gradient batches: thread `t`, batch `b` pushes `keysFor(t, b)` with deterministic grads.
    struct Workload {
        var threads = 4, batches = 40, batchSize = 256, dim = 8
        var keysFor: (Int, Int) -> [UInt64]
        var gradFor: (UInt64, Int, Int) -> Float

        /// Runs every batch sequentially (thread 0's batches first).
        func sequential(_ t: EmbeddingTable) {
            for th in 0..<threads { for b in 0..<batches { run(t, th, b) } }
        }

        /// Runs each thread's batches on its own thread, all at once.
        func concurrent(_ t: EmbeddingTable) {
            DispatchQueue.concurrentPerform(iterations: threads) { th in
                for b in 0..<batches { run(t, th, b) }
            }
        }

        func run(_ t: EmbeddingTable, _ th: Int, _ b: Int) {
            let keys = keysFor(th, b)
            _ = t.pull(keys, step: UInt32(b))
            let grads = keys.flatMap { k in (0..<dim).map { gradFor(k, th, $0) } }
            t.push(keys, grads: grads, step: UInt32(b))
        }
    }

    func table(dim: Int) throws -> EmbeddingTable {
        try EmbeddingTable(config: EmbeddingTableConfig(name: "c", dim: dim, optimizer: .adam(AdamConfig(lr: 0.01))),
                           options: EmbeddingTableOptions(stripes: 8, hugePages: false))
    }

    // Disjoint keys per thread: each row sees the same updates in the same order either way,
    // so the concurrent result must equal the sequential one bit for bit.
    @Test func disjointConcurrentPushesEqualSequentialPushes() throws {
        let w = Workload(keysFor: { th, b in
            var rng = SeededGenerator(seed: UInt64(th * 1000 + b))
            return (0..<256).map { _ in FeatureKey(group: UInt8(th + 1), id: rng.next() % 2_000).rawValue }
        }, gradFor: { k, _, j in Float(Int(k % 13) - 6) * 0.1 + Float(j) * 0.01 })
        let seq = try table(dim: 8), con = try table(dim: 8)
        w.sequential(seq)
        w.concurrent(con)
        let a = try dump(seq), b = try dump(con)
        #expect(a.count == b.count && a.count > 7_000)
        #expect(differingRows(a, b) == 0)
    }

    // Shared keys, each always pushed with the same gradient: the updates of a row are
    // identical, so any serialisation gives the sequential result exactly, and every row's
    // step count is the number of pushes it got. A lost or torn update would show.
    @Test func overlappingConcurrentPushesAreSerialisable() throws {
        let w = Workload(keysFor: { th, b in
            var rng = SeededGenerator(seed: UInt64(th * 1000 + b))
            return (0..<256).map { _ in FeatureKey(group: 1, id: rng.next() % 600).rawValue }
        }, gradFor: { k, _, j in Float(Int(k % 11) - 5) * 0.1 + Float(j) * 0.01 })
        let seq = try table(dim: 8), con = try table(dim: 8)
        w.sequential(seq)
        w.concurrent(con)
        let a = try dump(seq), b = try dump(con)
        #expect(differingRows(a, b) == 0)
        #expect(a.reduce(0) { $0 + Int($1.1) } == 4 * 40 * 256)
    }

    // Shared keys with thread-dependent gradients: order now matters, but each row's step
    // count must still equal its number of pushes and the stats must add up.
    @Test func contendedPushesCountEveryUpdate() throws {
        let w = Workload(keysFor: { th, b in
            var rng = SeededGenerator(seed: UInt64(th * 7919 + b))
            return (0..<256).map { _ in FeatureKey(group: 1, id: rng.next() % 300).rawValue }
        }, gradFor: { k, th, j in Float(th) - 1.5 + Float(Int(k % 5) + j) * 0.01 })
        let con = try table(dim: 8)
        w.concurrent(con)
        var expected: [UInt64: UInt32] = [:]
        for th in 0..<4 { for b in 0..<40 { for k in w.keysFor(th, b) { expected[k, default: 0] += 1 } } }
        let rows = try dump(con)
        #expect(rows.count == expected.count)
        for r in rows { #expect(r.1 == expected[r.0]) }
        #expect(rows.allSatisfy { $0.2.allSatisfy(\.isFinite) })
        #expect(con.stats().updates == 4 * 40 * 256)
    }
}
