import Foundation
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

/// A small Adam table for tests.
func makeTable(dim: Int = 4, stripes: Int = 4, lr: Float = 0.1, minCount: Int = 1, ttl: UInt32? = nil,
               maxRows: Int? = nil, seed: UInt64 = 99, initializer: RowInitializer = .uniform(scale: 0.5)) throws -> EmbeddingTable {
    let config = EmbeddingTableConfig(name: "item", dim: dim, initializer: initializer,
                                      optimizer: .adam(AdamConfig(lr: lr)), admissionMinCount: minCount,
                                      evictionTTL: ttl, maxRows: maxRows, seed: seed)
    return try EmbeddingTable(config: config, options: EmbeddingTableOptions(stripes: stripes, hugePages: false, admissionSketchWidth: 1 << 12))
}

/// Keys of real-looking shape: group 1, hashed ids.
func itemKeys(_ ids: Range<Int>) -> [UInt64] { ids.map { FeatureKey(group: 1, id: UInt64($0)).rawValue } }

/// Every row as (key, step, values), in export order.
func dump(_ table: EmbeddingTable, plan: ShardingPlan = ShardingPlan(serverCount: 1, slotCount: 64)) throws -> [(UInt64, UInt32, [Float])] {
    var rows: [(UInt64, UInt32, [Float])] = []
    try table.forEachRow(plan: plan) { rows.append(($0.key, $0.step, Array($0.values))) }
    return rows
}

/// Rows that differ in key, step or any value bit (plus the length difference); 0 when equal.
func differingRows(_ a: [(UInt64, UInt32, [Float])], _ b: [(UInt64, UInt32, [Float])]) -> Int {
    zip(a, b).filter { $0.0 != $1.0 || $0.1 != $1.1 || $0.2 != $1.2 }.count + abs(a.count - b.count)
}

@Suite struct EmbeddingTableTests {
    // The initial row depends only on (key, seed): not on stripes, pull order or batch shape.
    @Test func initialRowsDependOnlyOnKeyAndSeed() throws {
        let keys = itemKeys(0..<500)
        let a = try makeTable(stripes: 1), b = try makeTable(stripes: 16), c = try makeTable(seed: 100)
        let pa = a.pull(keys, step: 1)
        var pb = [Float]()
        for k in keys.reversed() { pb = b.pull([k], step: 1) + pb }
        #expect(pa == pb)
        #expect(pa != c.pull(keys, step: 1))
        #expect(pa.allSatisfy { $0 >= -0.5 && $0 < 0.5 })
        #expect(Set(pa).count > pa.count * 9 / 10)
        // Pulling again returns the same rows and creates nothing new.
        #expect(a.pull(keys, step: 2) == pa)
        #expect(a.stats().created == 500 && a.rowCount == 500)
    }

    @Test(arguments: [RowInitializer.Kind.normal, .truncatedNormal])
    func normalInitializersHaveTheRequestedScale(kind: RowInitializer.Kind) throws {
        let t = try makeTable(dim: 16, initializer: RowInitializer(kind: kind, scale: 0.2))
        let v = t.pull(itemKeys(0..<2_000), step: 0).map(Double.init)
        let mean = v.reduce(0, +) / Double(v.count)
        let sd = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
        #expect(abs(mean) < 0.005)
        // A normal cut at ±2σ keeps 0.880 of the standard deviation.
        #expect(abs(sd - (kind == .normal ? 0.2 : 0.2 * 0.880)) < 0.005)
        if kind == .truncatedNormal { #expect(v.allSatisfy { abs($0) <= 0.4 + 1e-6 }) }
    }

    // Lazy Adam on rows (Kingma & Ba 2015, Alg. 1): a row's first update moves each weight
    // by lr·sign(g); rows without a gradient keep their weights and step count 0.
    @Test func pushAppliesLazyAdamPerRow() throws {
        let t = try makeTable(lr: 0.1)
        let keys = itemKeys(0..<6)
        let w0 = t.pull(keys, step: 1)
        t.push([keys[1], keys[4]], grads: [1, -1, 0.5, 0, 2, 2, -3, -0.1], step: 2)
        let w1 = t.pull(keys, step: 3)
        let expected1: [Float] = [-0.1, 0.1, -0.1, 0], expected4: [Float] = [-0.1, -0.1, 0.1, 0.1]
        for j in 0..<4 {
            #expect(abs(w1[4 + j] - (w0[4 + j] + expected1[j])) < 1e-6)
            #expect(abs(w1[16 + j] - (w0[16 + j] + expected4[j])) < 1e-6)
        }
        for r in [0, 2, 3, 5] {
            #expect(Array(w1[r * 4..<(r + 1) * 4]) == Array(w0[r * 4..<(r + 1) * 4]))
            #expect(t.row(for: keys[r])!.step == 0)
        }
        let row1 = try #require(t.row(for: keys[1]))
        #expect(row1.step == 1 && row1.lastTouched == 3)
        // [w | m | v]: m = 0.1 g, v = 0.001 g² (Float rounding of 1 − β₂ allowed for).
        for (j, g) in [Float(1), -1, 0.5, 0].enumerated() {
            #expect(abs(row1.values[4 + j] - 0.1 * g) < 1e-7)
            #expect(abs(row1.values[8 + j] - 0.001 * g * g) < 1e-7)
        }
    }

    // A second push uses the row's own t = 2 for bias correction even if other rows are new.
    @Test func secondPushUsesTheRowsOwnStepCount() throws {
        let t = try makeTable(dim: 1, lr: 0.1)
        let a = itemKeys(0..<1)[0], b = itemKeys(1..<2)[0]
        let wa = t.pull([a], step: 0)[0], wb = t.pull([b], step: 0)[0]
        t.push([a], grads: [0.5], step: 1)
        t.push([a, b], grads: [0.25, 2], step: 2)
        // Two-step numbers from DenseOptimizerTests (w₀ column): Δ = −0.1 − 0.093218.
        #expect(abs(t.pull([a], step: 3)[0] - (wa - 0.1 - 0.093217960)) < 1e-6)
        #expect(abs(t.pull([b], step: 3)[0] - (wb - 0.1)) < 1e-6)
        #expect(t.row(for: a)!.step == 2 && t.row(for: b)!.step == 1)
    }

    @Test func gradientsForKeysWithoutRowsAreDroppedAndCounted() throws {
        let t = try makeTable()
        t.push(itemKeys(0..<3), grads: [Float](repeating: 1, count: 12), step: 1)
        let s = t.stats()
        #expect(s.rows == 0 && s.droppedGradients == 3 && s.updates == 0)
    }

    // Admission: with N = 3, the first two pulls of a key read zeros and create nothing;
    // the third creates the row with its key-seeded initial weights.
    @Test func keysNeedMinCountPullsBeforeTheyGetRows() throws {
        let gated = try makeTable(minCount: 3), open = try makeTable()
        let keys = itemKeys(0..<50)
        for _ in 0..<2 {
            #expect(gated.pull(keys, step: 1).allSatisfy { $0 == 0 })
            #expect(gated.rowCount == 0)
        }
        #expect(gated.pull(keys, step: 1) == open.pull(keys, step: 1))
        let s = gated.stats()
        #expect(s.rows == 50 && s.unadmittedReads == 100 && s.created == 50)
    }

    @Test func maxRowsBoundsGrowthAndExcessKeysReadAsZeros() throws {
        let t = try makeTable(maxRows: 10)
        let v = t.pull(itemKeys(0..<25), step: 0)
        #expect(t.rowCount == 10 && t.stats().rejectedFull == 15)
        #expect(v.filter { $0 != 0 }.count == 40)
    }

    // Eviction: rows untouched for ≥ TTL steps go; a later pull recreates them fresh
    // (same initial weights, step 0), reusing the freed memory.
    @Test func evictRemovesStaleRowsAndFreedRowsAreReused() throws {
        let t = try makeTable(ttl: 10)
        let old = itemKeys(0..<100), recent = itemKeys(100..<200)
        let fresh = t.pull(old, step: 0)
        _ = t.pull(recent, step: 5)
        t.push(old, grads: [Float](repeating: 1, count: 400), step: 1)
        let bytes = t.residentBytes
        #expect(t.evict(currentStep: 10) == 0)
        #expect(t.evict(currentStep: 11) == 100)
        #expect(t.rowCount == 100 && t.row(for: old[0]) == nil && t.row(for: recent[0]) != nil)
        #expect(t.pull(old, step: 12) == fresh)
        #expect(t.row(for: old[3])!.step == 0)
        #expect(t.residentBytes == bytes)
        #expect(t.stats().evicted == 100 && t.stats().created == 300)
    }

    // A large sweep: rows last touched at random steps, evict about half; every survivor is
    // still found with its values (backward-shift deletion kept the probe runs intact).
    @Test func largeEvictionKeepsSurvivorsIntact() throws {
        let t = try makeTable(stripes: 2, ttl: 50)
        let keys = itemKeys(0..<20_000)
        var rng = SeededGenerator(seed: 8)
        let touched = keys.map { _ in UInt32(rng.next() % 100) }
        for (k, step) in zip(keys, touched) { _ = t.pull([k], step: step) }
        let before = t.pull(keys, step: 0)
        let removed = t.evict(currentStep: 100)
        #expect(removed == touched.filter { $0 <= 50 }.count)
        for (i, k) in keys.enumerated() {
            let row = t.row(for: k)
            if touched[i] <= 50 {
                #expect(row == nil)
            } else {
                #expect(row != nil && Array(row!.weights) == Array(before[i * 4..<(i + 1) * 4]))
            }
        }
        #expect(t.rowCount == keys.count - removed)
    }

    @Test func noTTLMeansNoEviction() throws {
        let t = try makeTable()
        _ = t.pull(itemKeys(0..<10), step: 0)
        #expect(t.evict(currentStep: .max) == 0 && t.rowCount == 10)
    }

    // Memory: rows cost the record stride plus index slots; at dim 64 the overhead over
    // the raw bytes (key + w,m,v + step) stays well under 30%.
    @Test func residentBytesStayCloseToRawBytes() throws {
        let t = try makeTable(dim: 64, stripes: 1)
        let n = 200_000
        let keys = itemKeys(0..<n)
        keys.withUnsafeBufferPointer { k in
            var out = [Float](repeating: 0, count: 1000 * 64)
            for start in stride(from: 0, to: n, by: 1000) {
                out.withUnsafeMutableBufferPointer { o in
                    t.pull(keys: UnsafeBufferPointer(rebasing: k[start..<start + 1000]), into: o, step: 0)
                }
            }
        }
        let s = t.stats()
        #expect(s.rows == n)
        #expect(t.rawBytesPerRow == 8 + 12 * 64 + 4)
        let ratio = Double(s.residentBytes) / Double(n * t.rawBytesPerRow)
        #expect(ratio > 1.0 && ratio < 1.3, "resident/raw = \(ratio)")
    }

    @Test func invalidConfigsAreRejected() {
        #expect(throws: HeedError.self) { try EmbeddingTable(config: EmbeddingTableConfig(name: "x", dim: 0)) }
        #expect(throws: HeedError.self) { try EmbeddingTable(config: EmbeddingTableConfig(name: "x", dim: 4, admissionMinCount: 0)) }
        #expect(throws: HeedError.self) { try EmbeddingTable(config: EmbeddingTableConfig(name: "x", dim: 4, evictionTTL: 0)) }
        #expect(throws: HeedError.self) {
            try EmbeddingTable(config: EmbeddingTableConfig(name: "x", dim: 4, optimizer: .adam(AdamConfig(lr: -1))))
        }
        #expect(throws: HeedError.self) {
            try EmbeddingTable(config: EmbeddingTableConfig(name: "x", dim: 4), options: EmbeddingTableOptions(stripes: 3))
        }
    }

    // SGD tables store [w] only; Adagrad [w | acc] starting at the initial accumulator.
    @Test func rowLayoutFollowsTheOptimizer() throws {
        let sgd = try EmbeddingTable(config: EmbeddingTableConfig(name: "s", dim: 3, initializer: .zeros, optimizer: .sgd(SGDConfig(lr: 0.5))))
        #expect(sgd.width == 3 && sgd.rawBytesPerRow == 8 + 12 + 4)
        let k = itemKeys(0..<1)
        _ = sgd.pull(k, step: 0)
        sgd.push(k, grads: [1, -2, 0], step: 1)
        #expect(sgd.pull(k, step: 1) == [-0.5, 1, 0])
        let ada = try EmbeddingTable(config: EmbeddingTableConfig(
            name: "a", dim: 2, initializer: .zeros, optimizer: .adagrad(AdagradConfig(lr: 0.1, initialAccumulator: 0.1))))
        _ = ada.pull(k, step: 0)
        #expect(ada.row(for: k[0])!.values == [0, 0, 0.1, 0.1])
    }
}

@Suite struct EmbeddingTableConfigTests {
    @Test func decodesWithDefaultsAndRoundTrips() throws {
        let json = Data(#"{"name": "item", "dim": 18, "optimizer": {"kind": "adagrad", "lr": 0.05}, "evictionTTL": 1000}"#.utf8)
        let c = try JSONDecoder().decode(EmbeddingTableConfig.self, from: json)
        #expect(c == EmbeddingTableConfig(name: "item", dim: 18, optimizer: .adagrad(AdagradConfig(lr: 0.05)), evictionTTL: 1000))
        #expect(c.initializer == .uniform(scale: 0.01) && c.admissionMinCount == 1 && c.maxRows == nil && c.seed == 0)
        let full = EmbeddingTableConfig(name: "cat", dim: 8, initializer: .normal(scale: 0.1),
                                        optimizer: .adam(AdamConfig(lr: 0.002, weightDecay: 0.01)),
                                        admissionMinCount: 5, evictionTTL: 50, maxRows: 1_000_000, seed: 7)
        #expect(try JSONDecoder().decode(EmbeddingTableConfig.self, from: JSONEncoder().encode(full)) == full)
    }
}
