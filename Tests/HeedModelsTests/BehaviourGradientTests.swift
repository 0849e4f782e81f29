import HeedCore
import HeedLayers
import Testing
@testable import HeedModels

/// Model-level central-difference checks in Double: the loss of a whole base/DIN network
/// against every dense parameter and every pulled embedding row, with padded positions
/// whose keys must get exactly zero gradient.
@Suite struct BehaviourGradientTests {
    @Test(arguments: BehaviourVariant.allCases, [ActivationKind.dice, .prelu])
    func denseAndRowGradientsMatchCentralDifferences(variant: BehaviourVariant, activation: ActivationKind) {
        let batch = BehaviourFixture.batch()
        let rows: [UInt8: TableRows<Double>] = BehaviourFixture.rows()
        let net: BehaviourNetwork<Double> = BehaviourFixture.network(variant, activation)

        var analytic = net
        let (loss, rowGrads) = analytic.trainStep(batch, rows: rows)
        #expect(loss.isFinite && loss > 0)
        var denseGrads: [(name: String, grad: Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in denseGrads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, value, _ in values.append(value) }
        #expect(denseGrads.count == values.count && !denseGrads.isEmpty)
        if case .targetAttention = variant.pooling {
            #expect(denseGrads.contains { $0.name.hasPrefix("attention.") })
        }

        for (k, entry) in denseGrads.enumerated() {
            let numeric = GradientCheck.numeric(at: values[k]) { probe in
                var n = net
                var i = 0
                n.visitParameters { _, value, _ in
                    if i == k { value = probe }
                    i += 1
                }
                return n.loss(batch, rows: rows)
            }
            let bad = GradientCheck.firstMismatch(analytic: entry.grad, numeric: numeric)
            #expect(bad == nil, "\(entry.name): \(String(describing: bad))")
            #expect(entry.grad.data.contains { $0 != 0 }, "\(entry.name) got no gradient")
        }

        for (t, table) in rows {
            guard let grad = rowGrads[t] else { Issue.record("no row gradient for table \(t)"); continue }
            #expect(grad.shape == [table.keys.count, BehaviourFixture.dim])
            let numeric = GradientCheck.numeric(at: table.values) { probe in
                var n = net
                var probed = rows
                probed[t] = TableRows(keys: table.keys, values: probe)
                return n.loss(batch, rows: probed)
            }
            let bad = GradientCheck.firstMismatch(analytic: grad, numeric: numeric)
            #expect(bad == nil, "table \(t): \(String(describing: bad))")

            let d = BehaviourFixture.dim
            for (i, key) in table.keys.enumerated() {
                let row = grad.data[(i * d)..<((i + 1) * d)]
                if BehaviourFixture.paddedOnlyKeys[t]?.contains(key) == true {
                    #expect(row.allSatisfy { $0 == 0 }, "padded key \(FeatureKey(rawValue: key)) got gradient \(Array(row))")
                } else {
                    #expect(row.contains { $0 != 0 }, "real key \(FeatureKey(rawValue: key)) got no gradient")
                }
            }
        }
    }

    @Test(arguments: BehaviourVariant.allCases)
    func floatModelStepMatchesDoubleNetwork(variant: BehaviourVariant) {
        let batch = BehaviourFixture.batch()
        let rows: [UInt8: TableRows<Double>] = BehaviourFixture.rows()
        var reference: BehaviourNetwork<Double> = BehaviourFixture.network(variant, .dice)
        let (refLoss, refRows) = reference.trainStep(batch, rows: rows)
        let refDense = reference.flatGradients()
        let refProbabilities = reference.logits.data.map { sigmoid($0) }

        var model: any StatefulRecommender = {
            let c = BehaviourFixture.config, f = BehaviourFixture.fields
            switch variant.pooling {
            case .pooled(let mode): return BaseModel(config: c, fields: f, activation: .dice, pooling: mode, seed: 3)
            case .targetAttention(let w): return DINModel(config: c, fields: f, activation: .dice, weighting: w, seed: 3)
            }
        }()
        #expect(model.denseParameterCount == reference.parameterCount)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        #expect(model.denseParameters() == reference.flatParameters().map { Float($0) })
        let out = model.trainStep(batch, rows: BehaviourFixture.batchRows(rows))

        func close(_ a: Float, _ b: Double, _ what: String) {
            #expect(abs(Double(a) - b) <= 1e-4 + 1e-3 * abs(b), "\(what): float \(a) vs double \(b)")
        }
        #expect(abs(out.loss - refLoss) < 1e-5)
        for (i, p) in out.predictions.enumerated() { close(p, refProbabilities[i], "prediction \(i)") }
        #expect(out.denseGradient.count == refDense.count)
        for (i, g) in out.denseGradient.enumerated() { close(g, refDense[i], "dense gradient \(i)") }
        #expect(Set(out.rowGradients.keys) == Set(rows.keys))
        for (t, g) in out.rowGradients {
            #expect(g.count == refRows[t]!.count)
            for (i, v) in g.enumerated() { close(v, refRows[t]!.data[i], "table \(t) row gradient \(i)") }
        }
    }

    @Test func dinAttentionWeightsAreZeroAtPaddingAndPerBehaviour() {
        var model = DINModel(config: BehaviourFixture.config, fields: BehaviourFixture.fields, activation: .dice, weighting: .raw, seed: 5)
        let batch = BehaviourFixture.batch()
        let rows = BehaviourFixture.batchRows(BehaviourFixture.rows())
        let weights = model.attentionWeights(batch, rows: rows)
        let mask = batch.fields["hist_items"]!.mask
        #expect(weights.count == batch.size * BehaviourFixture.length)
        for i in weights.indices {
            if mask[i] == 0 { #expect(weights[i] == 0) } else { #expect(weights[i] != 0) }
        }
        // Inference uses the same weights as the pooled output: predictions are reproducible.
        #expect(model.predict(batch, rows: rows) == model.predict(batch, rows: rows))
    }
}
