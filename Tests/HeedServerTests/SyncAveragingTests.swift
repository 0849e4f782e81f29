import Foundation
import Testing
import HeedCore
import HeedOptim
@testable import HeedServer

/// Synchronous mode's contract at the shard: a step's W pushes change nothing until the
/// W-th arrives, then every key any worker pushed gets exactly one Adam update with the
/// mean of the W gradients (a worker that did not push a key contributes zero), and the
/// dense chunk likewise. Checked against a textbook Adam in Double written here.
@Suite struct SyncAveragingTests {
    /// Adam with ε of the order of the gradients: with the usual tiny ε, Adam's update
    /// m̂/√v̂ is invariant to the gradient's scale, so a shard that summed instead of
    /// averaging would move the weights exactly as far. With ε = 0.5 the scale shows in
    /// the weights, and m and v (compared too) show it directly.
    static let adam = AdamConfig(lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 0.5)
    /// Two tables of different widths, so a step's arrivals must be counted per table.
    static let dims: [UInt8: Int] = [1: 3, 2: 2]
    static let initialDense: [Float] = [0.5, -0.25, 1.0, 0.75, -1.5]

    /// Worker `w`'s keys of `table` at `step`: two keys every worker pushes (overlap),
    /// one of its own (distinct), and a key pushed only at odd steps by worker 0 (so
    /// rows' update counts diverge and lazy Adam's per-row t is exercised).
    static func keys(worker w: Int, table: UInt8, step: Int) -> [UInt64] {
        let g = table
        var keys = [FeatureKey(group: g, id: 1).rawValue, FeatureKey(group: g, id: 2).rawValue,
                    FeatureKey(group: g, id: UInt64(100 + w)).rawValue]
        if w == 0 && step % 2 == 1 { keys.append(FeatureKey(group: g, id: 999).rawValue) }
        return keys.sorted()
    }

    /// A deterministic gradient in [-1, 1) for (worker, step, key, component).
    static func gradient(worker w: Int, step: Int, key: UInt64, component j: Int) -> Float {
        let h = KeyHash.mix64(key &+ UInt64(w) &* 0x9E37_79B9 &+ UInt64(step) &* 0x1_0000_0001 &+ UInt64(j) &* 7919)
        return Float(h >> 40) / Float(1 << 23) - 1
    }

    /// Textbook Adam (Kingma & Ba 2015, Algorithm 1) on one parameter vector, in Double.
    struct ReferenceAdam {
        var w: [Double], m: [Double], v: [Double], t = 0
        init(_ w: [Float]) {
            self.w = w.map(Double.init)
            m = Array(repeating: 0, count: w.count)
            v = Array(repeating: 0, count: w.count)
        }
        mutating func step(_ g: [Double], _ c: AdamConfig) {
            t += 1
            let b1 = Double(c.beta1), b2 = Double(c.beta2)
            for i in w.indices {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                w[i] -= Double(c.lr) * mHat / (vHat.squareRoot() + Double(c.eps))
            }
        }
    }

    func makeShard(workers: Int) throws -> ParameterShard {
        let tables = Self.dims.mapValues { EmbeddingTableConfig(name: "t", dim: $0, optimizer: .adam(Self.adam)) }
        return try ParameterShard(rank: 0, serverCount: 1, tableConfigs: tables, initialDense: Self.initialDense,
                                  denseOptimizer: .adam(Self.adam), syncWorkers: workers)
    }

    /// Tolerance 1e-6: the shard sums in Float in arrival order, scales by 1/W in Float
    /// and runs Adam's efficient form (α_t, ε_t folded, Float); the reference is exact
    /// algebraically but in Double. Values are O(1), so the rounding gap is a few Float
    /// ulps (≈1e-7); a wrong mean (sum, or /W of one push) moves them by > 1e-3.
    static let tolerance = 1e-6

    @Test(arguments: [2, 3])
    func aSyncStepAppliesTheMeanOfTheWorkersGradientsOnce(workers: Int) throws {
        let shard = try makeShard(workers: workers)
        var rows: [UInt8: [UInt64: ReferenceAdam]] = [:]
        var dense = ReferenceAdam(Self.initialDense)
        for step in 1...4 {
            // Rows are created on pull; the reference starts from the values pulled.
            for w in 0..<workers {
                for (t, _) in Self.dims {
                    let keys = Self.keys(worker: w, table: t, step: step)
                    let pulled = try shard.pullRows(table: t, keys: keys)
                    let dim = Self.dims[t]!
                    for (i, k) in keys.enumerated() where rows[t]?[k] == nil {
                        rows[t, default: [:]][k] = ReferenceAdam(Array(pulled[i * dim ..< (i + 1) * dim]))
                    }
                }
            }
            let before = try snapshot(shard)
            let denseBefore = shard.pullDense()
            // Workers arrive in a different order each step; the last to arrive applies.
            let order = step % 2 == 0 ? Array((0..<workers).reversed()) : Array(0..<workers)
            for (position, w) in order.enumerated() {
                let last = position == workers - 1
                for (t, dim) in Self.dims.sorted(by: { $0.key < $1.key }) {
                    let keys = Self.keys(worker: w, table: t, step: step)
                    let grads = keys.flatMap { k in (0..<dim).map { Self.gradient(worker: w, step: step, key: k, component: $0) } }
                    let applied = try shard.pushRows(table: t, keys: keys, grads: grads, clock: UInt64(step))
                    #expect(applied == last, "push \(position + 1) of \(workers) to table \(t) at step \(step): applied \(applied)")
                }
                let denseGrads = (0..<Self.initialDense.count).map { Self.gradient(worker: w, step: step, key: 77, component: $0) }
                let applied = try shard.pushDense(denseGrads)
                #expect(applied == last)
                if !last {
                    #expect(try snapshot(shard) == before, "rows changed before the step's last push")
                    #expect(shard.pullDense() == denseBefore, "dense changed before the step's last push")
                }
            }
            // The reference: the mean over all W workers, zero for a worker without the key.
            for (t, dim) in Self.dims {
                let pushed = Set((0..<workers).flatMap { Self.keys(worker: $0, table: t, step: step) })
                for k in pushed {
                    var mean = [Double](repeating: 0, count: dim)
                    for w in 0..<workers where Self.keys(worker: w, table: t, step: step).contains(k) {
                        for j in 0..<dim { mean[j] += Double(Self.gradient(worker: w, step: step, key: k, component: j)) }
                    }
                    rows[t]![k]!.step(mean.map { $0 / Double(workers) }, Self.adam)
                }
            }
            var denseMean = [Double](repeating: 0, count: Self.initialDense.count)
            for w in 0..<workers {
                for j in denseMean.indices { denseMean[j] += Double(Self.gradient(worker: w, step: step, key: 77, component: j)) }
            }
            dense.step(denseMean.map { $0 / Double(workers) }, Self.adam)

            for (t, dim) in Self.dims {
                for (k, reference) in rows[t]! {
                    let row = try #require(shard.tables[t]!.row(for: k))
                    #expect(Int(row.step) == reference.t, "key \(k) of table \(t): \(row.step) updates, expected \(reference.t)")
                    let state = reference.w + reference.m + reference.v
                    for j in 0..<(3 * dim) {
                        #expect(abs(Double(row.values[j]) - state[j]) <= Self.tolerance,
                                "table \(t) key \(k) float \(j) at step \(step): \(row.values[j]) vs \(state[j])")
                    }
                }
            }
            for (j, x) in shard.pullDense().enumerated() {
                #expect(abs(Double(x) - dense.w[j]) <= Self.tolerance, "dense \(j) at step \(step): \(x) vs \(dense.w[j])")
            }
        }
    }

    /// Every row of every table: (table, key) → (update count, w | m | v).
    func snapshot(_ shard: ParameterShard) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (id, table) in shard.tables {
            try table.forEachRow(plan: ShardingPlan(serverCount: 1)) { row in
                out["\(id):\(row.key)"] = [Float(row.step)] + Array(row.values)
            }
        }
        return out
    }
}
