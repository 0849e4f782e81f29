import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// Which of the model's optional inputs a test builds it with.
enum LongTermInterestVariant: String, CaseIterable, CustomTestStringConvertible {
    case full, noNeighbors, noTags
    var testDescription: String { rawValue }
}

/// The behaviour fixture (`BehaviourFixture`: five samples, history length 4, every padding
/// case) widened for the `long-term-interest` model: embedding width 4 (2 heads of 2), social
/// neighbours (user table 1, up to 3) and attribute tags (table 4, up to 2). Padded positions
/// carry real keys that occur nowhere else (user 9, attribute 9, items 7 and 8, category 4),
/// pulled too, so an ignored mask shows up as a changed loss or a gradient on those rows.
/// Sample 2 has no neighbours and no tags; sample 3 no behaviours; users 1–3 are also
/// neighbours (one table, shared rows).
enum LongTermInterestFixture {
    static let dim = 4
    static let maxLength = 6
    static func key(_ group: UInt8, _ id: UInt64) -> UInt64 { FeatureKey(group: group, id: id).rawValue }

    /// (id, real?) per position.
    static let neighbors: [[(UInt64, Bool)]] = [
        [(2, true), (3, true), (9, false)], [(1, true), (9, false), (9, false)], [(9, false), (9, false), (9, false)],
        [(1, true), (2, true), (3, true)], [(3, true), (9, false), (9, false)],
    ]
    static let attributes: [[(UInt64, Bool)]] = [
        [(1, true), (2, true)], [(3, true), (9, false)], [(9, false), (9, false)], [(1, true), (9, false)], [(2, true), (3, true)],
    ]
    static let paddedOnlyKeys: [UInt8: [UInt64]] = BehaviourFixture.paddedOnlyKeys.merging([1: [key(1, 9)], 4: [key(4, 9)]]) { a, _ in a }

    static func fields(_ variant: LongTermInterestVariant) -> LongTermInterestFields {
        let b = BehaviourFixture.fields
        let tags = variant != .noTags
        return LongTermInterestFields(user: b.user!, item: b.item, category: tags ? b.category : nil,
                                      attributes: tags ? .init(name: "attributes", table: 4) : nil,
                                      histItems: b.histItems, histCategories: tags ? b.histCategories : nil,
                                      neighbors: variant != .noNeighbors ? .init(name: "neighbors", table: 1) : nil)
    }

    static func batch() -> ModelBatch {
        var b = BehaviourFixture.batch()
        func field(_ group: UInt8, _ lists: [[(UInt64, Bool)]]) -> SparseField {
            let flat = lists.flatMap { $0 }
            return SparseField(length: lists[0].count, keys: flat.map { key(group, $0.0) }, mask: flat.map { $0.1 ? 1 : 0 })
        }
        b.fields["neighbors"] = field(1, neighbors)
        b.fields["attributes"] = field(4, attributes)
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

    static func config(_ encoder: LongTermInterestEncoder) -> ModelConfig {
        var c = ModelConfig()
        c.name = "long-term-interest"
        c.embeddingDim = dim
        c.heads = 2
        c.hidden = [5, 4]
        c.encoder = encoder.rawValue
        return c
    }

    /// A network with every dense parameter random.
    static func network<T: Real>(_ encoder: LongTermInterestEncoder, _ variant: LongTermInterestVariant,
                                 _ activation: ActivationKind) -> LongTermInterestNetwork<T> {
        var rng = SeededGenerator(seed: 11)
        var net = LongTermInterestNetwork<T>(fields: fields(variant), dim: dim, maxLength: maxLength, encoder: encoder, heads: 2,
                                             hidden: [5, 4], activation: activation, positionScale: 0.1, generator: &rng)
        var seed: UInt64 = 400
        net.visitParameters { _, value, _ in
            value = GradientCheck.random(value.shape, seed: seed, scale: 0.7).converted()
            seed += 1
        }
        return net
    }
}

/// Gradient checks of the whole `long-term-interest` network in Double (both encoders, the
/// model and its twins), its Float wrapper, and its construction from a schema.
@Suite struct LongTermInterestModelTests {
    @Test(arguments: LongTermInterestEncoder.allCases, LongTermInterestVariant.allCases)
    func denseAndRowGradientsMatchCentralDifferences(encoder: LongTermInterestEncoder, variant: LongTermInterestVariant) {
        let batch = LongTermInterestFixture.batch()
        let allRows = LongTermInterestFixture.rows()
        let fields = LongTermInterestFixture.fields(variant)
        // Only the tables the variant reads are pulled (as a worker pulls `tableDims`).
        let rows = allRows.filter { fields.tables.contains($0.key) }
        let net: LongTermInterestNetwork<Double> = LongTermInterestFixture.network(encoder, variant, variant == .full ? .dice : .prelu)

        var analytic = net
        let (loss, rowGrads) = analytic.trainStep(batch, rows: rows)
        #expect(loss.isFinite && loss > 0)
        var denseGrads: [(name: String, grad: Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in denseGrads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, value, _ in values.append(value) }
        #expect(denseGrads.contains { $0.name.hasPrefix("gru.") } == (encoder == .gru))
        #expect(denseGrads.contains { $0.name.hasPrefix("block.") } == (encoder == .selfAttention))

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
                let d = LongTermInterestFixture.dim
                #expect(entry.grad.data[(4 * d)...].allSatisfy { $0 == 0 })
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
            let d = LongTermInterestFixture.dim
            for (i, key) in table.keys.enumerated() {
                let row = grad.data[(i * d)..<((i + 1) * d)]
                if LongTermInterestFixture.paddedOnlyKeys[t]?.contains(key) == true {
                    #expect(row.allSatisfy { $0 == 0 }, "padded key \(FeatureKey(rawValue: key)) got gradient \(Array(row))")
                } else {
                    #expect(row.contains { $0 != 0 }, "real key \(FeatureKey(rawValue: key)) got no gradient")
                }
            }
        }
    }

    /// The twins read exactly what their names say: a neighbour's row moves the full model's
    /// prediction for the sample that trusts it, and not the twin's without neighbours.
    @Test(arguments: LongTermInterestVariant.allCases)
    func neighbourAndTagRowsReachOnlyTheModelsThatReadThem(variant: LongTermInterestVariant) {
        let batch = LongTermInterestFixture.batch()
        let rows = LongTermInterestFixture.rows()
        var net: LongTermInterestNetwork<Double> = LongTermInterestFixture.network(.gru, variant, .prelu)
        net.forward(batch, rows: rows, training: false)
        let before = net.logits.data
        var changed = rows
        for (t, id) in [(UInt8(1), UInt64(2)), (4, 1)] {
            let i = changed[t]!.index(of: LongTermInterestFixture.key(t, id))!
            for k in 0..<LongTermInterestFixture.dim { changed[t]!.values.data[i * LongTermInterestFixture.dim + k] += 0.5 }
        }
        net.forward(batch, rows: changed, training: false)
        let after = net.logits.data
        // Users: samples 1 and 4 are user 2; samples 0 and 3 trust user 2 and carry tag 1.
        #expect(before[1] != after[1] && before[4] != after[4], "the user's own row always counts")
        #expect(before[0] != after[0] && before[3] != after[3], "every variant reads the neighbour or the tag")
        // Sample 2 (user 1, no neighbours, no tags) reads neither changed row.
        #expect(before[2] == after[2])
        // Only neighbours changed for the twin without tags; only tags for the twin without neighbours.
        var onlyNeighbour = rows, onlyTag = rows
        let u3 = rows[1]!.index(of: LongTermInterestFixture.key(1, 3))!, a3 = rows[4]!.index(of: LongTermInterestFixture.key(4, 3))!
        for k in 0..<LongTermInterestFixture.dim {
            onlyNeighbour[1]!.values.data[u3 * LongTermInterestFixture.dim + k] += 0.5
            onlyTag[4]!.values.data[a3 * LongTermInterestFixture.dim + k] += 0.5
        }
        net.forward(batch, rows: onlyNeighbour, training: false)
        #expect((net.logits.data[4] != before[4]) == (variant != .noNeighbors), "neighbour 3 of sample 4")
        net.forward(batch, rows: onlyTag, training: false)
        #expect((net.logits.data[4] != before[4]) == (variant != .noTags), "tag 3 of sample 4")
    }

    /// More padding after the real behaviours, neighbours or tags changes no prediction: the
    /// GRU's long-term vector is its state after the most recent *real* behaviour, the
    /// attention and the means skip padded positions. (The history is padded from 4 to 6.)
    @Test(arguments: LongTermInterestEncoder.allCases)
    func extraPaddingLeavesEveryPredictionUnchanged(encoder: LongTermInterestEncoder) {
        let batch = LongTermInterestFixture.batch()
        var padded = batch
        for name in ["hist_items", "hist_categories"] {
            let f = batch.fields[name]!, l = f.length, group = FeatureKey(rawValue: f.keys[0]).group
            var keys: [UInt64] = [], mask: [Float] = []
            for s in 0..<batch.size {
                keys += f.keys[(s * l)..<((s + 1) * l)] + [LongTermInterestFixture.key(group, group == 2 ? 8 : 4), LongTermInterestFixture.key(group, group == 2 ? 7 : 4)]
                mask += f.mask[(s * l)..<((s + 1) * l)] + [0, 0]
            }
            padded.fields[name] = SparseField(length: l + 2, keys: keys, mask: mask)
        }
        let rows = LongTermInterestFixture.rows()
        var net: LongTermInterestNetwork<Double> = LongTermInterestFixture.network(encoder, .full, .prelu)
        net.forward(batch, rows: rows, training: false)
        let reference = net.logits.data
        net.forward(padded, rows: rows, training: false)
        for (a, b) in zip(reference, net.logits.data) { #expect(abs(a - b) < 1e-12, "logit \(a) became \(b) with more padding") }
    }

    @Test(arguments: LongTermInterestEncoder.allCases)
    func floatModelStepMatchesDoubleNetwork(encoder: LongTermInterestEncoder) {
        let batch = LongTermInterestFixture.batch()
        let rows = LongTermInterestFixture.rows()
        var reference: LongTermInterestNetwork<Double> = LongTermInterestFixture.network(encoder, .full, .dice)
        let (refLoss, refRows) = reference.trainStep(batch, rows: rows)
        let refDense = reference.flatGradients()
        let refProbabilities = reference.logits.data.map { sigmoid($0) }

        var model = LongTermInterestModel(config: LongTermInterestFixture.config(encoder), fields: LongTermInterestFixture.fields(.full),
                                          maxLength: LongTermInterestFixture.maxLength, encoder: encoder, activation: .dice, seed: 3)
        #expect(model.denseParameterCount == reference.parameterCount)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let out = model.trainStep(batch, rows: LongTermInterestFixture.batchRows(rows))

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
        // Inference uses the running statistics, which the step moved: still finite probabilities.
        let predicted = model.predict(batch, rows: LongTermInterestFixture.batchRows(rows))
        #expect(predicted.count == batch.size && predicted.allSatisfy { $0 > 0 && $0 < 1 })
    }

    /// The slots `heed prepare` writes for Ciao (trust + categories) and for the generic schema with tags.
    static func schema(neighbors: Bool, attributes: Bool, user: Bool = true) -> SampleSchema {
        var slots: [FeatureSlot] = []
        if user { slots.append(FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1)) }
        slots.append(FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1))
        slots.append(FeatureSlot(name: "category", group: .category, kind: .single, maxLength: 1))
        if attributes { slots.append(FeatureSlot(name: "attributes", group: .attribute, kind: .sequence, maxLength: 16)) }
        if neighbors { slots.append(FeatureSlot(name: "neighbors", group: .user, kind: .sequence, maxLength: 20)) }
        slots.append(FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 50))
        slots.append(FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: 50, alignedWith: "hist_items"))
        return SampleSchema(slots: slots, labels: ["click", "rating"], dense: [])
    }

    /// The factory builds the model and its twins from the run config; each twin lacks exactly
    /// its inputs' MLP columns; bad settings and schemas are errors naming the model.
    @Test func factoryBuildsTheModelAndItsTwins() throws {
        var c = ModelConfig()
        c.name = "long-term-interest"
        let d = c.embeddingDim, h = c.hidden[0]
        let ciao = Self.schema(neighbors: true, attributes: false)
        let full = try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1)
        #expect(full.inputFields == ["user", "item", "category", "neighbors", "hist_items", "hist_categories"])
        #expect(full.tableDims == [1: d, 2: d, 3: d])
        c.useNeighbors = false
        let noSocial = try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1)
        #expect(noSocial.inputFields == ["user", "item", "category", "hist_items", "hist_categories"])
        #expect(full.denseParameterCount - noSocial.denseParameterCount == d * h)
        c.useNeighbors = true
        c.useTags = false
        let noTags = try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1)
        #expect(noTags.inputFields == ["user", "item", "neighbors", "hist_items"])
        #expect(noTags.tableDims == [1: d, 2: d])
        #expect(full.denseParameterCount - noTags.denseParameterCount == d * h)
        c.useTags = true
        let generic = try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(neighbors: false, attributes: true), seed: 1)
        #expect(generic.inputFields == ["user", "item", "category", "attributes", "hist_items", "hist_categories"])
        c.encoder = "self-attention"
        c.heads = 2
        let attention = try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1)
        #expect(attention.inputFields == full.inputFields && attention.denseParameterCount != full.denseParameterCount)

        c.encoder = "lstm"
        let e1 = #expect(throws: HeedError.self) { try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1) }
        #expect(e1?.message.contains("encoder must be gru or self-attention") == true)
        c.encoder = "self-attention"
        c.heads = 4
        #expect(throws: HeedError.self) { try ModelFactory.makeStatefulModel(config: c, schema: ciao, seed: 1) }
        c.heads = 1
        let e2 = #expect(throws: HeedError.self) {
            try ModelFactory.makeStatefulModel(config: c, schema: Self.schema(neighbors: true, attributes: false, user: false), seed: 1)
        }
        #expect(e2?.message.contains("model long-term-interest needs slot 'user'") == true)
    }

    /// The run config reads the model's keys from TOML and rejects a bad encoder.
    @Test func runConfigReadsEncoderAndSwitches() throws {
        let text = "[model]\nname = \"long-term-interest\"\nencoder = \"self-attention\"\nuse_neighbors = false\nuse_tags = false\n"
        let c = try RunConfig(toml: TOMLDocument(text: text, source: "lti.toml"))
        #expect(c.model.encoder == "self-attention" && !c.model.useNeighbors && !c.model.useTags)
        let e = #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[model]\nencoder = \"rnn\"\n", source: "bad.toml")) }
        #expect(e?.message.contains("model.encoder must be gru or self-attention") == true)
        let e2 = #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[model]\nuse_tags = \"no\"\n", source: "bad.toml")) }
        #expect(e2?.message.contains("model.use_tags must be true or false") == true)
    }
}
