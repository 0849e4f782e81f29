import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// The behaviour fixture (`BehaviourFixture`: five samples, history length 4, every padding
/// case, D = 3) with purchasing power: price level (table 7), spend level (table 8), income
/// band (table 9) and five dense columns of which the last four are the price columns
/// (`log_hist_len` first, which the model must not read).
enum AttentionPriceFixture {
    static let dim = BehaviourFixture.dim
    static func key(_ group: UInt8, _ id: UInt64) -> UInt64 { FeatureKey(group: group, id: id).rawValue }

    static let priceFields = AttentionPriceFields(
        behaviour: BehaviourFixture.fields, priceLevel: .init(name: "price_level", table: 7),
        spendLevel: .init(name: "spend_level", table: 8), incomeBand: .init(name: "income_band", table: 9),
        denseColumns: [1, 2, 3, 4])
    static let twinFields = AttentionPriceFields(behaviour: BehaviourFixture.fields, priceLevel: nil, spendLevel: nil,
                                                 incomeBand: nil, denseColumns: [])

    static func batch() -> ModelBatch {
        var b = BehaviourFixture.batch()
        func single(_ group: UInt8, _ ids: [UInt64]) -> SparseField {
            SparseField(length: 1, keys: ids.map { key(group, $0) }, mask: [Float](repeating: 1, count: ids.count))
        }
        // Samples share price levels, spend levels and income bands, so rows accumulate
        // gradients; sample 3 (no behaviours: its interest is zero, so under the product fusion
        // its purchasing power gets no gradient) shares each of its keys with another sample.
        b.fields["price_level"] = single(7, [0, 3, 9, 3, 5])
        b.fields["spend_level"] = single(8, [2, 2, 7, 7, 4])
        b.fields["income_band"] = single(9, [FeatureGroup.missingRawID, 2, 1, FeatureGroup.missingRawID, 3])
        var rng = SeededGenerator(seed: 77)
        b.dense = (0..<(b.size * 5)).map { _ in Float(rng.nextUnitDouble() * 2 - 1) }
        b.denseWidth = 5
        return b
    }

    /// Every key of the batch (padded ones included), per table, with random rows.
    static func rows(seed: UInt64 = 70) -> [UInt8: TableRows<Double>] {
        var keys: [UInt8: Set<UInt64>] = [:]
        for field in batch().fields.values {
            for k in field.keys { keys[FeatureKey(rawValue: k).group, default: []].insert(k) }
        }
        var out: [UInt8: TableRows<Double>] = [:]
        for (t, set) in keys {
            let sorted = set.sorted()
            out[t] = TableRows(keys: sorted, values: GradientCheck.random([sorted.count, dim], seed: seed + UInt64(t), scale: 0.8))
        }
        return out
    }

    static func batchRows(_ rows: [UInt8: TableRows<Double>]) -> BatchRows {
        BatchRows(tables: rows.mapValues { BatchRows.Table(keys: $0.keys, dim: dim, values: $0.values.data.map { Float($0) }) })
    }

    static let config: ModelConfig = {
        var c = ModelConfig()
        c.name = "attention-price"
        c.embeddingDim = dim
        c.hidden = [5, 4]
        c.attentionHidden = [4, 3]
        return c
    }()

    /// A network with every dense parameter random (non-zero biases and slopes).
    static func network<T: Real>(_ variant: AttentionPriceVariant, _ activation: ActivationKind,
                                 _ weighting: TargetAttentionWeighting) -> AttentionPriceNetwork<T> {
        var rng = SeededGenerator(seed: 11)
        var net = AttentionPriceNetwork<T>(fields: variant.fields, dim: dim, hidden: config.hidden, attentionHidden: config.attentionHidden,
                                           activation: activation, weighting: weighting, fusion: variant.fusion, generator: &rng)
        var seed: UInt64 = 400
        net.visitParameters { _, value, _ in
            value = GradientCheck.random(value.shape, seed: seed, scale: 0.7).converted()
            seed += 1
        }
        return net
    }
}

/// The model's two fusions and its twin without price features.
enum AttentionPriceVariant: String, CaseIterable, CustomTestStringConvertible {
    case concat, product, noPrice
    var fusion: PriceFusion { self == .product ? .product : .concat }
    var fields: AttentionPriceFields { self == .noPrice ? AttentionPriceFixture.twinFields : AttentionPriceFixture.priceFields }
    var testDescription: String { rawValue }
}

/// Gradient checks of the whole `attention-price` network in Double (both fusions, the twin),
/// its Float wrapper, its construction from a schema and its config errors.
@Suite struct AttentionPriceModelTests {
    @Test(arguments: AttentionPriceVariant.allCases, [(ActivationKind.dice, TargetAttentionWeighting.softmax), (.prelu, .raw)])
    func denseAndRowGradientsMatchCentralDifferences(variant: AttentionPriceVariant, setting: (ActivationKind, TargetAttentionWeighting)) {
        let batch = AttentionPriceFixture.batch()
        var rows = AttentionPriceFixture.rows()
        if variant == .noPrice { for t: UInt8 in [7, 8, 9] { rows[t] = nil } }
        let net: AttentionPriceNetwork<Double> = AttentionPriceFixture.network(variant, setting.0, setting.1)

        var analytic = net
        let (loss, rowGrads) = analytic.trainStep(batch, rows: rows)
        #expect(loss.isFinite && loss > 0)
        var denseGrads: [(name: String, grad: Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in denseGrads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, value, _ in values.append(value) }
        #expect(denseGrads.contains { $0.name == "power.weight" } == (variant == .product))
        #expect(denseGrads.contains { $0.name.hasPrefix("attention.mlp.") })

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

        #expect(Set(rowGrads.keys) == Set(rows.keys))
        for (t, table) in rows {
            guard let grad = rowGrads[t] else { Issue.record("no row gradient for table \(t)"); continue }
            let numeric = GradientCheck.numeric(at: table.values) { probe in
                var n = net
                var probed = rows
                probed[t] = TableRows(keys: table.keys, values: probe)
                return n.loss(batch, rows: probed)
            }
            let bad = GradientCheck.firstMismatch(analytic: grad, numeric: numeric)
            #expect(bad == nil, "table \(t): \(String(describing: bad))")
            let d = AttentionPriceFixture.dim
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

    /// The dense price columns reach the loss (and `log_hist_len`, column 0, does not): changing
    /// a price column changes the loss of a model with price features, not of the twin.
    @Test(arguments: AttentionPriceVariant.allCases)
    func denseColumnsReadAreThePriceColumns(variant: AttentionPriceVariant) {
        var rows = AttentionPriceFixture.rows()
        if variant == .noPrice { for t: UInt8 in [7, 8, 9] { rows[t] = nil } }
        var net: AttentionPriceNetwork<Double> = AttentionPriceFixture.network(variant, .prelu, .softmax)
        let batch = AttentionPriceFixture.batch()
        let reference = net.loss(batch, rows: rows)
        for column in 0..<5 {
            var moved = batch
            for r in 0..<batch.size { moved.dense[r * 5 + column] += 0.5 }
            let changed = net.loss(moved, rows: rows) != reference
            #expect(changed == (variant != .noPrice && column > 0), "column \(column)")
        }
    }

    @Test(arguments: AttentionPriceVariant.allCases)
    func floatModelStepMatchesDoubleNetwork(variant: AttentionPriceVariant) {
        let batch = AttentionPriceFixture.batch()
        var rows = AttentionPriceFixture.rows()
        if variant == .noPrice { for t: UInt8 in [7, 8, 9] { rows[t] = nil } }
        var reference: AttentionPriceNetwork<Double> = AttentionPriceFixture.network(variant, .dice, .softmax)
        let (refLoss, refRows) = reference.trainStep(batch, rows: rows)
        let refDense = reference.flatGradients()
        let refProbabilities = reference.logits.data.map { sigmoid($0) }

        var model = AttentionPriceModel(config: AttentionPriceFixture.config, fields: variant.fields, activation: .dice,
                                        weighting: .softmax, fusion: variant.fusion, seed: 3)
        #expect(model.denseParameterCount == reference.parameterCount)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let out = model.trainStep(batch, rows: AttentionPriceFixture.batchRows(rows))

        func close(_ a: Float, _ b: Double, _ what: String) {
            #expect(abs(Double(a) - b) <= 1e-4 + 1e-3 * abs(b), "\(what): float \(a) vs double \(b)")
        }
        #expect(abs(out.loss - refLoss) < 1e-5)
        for (i, p) in out.predictions.enumerated() { close(p, refProbabilities[i], "prediction \(i)") }
        #expect(out.denseGradient.count == refDense.count)
        for (i, g) in out.denseGradient.enumerated() { close(g, refDense[i], "dense gradient \(i)") }
        #expect(Set(out.rowGradients.keys) == Set(rows.keys))
        for (t, g) in out.rowGradients {
            for (i, v) in g.enumerated() { close(v, refRows[t]!.data[i], "table \(t) row gradient \(i)") }
        }
        let weights = model.attentionWeights(batch, rows: AttentionPriceFixture.batchRows(rows))
        #expect(weights.count == batch.size * BehaviourFixture.length)
    }

    static func schema(prices: Bool, income: Bool) -> SampleSchema {
        var slots = [FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1),
                     FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1),
                     FeatureSlot(name: "category", group: .category, kind: .single, maxLength: 1)]
        if prices {
            slots.append(FeatureSlot(name: "price_level", group: .priceLevel, kind: .single, maxLength: 1))
            slots.append(FeatureSlot(name: "spend_level", group: .spendLevel, kind: .single, maxLength: 1))
        }
        if income { slots.append(FeatureSlot(name: "income_band", group: .incomeBand, kind: .single, maxLength: 1)) }
        slots.append(FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 20))
        slots.append(FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: 20, alignedWith: "hist_items"))
        let dense = prices ? ["log_hist_len", "log_price", "price_pct", "user_price_pct", "price_gap"] : ["log_hist_len"]
        return SampleSchema(slots: slots, labels: ["click", "purchase"], dense: dense)
    }

    /// The factory builds both fusions and the twin from the run config; the income band is
    /// read where the data has it; missing price slots and bad settings are errors naming them.
    @Test func factoryBuildsBothFusionsAndTheTwin() throws {
        var c = ModelConfig()
        c.name = "attention-price"
        let cj = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: true, income: true), seed: 1)
        #expect(cj.inputFields == ["item", "category", "hist_items", "hist_categories", "price_level", "spend_level", "income_band"])
        #expect(cj.tableDims.keys.sorted() == [2, 3, 7, 8, 9])
        let retail = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: true, income: false), seed: 1)
        #expect(retail.inputFields == ["item", "category", "hist_items", "hist_categories", "price_level", "spend_level"])
        c.priceFusion = "product"
        let product = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: true, income: false), seed: 1)
        #expect(product.denseParameterCount != retail.denseParameterCount)
        c.priceFeatures = false
        let twin = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: false, income: false), seed: 1)
        #expect(twin.inputFields == ["item", "category", "hist_items", "hist_categories"])
        #expect(twin.tableDims.keys.sorted() == [2, 3])

        c.priceFeatures = true
        do {
            _ = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: false, income: false), seed: 1)
            Issue.record("built attention-price without price slots")
        } catch let e as HeedError {
            #expect(e.message.contains("attention-price") && e.message.contains("'price_level'"), "\(e.message)")
        }
        c.priceFusion = "sum"
        do {
            _ = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(prices: true, income: false), seed: 1)
            Issue.record("accepted fusion sum")
        } catch let e as HeedError {
            #expect(e.message.contains("price_fusion"), "\(e.message)")
        }
    }

    @Test func runConfigReadsThePriceKeysAndNamesBadValues() throws {
        let c = try RunConfig(toml: TOMLDocument(text: "[model]\nname = \"attention-price\"\nprice_fusion = \"product\"\nprice_features = false",
                                                 source: "p.toml"))
        #expect(c.model.priceFusion == "product" && c.model.priceFeatures == false)
        #expect(RunConfig().model.priceFusion == "concat" && RunConfig().model.priceFeatures)
        do {
            _ = try RunConfig(toml: TOMLDocument(text: "[model]\n\nprice_fusion = \"sum\"", source: "p.toml"))
            Issue.record("accepted price_fusion sum")
        } catch let e as HeedError {
            #expect(e.message.contains("p.toml:3") && e.message.contains("model.price_fusion"), "\(e.message)")
        }
        do {
            _ = try RunConfig(toml: TOMLDocument(text: "[model]\nprice_features = \"no\"", source: "p.toml"))
            Issue.record("accepted a string for price_features")
        } catch let e as HeedError {
            #expect(e.message.contains("p.toml:2") && e.message.contains("model.price_features"), "\(e.message)")
        }
    }
}
