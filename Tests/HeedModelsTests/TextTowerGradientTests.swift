import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// The `text-tower` network in Double: central-difference checks of the projection layer
/// and of the whole tower (every dense parameter, every pulled id row and text row), the
/// Float model against the Double network, the derived text keys, and frozen text rows.
@Suite struct TextTowerGradientTests {
    static let textDim = 5
    static let textTable = FeatureGroup.itemText.rawValue

    /// The behaviour fixture's fields with or without user and category.
    static func fields(withCategory: Bool, withUser: Bool) -> BehaviourFields {
        let f = BehaviourFixture.fields
        return BehaviourFields(user: withUser ? f.user : nil, item: f.item, category: withCategory ? f.category : nil,
                               histItems: f.histItems, histCategories: withCategory ? f.histCategories : nil)
    }

    /// The behaviour fixture's batch (padded positions carry real keys) with the text fields.
    static func batch(_ fields: BehaviourFields) -> ModelBatch {
        var b = BehaviourFixture.batch()
        TextTowerNetwork<Double>.deriveTextFields(&b, fields: fields, table: textTable)
        return b
    }

    /// Random rows for every key of the batch's read fields, padded keys included.
    static func rows(_ fields: BehaviourFields) -> [UInt8: TableRows<Double>] {
        var rows: [UInt8: TableRows<Double>] = BehaviourFixture.rows()
        rows = rows.filter { fields.tables.contains($0.key) }
        let b = batch(fields)
        let keys = Set(b.fields["item_text"]!.keys + b.fields["hist_item_text"]!.keys).sorted()
        rows[textTable] = TableRows(keys: keys, values: GradientCheck.random([keys.count, textDim], seed: 77, scale: 0.6))
        return rows
    }

    static func network(_ fields: BehaviourFields, _ activation: ActivationKind, _ pooling: PoolingMode) -> TextTowerNetwork<Double> {
        var rng = SeededGenerator(seed: 9)
        var net = TextTowerNetwork<Double>(fields: fields, textTable: textTable, dim: BehaviourFixture.dim, textDim: textDim,
                                           hidden: [5, 4], activation: activation, pooling: pooling, generator: &rng)
        var seed: UInt64 = 300
        net.visitParameters { _, value, _ in
            value = GradientCheck.random(value.shape, seed: seed, scale: 0.7)
            seed += 1
        }
        return net
    }

    @Test func projectionGradientsMatchCentralDifferences() {
        var rng = SeededGenerator(seed: 1)
        var layer = TextProjection<Double>(inputWidth: 6, outputWidth: 4, generator: &rng)
        layer.bias = GradientCheck.random([4], seed: 2)
        let x = GradientCheck.random([7, 6], seed: 3)
        let probe = GradientCheck.random([7, 4], seed: 4)
        func loss(_ l: TextProjection<Double>, _ input: Tensor<Double>) -> Double {
            var out = Tensor<Double>.empty
            l.forward(&out, input)
            return GradientCheck.weightedSum(out, probe)
        }
        var dx = Tensor<Double>(zeros: [7, 6])
        layer.backward(&dx, probe, x)
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x) { loss(layer, $0) }) == nil)
        let dW = GradientCheck.numeric(at: layer.weight) { w in var l = layer; l.weight = w; return loss(l, x) }
        #expect(GradientCheck.firstMismatch(analytic: layer.dWeight, numeric: dW) == nil)
        let db = GradientCheck.numeric(at: layer.bias) { b in var l = layer; l.bias = b; return loss(l, x) }
        #expect(GradientCheck.firstMismatch(analytic: layer.dBias, numeric: db) == nil)
        // Backward accumulates: a second call doubles the gradients.
        let once = layer.dWeight
        var dx2 = Tensor<Double>.empty
        layer.backward(&dx2, probe, x)
        #expect(zip(layer.dWeight.data, once.data).allSatisfy { abs($0 - 2 * $1) < 1e-12 })
    }

    @Test(arguments: [(true, true, PoolingMode.sum), (true, false, .mean), (false, false, .sum), (false, true, .mean)],
          [ActivationKind.dice, .prelu])
    func towerGradientsMatchCentralDifferences(shape: (category: Bool, user: Bool, pooling: PoolingMode), activation: ActivationKind) {
        let fields = Self.fields(withCategory: shape.category, withUser: shape.user)
        let batch = Self.batch(fields)
        let rows = Self.rows(fields)
        let net = Self.network(fields, activation, shape.pooling)
        #expect(Set(net.tableDims.keys) == Set(rows.keys))

        var analytic = net
        let (loss, rowGrads) = analytic.trainStep(batch, rows: rows)
        #expect(loss.isFinite && loss > 0)
        var denseGrads: [(name: String, grad: Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in denseGrads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, value, _ in values.append(value) }
        #expect(denseGrads.first?.name == "projection.weight" && denseGrads[1].name == "projection.bias")

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
            // A PReLU slope whose inputs are all positive in this small batch rightly gets none.
            if !entry.name.hasSuffix(".alpha") {
                #expect(entry.grad.data.contains { $0 != 0 }, "\(entry.name) got no gradient")
            }
        }

        for (t, table) in rows {
            guard let grad = rowGrads[t] else { Issue.record("no row gradient for table \(t)"); continue }
            let width = t == Self.textTable ? Self.textDim : BehaviourFixture.dim
            #expect(grad.shape == [table.keys.count, width])
            let numeric = GradientCheck.numeric(at: table.values) { probe in
                var n = net
                var probed = rows
                probed[t] = TableRows(keys: table.keys, values: probe)
                return n.loss(batch, rows: probed)
            }
            let bad = GradientCheck.firstMismatch(analytic: grad, numeric: numeric)
            #expect(bad == nil, "table \(t): \(String(describing: bad))")
            // Items 7 and 8 occur only at padded positions: their id and text rows get nothing.
            for (i, key) in table.keys.enumerated() {
                let row = grad.data[(i * width)..<((i + 1) * width)]
                let id = key & FeatureKey.hashMask
                let paddedOnly = (t == 2 || t == Self.textTable) && [7, 8].map { FeatureKey(group: 2, id: $0).rawValue & FeatureKey.hashMask }.contains(id)
                    || t == 3 && key == BehaviourFixture.key(3, 4)
                if paddedOnly {
                    #expect(row.allSatisfy { $0 == 0 }, "padded key \(FeatureKey(rawValue: key)) got gradient")
                } else {
                    #expect(row.contains { $0 != 0 }, "real key \(FeatureKey(rawValue: key)) got no gradient")
                }
            }
        }
    }

    /// The derived text keys are the item keys with group 12, at the same positions and masks.
    @Test func textKeysAreTheItemKeysInTheTextGroup() {
        let fields = Self.fields(withCategory: true, withUser: false)
        let b = Self.batch(fields)
        for (itemField, textField) in [("item", "item_text"), ("hist_items", "hist_item_text")] {
            let items = b.fields[itemField]!, texts = b.fields[textField]!
            #expect(items.mask == texts.mask && items.length == texts.length)
            for (k, t) in zip(items.keys, texts.keys) {
                #expect(FeatureKey(rawValue: t).group == 12)
                #expect(t & FeatureKey.hashMask == k & FeatureKey.hashMask)
            }
        }
        // The same key a vectors file's raw id gives (ParameterShard.loadInitialRows).
        #expect(b.fields["item_text"]!.keys[0] == FeatureKey(group: 12, id: 1).rawValue)
    }

    /// The Float model (what workers run) agrees with the Double network, and with
    /// `freeze_text` returns no gradient for the text table while everything else is equal.
    @Test(arguments: [false, true])
    func floatModelMatchesDoubleNetworkAndFreezes(frozen: Bool) {
        let fields = Self.fields(withCategory: true, withUser: true)
        let batch = Self.batch(fields)
        let rows = Self.rows(fields)
        var reference = Self.network(fields, .dice, .sum)
        let (refLoss, refRows) = reference.trainStep(batch, rows: rows)
        let refDense = reference.flatGradients()

        var config = BehaviourFixture.config
        config.textDim = Self.textDim
        config.hidden = [5, 4]
        config.freezeText = frozen
        var model = TextTowerModel(config: config, fields: fields, activation: .dice, pooling: .sum, seed: 3)
        #expect(model.denseParameterCount == reference.parameterCount)
        #expect(model.frozenTables == (frozen ? [12] : []))
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let floatRows = BatchRows(tables: rows.mapValues {
            BatchRows.Table(keys: $0.keys, dim: $0.values.lastDim, values: $0.values.data.map { Float($0) })
        })
        let out = model.trainStep(batch, rows: floatRows)
        func close(_ a: Float, _ b: Double, _ what: String) {
            #expect(abs(Double(a) - b) <= 1e-4 + 1e-3 * abs(b), "\(what): float \(a) vs double \(b)")
        }
        #expect(abs(out.loss - refLoss) < 1e-5)
        for (i, g) in out.denseGradient.enumerated() { close(g, refDense[i], "dense gradient \(i)") }
        #expect(Set(out.rowGradients.keys) == Set(rows.keys).subtracting(frozen ? [Self.textTable] : []))
        for (t, g) in out.rowGradients {
            for (i, v) in g.enumerated() { close(v, refRows[t]!.data[i], "table \(t) row gradient \(i)") }
        }
        #expect(model.predict(batch, rows: floatRows) == model.predict(batch, rows: floatRows))
    }
}
