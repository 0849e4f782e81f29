import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// The behaviour fixture (`BehaviourFixture`: five samples, history length 4, every padding
/// case) widened for the self-attention model: embedding width 4 (2 heads of 2) and two more
/// aligned sequences, event types (table 5) and time gaps (table 6). Padded positions carry
/// real keys that occur nowhere else (event 9, gap 9, items 7 and 8, category 4), pulled too,
/// so an ignored mask shows up as a changed loss or a gradient on those rows.
enum SelfAttentionFixture {
    static let dim = 4
    static let maxLength = 6
    static func key(_ group: UInt8, _ id: UInt64) -> UInt64 { FeatureKey(group: group, id: id).rawValue }

    static let fields = SelfAttentionFields(behaviour: BehaviourFixture.fields,
                                            histEvents: .init(name: "hist_events", table: 5),
                                            histGaps: .init(name: "hist_gaps", table: 6))
    static let paddedOnlyKeys: [UInt8: [UInt64]] = BehaviourFixture.paddedOnlyKeys.merging([5: [key(5, 9)], 6: [key(6, 9)]]) { a, _ in a }

    static func batch() -> ModelBatch {
        var b = BehaviourFixture.batch()
        let mask = b.fields["hist_items"]!.mask
        let n = mask.count
        // Event types cycle 1…3 and gaps 1…5 over the real positions; padding gets id 9.
        let events = (0..<n).map { mask[$0] != 0 ? key(5, UInt64($0 % 3 + 1)) : key(5, 9) }
        let gaps = (0..<n).map { mask[$0] != 0 ? key(6, UInt64($0 % 5 + 1)) : key(6, 9) }
        b.fields["hist_events"] = SparseField(length: BehaviourFixture.length, keys: events, mask: mask)
        b.fields["hist_gaps"] = SparseField(length: BehaviourFixture.length, keys: gaps, mask: mask)
        return b
    }

    /// Every key of the batch (padded ones included), per table, with random rows.
    static func rows(seed: UInt64 = 60) -> [UInt8: TableRows<Double>] {
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
        c.name = "self-attention"
        c.embeddingDim = dim
        c.heads = 2
        c.hidden = [5, 4]
        return c
    }()

    /// A network with every dense parameter random (including the query, which starts at 0).
    static func network<T: Real>(_ pooling: SelfAttentionPooling, _ activation: ActivationKind) -> SelfAttentionModelNetwork<T> {
        var rng = SeededGenerator(seed: 9)
        var net = SelfAttentionModelNetwork<T>(fields: fields, dim: dim, maxLength: maxLength, heads: 2, hidden: config.hidden,
                                               activation: activation, pooling: pooling, positionScale: 0.1, generator: &rng)
        var seed: UInt64 = 300
        net.visitParameters { _, value, _ in
            value = GradientCheck.random(value.shape, seed: seed, scale: 0.7).converted()
            seed += 1
        }
        return net
    }
}

/// Gradient checks of the whole `self-attention` network in Double, its Float wrapper, its
/// attention weights and its construction from a schema.
@Suite struct SelfAttentionModelTests {
    @Test(arguments: SelfAttentionPooling.allCases, [ActivationKind.dice, .prelu])
    func denseAndRowGradientsMatchCentralDifferences(pooling: SelfAttentionPooling, activation: ActivationKind) {
        let batch = SelfAttentionFixture.batch()
        let rows = SelfAttentionFixture.rows()
        let net: SelfAttentionModelNetwork<Double> = SelfAttentionFixture.network(pooling, activation)

        var analytic = net
        let (loss, rowGrads) = analytic.trainStep(batch, rows: rows)
        #expect(loss.isFinite && loss > 0)
        var denseGrads: [(name: String, grad: Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in denseGrads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, value, _ in values.append(value) }
        #expect(denseGrads.contains { $0.name == "query" } == (pooling == .attention))
        #expect(denseGrads.contains { $0.name.hasPrefix("block.attention.") })

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
            if entry.name == "position" {
                // Recency rows 0..<4 are used (the longest history has 4 behaviours), 4 and 5 never.
                let d = SelfAttentionFixture.dim
                #expect(entry.grad.data[(4 * d)...].allSatisfy { $0 == 0 })
                for r in 0..<4 { #expect(entry.grad.data[(r * d)..<((r + 1) * d)].contains { $0 != 0 }, "recency \(r) got no gradient") }
            } else {
                #expect(entry.grad.data.contains { $0 != 0 }, "\(entry.name) got no gradient")
            }
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
            let d = SelfAttentionFixture.dim
            for (i, key) in table.keys.enumerated() {
                let row = grad.data[(i * d)..<((i + 1) * d)]
                if SelfAttentionFixture.paddedOnlyKeys[t]?.contains(key) == true {
                    #expect(row.allSatisfy { $0 == 0 }, "padded key \(FeatureKey(rawValue: key)) got gradient \(Array(row))")
                } else {
                    #expect(row.contains { $0 != 0 }, "real key \(FeatureKey(rawValue: key)) got no gradient")
                }
            }
        }
    }

    @Test(arguments: SelfAttentionPooling.allCases)
    func floatModelStepMatchesDoubleNetwork(pooling: SelfAttentionPooling) {
        let batch = SelfAttentionFixture.batch()
        let rows = SelfAttentionFixture.rows()
        var reference: SelfAttentionModelNetwork<Double> = SelfAttentionFixture.network(pooling, .dice)
        let (refLoss, refRows) = reference.trainStep(batch, rows: rows)
        let refDense = reference.flatGradients()
        let refProbabilities = reference.logits.data.map { sigmoid($0) }

        var model = SelfAttentionModel(config: SelfAttentionFixture.config, fields: SelfAttentionFixture.fields,
                                       maxLength: SelfAttentionFixture.maxLength, activation: .dice, pooling: pooling, seed: 3)
        #expect(model.denseParameterCount == reference.parameterCount)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let out = model.trainStep(batch, rows: SelfAttentionFixture.batchRows(rows))

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
    }

    /// The pooling weights are a softmax over each sample's real behaviours: non-negative,
    /// summing to one, zero at padding (all zero for the fully padded sample 3).
    @Test func attentionWeightsSumToOneOverRealBehaviours() {
        var model = SelfAttentionModel(config: SelfAttentionFixture.config, fields: SelfAttentionFixture.fields,
                                       maxLength: SelfAttentionFixture.maxLength, activation: .prelu, pooling: .attention, seed: 5)
        let reference: SelfAttentionModelNetwork<Double> = SelfAttentionFixture.network(.attention, .prelu)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let batch = SelfAttentionFixture.batch()
        let weights = model.attentionWeights(batch, rows: SelfAttentionFixture.batchRows(SelfAttentionFixture.rows()))
        let mask = batch.fields["hist_items"]!.mask, l = BehaviourFixture.length
        #expect(weights.count == batch.size * l)
        for s in 0..<batch.size {
            let w = weights[(s * l)..<((s + 1) * l)], m = mask[(s * l)..<((s + 1) * l)]
            for (a, real) in zip(w, m) { #expect(real != 0 ? a > 0 : a == 0) }
            let total = w.reduce(0, +)
            #expect(m.contains { $0 != 0 } ? abs(total - 1) < 1e-5 : total == 0, "sample \(s) weights sum to \(total)")
            // Not uniform: the weights depend on the behaviours (else attention = mean pooling).
            if m.filter({ $0 != 0 }).count > 1 { #expect(Set(w.filter { $0 != 0 }).count > 1) }
        }
    }

    static func schema(events: Bool) -> SampleSchema {
        var slots = [FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1),
                     FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1),
                     FeatureSlot(name: "category", group: .category, kind: .single, maxLength: 1),
                     FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 50),
                     FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: 50, alignedWith: "hist_items")]
        if events {
            slots.append(FeatureSlot(name: "hist_events", group: .eventType, kind: .sequence, maxLength: 50, alignedWith: "hist_items"))
            slots.append(FeatureSlot(name: "hist_gaps", group: .timeGap, kind: .sequence, maxLength: 50, alignedWith: "hist_items"))
        }
        return SampleSchema(slots: slots, labels: ["click"], dense: [])
    }

    /// The factory builds the model and its twin from the run config; the twin lacks only the
    /// query; event types and gaps are read when the data has them; bad settings are errors.
    @Test func factoryBuildsTheModelAndItsMeanPoolingTwin() throws {
        var c = ModelConfig()
        c.name = "self-attention"
        let plain = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(events: false), seed: 1)
        #expect(plain.inputFields == ["item", "category", "hist_items", "hist_categories"])
        let taobao = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(events: true), seed: 1)
        #expect(taobao.inputFields == ["item", "category", "hist_items", "hist_categories", "hist_events", "hist_gaps"])
        #expect(taobao.tableDims.count == 4)
        c.pooling = "mean"
        let twin = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(events: false), seed: 1)
        #expect(plain.denseParameterCount - twin.denseParameterCount == c.embeddingDim)
        c.pooling = "max"
        #expect(throws: HeedError.self) { try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(events: false), seed: 1) }
        c.pooling = "attention"
        c.heads = 4
        #expect(throws: HeedError.self) { try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(events: false), seed: 1) }
    }
}
