import Foundation
import HeedCheckpoint
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

/// A checkpoint written by S servers restores onto S' servers: every row (values, Adam m
/// and v, per-row step) and the dense vector with its Adam state come back exactly, and
/// training continues from them exactly as it would have on the original servers.
@Suite struct ShardRestoreTests {
    static let slots = 64
    static let denseCount = 37

    static func tableConfigs() -> [UInt8: EmbeddingTableConfig] {
        [1: EmbeddingTableConfig(name: "item", dim: 4, initializer: .uniform(scale: 0.5), optimizer: .adam(AdamConfig(lr: 0.05)), seed: 3),
         2: EmbeddingTableConfig(name: "category", dim: 8, initializer: .uniform(scale: 0.5), optimizer: .adam(AdamConfig(lr: 0.02)), seed: 4)]
    }

    static func shards(_ count: Int, initialDense: [Float]) throws -> [ParameterShard] {
        try (0..<count).map {
            try ParameterShard(rank: $0, serverCount: count, slotCount: slots, tableConfigs: tableConfigs(), initialDense: initialDense,
                               denseOptimizer: .adam(AdamConfig(lr: 0.01)), tableOptions: EmbeddingTableOptions(stripes: 4, hugePages: false))
        }
    }

    /// Pushes (round-dependent) gradients for `keys` of every table, routed to their owners.
    /// A key's gradient depends on its place in `keys`, not on which server owns it, so
    /// any server count receives the same gradients.
    static func push(_ shards: [ParameterShard], keys: [UInt64], round: Int) throws {
        let plan = ShardingPlan(serverCount: shards.count, slotCount: slots)
        let position = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
        for (id, config) in tableConfigs() {
            for shard in shards {
                let mine = keys.filter { plan.server(of: $0) == shard.rank }
                var grads: [Float] = []
                for i in mine.map({ position[$0]! }) {
                    for j in 0..<config.dim {
                        let n: Int = (i * 7 + j * 3 + round) % 11
                        grads.append(Float(n) / 10 - 0.5)
                    }
                }
                try shard.pushRows(table: id, keys: mine, grads: grads, clock: UInt64(round + 1))
            }
        }
        let dense: [Float] = (0..<denseCount).map { (k: Int) -> Float in Float((k * 5 + round) % 9) / 8 - 0.5 }
        for shard in shards { try shard.pushDense(Array(dense[shard.denseRange])) }
    }

    /// Trains 4 shards so rows have different step counts and the dense state is non-trivial.
    /// Rows are created by pulls (pushes skip keys without a row), as workers do.
    static func trained() throws -> [ParameterShard] {
        let shards = try shards(4, initialDense: (0..<denseCount).map { Float($0) / 10 })
        let keys = (0..<400).map { FeatureKey(group: 1, id: UInt64($0)).rawValue }
        let plan = ShardingPlan(serverCount: shards.count, slotCount: slots)
        for shard in shards {
            for id in tableConfigs().keys { _ = try shard.pullRows(table: id, keys: keys.filter { plan.server(of: $0) == shard.rank }) }
        }
        for round in 0..<5 { try push(shards, keys: Array(keys[(round * 60)...]), round: round) }
        return shards
    }

    /// Every row of every table over all shards: table → key → (step, values).
    static func rows(_ shards: [ParameterShard]) throws -> [UInt8: [UInt64: (UInt32, [Float])]] {
        var out: [UInt8: [UInt64: (UInt32, [Float])]] = [:]
        for shard in shards {
            for (id, table) in shard.tables {
                try table.forEachRow(plan: ShardingPlan(serverCount: 1, slotCount: slots)) { out[id, default: [:]][$0.key] = ($0.step, Array($0.values)) }
            }
        }
        return out
    }

    /// The whole dense vector, each weight with its optimizer state (m, v), and the steps.
    static func dense(_ shards: [ParameterShard]) -> (weights: [Float], state: [[Float]], steps: Set<UInt32>) {
        var weights: [Float] = [], state: [[Float]] = [], steps: Set<UInt32> = []
        for shard in shards {
            let s = shard.denseSnapshot()
            weights += s.weights
            let n = s.weights.count
            for i in 0..<n { state.append(stride(from: i, to: s.state.count, by: max(n, 1)).map { s.state[$0] }) }
            steps.insert(s.step)
        }
        return (weights, state, steps)
    }

    static func equal(_ a: [UInt8: [UInt64: (UInt32, [Float])]], _ b: [UInt8: [UInt64: (UInt32, [Float])]]) -> Bool {
        guard a.keys.sorted() == b.keys.sorted() else { return false }
        for (id, rowsA) in a {
            let rowsB = b[id]!
            guard rowsA.count == rowsB.count else { return false }
            for (key, (step, values)) in rowsA {
                guard let other = rowsB[key], other.0 == step, other.1.map(\.bitPattern) == values.map(\.bitPattern) else { return false }
            }
        }
        return true
    }

    @Test(arguments: [2, 3, 4, 5])
    func restoringOntoAnotherServerCountReproducesEveryRowAndTheDenseState(servers: Int) throws {
        let original = try Self.trained()
        let directory = NSTemporaryDirectory() + "heed-restore-\(getpid())-\(servers)-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileOps.removeTree(directory) }
        let files = try original.map { try ParameterFile.read(path: directory + "/" + $0.save(directory: directory, slotCount: Self.slots).name) }
        #expect(files.allSatisfy { $0.version == ParameterFile.version && $0.denseState.width == 2 })

        // Fresh shards start from other dense values; restore must overwrite all of them.
        let restored = try Self.shards(servers, initialDense: [Float](repeating: 0, count: Self.denseCount))
        let loaded = try restored.map { try $0.restore(from: files, slotCount: Self.slots) }
        let before = try Self.rows(original)
        #expect(before.values.map(\.count) == [400, 400])
        #expect(loaded.reduce(0, +) == before.values.reduce(0) { $0 + $1.count })
        #expect(Self.equal(before, try Self.rows(restored)))
        let plan = ShardingPlan(serverCount: servers, slotCount: Self.slots)
        for shard in restored {
            for table in shard.tables.values {
                try table.forEachRow(plan: plan) { #expect(plan.server(of: $0.key) == shard.rank, "key \($0.key) restored on the wrong server") }
            }
        }
        let (w0, s0, t0) = Self.dense(original), (w1, s1, t1) = Self.dense(restored)
        #expect(w0.map(\.bitPattern) == w1.map(\.bitPattern))
        #expect(s0.map { $0.map(\.bitPattern) } == s1.map { $0.map(\.bitPattern) })
        #expect(t0 == [5] && t1 == [5])

        // One more step on both: identical only if the per-row steps and moments came back.
        let keys = (0..<400).map { FeatureKey(group: 1, id: UInt64($0)).rawValue }
        try Self.push(original, keys: keys, round: 9)
        try Self.push(restored, keys: keys, round: 9)
        #expect(Self.equal(try Self.rows(original), try Self.rows(restored)))
        #expect(Self.dense(original).weights.map(\.bitPattern) == Self.dense(restored).weights.map(\.bitPattern))
    }

    @Test func aVersionOneFileRestoresRowsAndWeightsWithFreshDenseMoments() throws {
        let original = try Self.trained()
        let directory = NSTemporaryDirectory() + "heed-restore-v1-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileOps.removeTree(directory) }
        var files = try original.map { try ParameterFile.read(path: directory + "/" + $0.save(directory: directory, slotCount: Self.slots).name) }
        for i in files.indices { files[i].denseState = .empty }
        let restored = try Self.shards(2, initialDense: [Float](repeating: 0, count: Self.denseCount))
        for shard in restored { try shard.restore(from: files, slotCount: Self.slots) }
        #expect(Self.equal(try Self.rows(original), try Self.rows(restored)))
        #expect(Self.dense(original).weights == Self.dense(restored).weights)
        #expect(Self.dense(restored).steps == [0])
        #expect(Self.dense(restored).state.allSatisfy { $0.allSatisfy { $0 == 0 } })
    }
}
