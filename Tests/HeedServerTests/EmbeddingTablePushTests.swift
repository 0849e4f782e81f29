import HeedCore
@testable import HeedOptim
import Testing
@testable import HeedServer

/// The table's batched push (two passes, C row kernel, slow path past the tabulated Adam
/// steps) against `RowOptimizer.update` applied row by row: equal to the bit.
@Suite struct EmbeddingTablePushTests {
    static let optimizers: [OptimizerSettings] = [
        .adam(AdamConfig(lr: 0.01)),
        .adam(AdamConfig(lr: 0.01, weightDecay: 0.1)),
        .adagrad(AdagradConfig(lr: 0.05, initialAccumulator: 0.1)),
        .sgd(SGDConfig(lr: 0.1)),
        .sgd(SGDConfig(lr: 0.1, momentum: 0.9)),
    ]

    // Dims 64 (whole vectors in every instruction set) and 7 (scalar tails); batches with a
    // key given twice and keys spread over several stripes.
    @Test(arguments: optimizers, [7, 64])
    func pushEqualsRowByRowUpdates(optimizer: OptimizerSettings, dim: Int) throws {
        let config = EmbeddingTableConfig(name: "item", dim: dim, optimizer: optimizer, seed: 3)
        let table = try EmbeddingTable(config: config, options: EmbeddingTableOptions(stripes: 4, hugePages: false))
        let keys = itemKeys(0..<300)
        _ = table.pull(keys, step: 0)
        let reference = RowOptimizer(config: optimizer, dim: dim)
        let width = reference.width
        var rows = [Float](), steps = [UInt32](repeating: 0, count: keys.count)
        for k in keys { rows += table.row(for: k)!.values }

        var rng = SeededGenerator(seed: 11)
        for step in 1...20 {
            // 400 positions: every key at least once, some twice, in a shuffled order.
            var picks = Array(0..<keys.count) + (0..<100).map { _ in Int(rng.next() % UInt64(keys.count)) }
            picks.shuffle(using: &rng)
            let grads = (0..<picks.count * dim).map { _ in Float(rng.nextGaussian()) * 0.1 }
            table.push(picks.map { keys[$0] }, grads: grads, step: UInt32(step))
            referenceUpdate(reference, &rows, &steps, picks, grads)
        }
        for (i, k) in keys.enumerated() {
            let row = try #require(table.row(for: k))
            #expect(row.step == steps[i])
            #expect(row.values.map(\.bitPattern) == rows[i * width..<(i + 1) * width].map(\.bitPattern))
        }
    }

    /// A row past the tabulated Adam steps gets the same result as the reference row by row,
    /// and the rest of the batch carries on in the kernel. β2 = 0.99 settles within the table (later steps reuse its last entry in C);
    /// β2 = 0.99999 does not (later steps take the computed Swift path).
    @Test(arguments: [Float(0.99), 0.99999])
    func adamPastTheTabulatedStepsMatchesTheReference(beta2: Float) throws {
        let dim = 16
        let optimizer = OptimizerSettings.adam(AdamConfig(lr: 0.01, beta2: beta2))
        let config = EmbeddingTableConfig(name: "item", dim: dim, optimizer: optimizer, seed: 5)
        let table = try EmbeddingTable(config: config, options: EmbeddingTableOptions(stripes: 1, hugePages: false))
        let keys = itemKeys(0..<3)
        _ = table.pull(keys, step: 0)
        let reference = RowOptimizer(config: optimizer, dim: dim)
        var rows = [Float](), steps = [UInt32](repeating: 0, count: keys.count)
        for k in keys { rows += table.row(for: k)!.values }
        #expect(reference.adamStepsAreFinal == (beta2 == 0.99))
        let tableEnd = reference.adamSteps.count
        // Key 0 every push, key 1 every other push, key 2 once: key 0 crosses the table's end.
        var rng = SeededGenerator(seed: 2)
        for step in 1...(tableEnd + 10) {
            let picks = step % 2 == 0 ? [0, 1, 0] : (step == 7 ? [2, 0] : [0])
            let grads = (0..<picks.count * dim).map { _ in Float(rng.nextGaussian()) * 0.1 }
            table.push(picks.map { keys[$0] }, grads: grads, step: UInt32(step))
            referenceUpdate(reference, &rows, &steps, picks, grads)
        }
        #expect(steps[0] > UInt32(tableEnd))
        for (i, k) in keys.enumerated() {
            let row = try #require(table.row(for: k))
            #expect(row.step == steps[i])
            #expect(row.values.map(\.bitPattern) == rows[i * 3 * dim..<(i + 1) * 3 * dim].map(\.bitPattern))
        }
    }

    // Records of dim-64 Adam rows start on cache lines; small records stay packed.
    @Test func recordStrides() {
        #expect(EmbeddingTable.recordStride(floats: 3 * 64) == 832)
        #expect(EmbeddingTable.recordStride(floats: 3 * 4) == 64)
        #expect(EmbeddingTable.recordStride(floats: 3 * 18) == 256)
        #expect(EmbeddingTable.recordStride(floats: 2 * 10) == 96)
    }
}

/// `RowOptimizer.update(rows:steps:indices:grads:)` on arrays: the row-by-row reference.
private func referenceUpdate(_ optimizer: RowOptimizer, _ rows: inout [Float], _ steps: inout [UInt32],
                             _ indices: [Int], _ grads: [Float]) {
    rows.withUnsafeMutableBufferPointer { r in
        steps.withUnsafeMutableBufferPointer { s in
            indices.withUnsafeBufferPointer { i in
                grads.withUnsafeBufferPointer { g in optimizer.update(rows: r, steps: s, indices: i, grads: g) }
            }
        }
    }
}
