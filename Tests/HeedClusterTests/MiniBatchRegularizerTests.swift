import Testing
import HeedCore
import HeedData
import HeedModels
import HeedWorker

@Suite struct MiniBatchRegularizerTests {
    /// Two tables, three keys with different counts, one key the counts do not know.
    private func example() -> (MiniBatchRegularizer, BatchRows) {
        let a = FeatureKey(group: 2, id: 1).rawValue, b = FeatureKey(group: 2, id: 2).rawValue
        let c = FeatureKey(group: 3, id: 9).rawValue, unknown = FeatureKey(group: 3, id: 10).rawValue
        let reg = MiniBatchRegularizer(lambda: 0.5, counts: [a: 1, b: 4, c: 2])
        let rows = BatchRows(tables: [
            2: .init(keys: [a, b], dim: 3, values: [0.5, -1, 2, 0.25, 3, -0.75]),
            3: .init(keys: [c, unknown], dim: 3, values: [1.5, 0.125, -2, 4, 4, 4]),
        ])
        return (reg, rows)
    }

    /// The gradient added is the derivative of the penalty: central differences in Double
    /// over every row value (the penalty is quadratic, so they are exact up to rounding).
    @Test func addedGradientsAreThePenaltysDerivative() {
        let (reg, rows) = example()
        var grads: [UInt8: [Float]] = [2: [Float](repeating: 0, count: 6)]
        reg.addGradients(rows: rows, to: &grads)
        let h: Float = 1.0 / 64
        for (t, table) in rows.tables {
            for j in table.values.indices {
                var plus = rows, minus = rows
                plus.tables[t]!.values[j] += h
                minus.tables[t]!.values[j] -= h
                let numeric = (reg.penalty(rows: plus) - reg.penalty(rows: minus)) / (2 * Double(h))
                #expect(abs(numeric - Double(grads[t]![j])) < 1e-6, "table \(t) value \(j): numeric \(numeric), added \(grads[t]![j])")
            }
        }
        // A rare key is penalised more per occurrence than a frequent one, an unknown not at all.
        #expect(grads[2]![0] == 0.5 * 0.5)            // n = 1
        #expect(grads[2]![3] == 0.5 / 4 * 0.25)       // n = 4
        #expect(grads[3]![3...5].allSatisfy { $0 == 0 })
    }

    /// The term adds to the model's gradients instead of replacing them; λ = 0 changes nothing.
    @Test func itAddsToExistingGradientsAndIsOffAtZero() {
        let (reg, rows) = example()
        var grads: [UInt8: [Float]] = [2: [1, 1, 1, 1, 1, 1], 3: [2, 2, 2, 2, 2, 2]]
        reg.addGradients(rows: rows, to: &grads)
        #expect(grads[2]![0] == 1 + 0.25)
        #expect(grads[3]![0] == 2 + 0.5 / 2 * 1.5)
        var untouched: [UInt8: [Float]] = [2: [1, 1, 1, 1, 1, 1]]
        MiniBatchRegularizer(lambda: 0, counts: reg.counts).addGradients(rows: rows, to: &untouched)
        #expect(untouched == [2: [1, 1, 1, 1, 1, 1]])
    }

    /// Counting over a real prepared dataset: every real key of every batch is counted, the
    /// counts add up to the number of real keys, and tables outside the set are skipped.
    @Test func countsEveryRealKeyOfTheTrainingSamples() throws {
        let (directory, manifest, model, makeBatch) = try ClusterHarness.dinOnBeautySample()
        let plan = BatchPlan(shards: try manifest.open(.train, directory: directory), batchSize: 100)
        let tables = Set(model.tableDims.keys)
        let reg = MiniBatchRegularizer.counting(lambda: 1, plan: plan, tables: tables, makeBatch: makeBatch)
        var realKeys = 0
        for b in plan.batches(epoch: 0, seed: 3) {
            let batch = makeBatch(plan.gather(b))
            for (t, keys) in batch.uniqueKeysByTable() where tables.contains(t) {
                #expect(keys.allSatisfy { (reg.counts[$0] ?? 0) >= 1 })
            }
            realKeys += batch.fields.values.reduce(0) { sum, f in
                sum + zip(f.keys, f.mask).filter { pair in pair.1 != 0 && tables.contains(UInt8(truncatingIfNeeded: pair.0 >> 56)) }.count
            }
        }
        #expect(realKeys > 1000)
        #expect(reg.counts.values.reduce(0) { $0 + Int($1) } == realKeys)
        let one = tables.sorted().first!
        let counted = MiniBatchRegularizer.counting(lambda: 1, plan: plan, tables: [one], makeBatch: makeBatch)
        #expect(counted.counts.keys.allSatisfy { UInt8(truncatingIfNeeded: $0 >> 56) == one })
    }
}
