import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// A small hand-made SASRec batch: three sequences of window 5 (lengths 5, 2, 3), items
/// 1…12 of width 4. Padded positions of `seq`, `pos` and `neg` carry REAL keys (items 11
/// and 12) whose rows are pulled: if a mask were ignored they would change the loss and get
/// gradient. Item 10 is pulled but never used.
enum SASRecFixture {
    static let dim = 4
    static let window = 5
    static func key(_ id: UInt64) -> UInt64 { FeatureKey(group: 2, id: id).rawValue }

    /// (seq, pos, bce negative) per real position.
    static let sequences: [[(UInt64, UInt64, UInt64)]] = [
        [(1, 2, 7), (2, 3, 8), (3, 4, 9), (4, 5, 6), (5, 6, 7)],
        [(6, 1, 9), (1, 3, 2)],
        [(2, 4, 5), (4, 8, 1), (8, 9, 3)],
    ]
    /// Candidates shared by the batch for the softmax losses: item 3 is a positive of two
    /// positions (so it is left out of their softmax), the others are not.
    static let sharedCandidates: [UInt64] = [3, 5, 7, 9]
    /// Every item the softmax over the whole "catalogue" sees.
    static let catalogue: [UInt64] = Array(1...10)

    static func batch(_ loss: NextItemLoss) -> ModelBatch {
        let b = sequences.count, w = window
        var seq = [UInt64](repeating: key(11), count: b * w), pos = [UInt64](repeating: key(12), count: b * w)
        var neg = [UInt64](repeating: key(11), count: b * w), mask = [Float](repeating: 0, count: b * w)
        for (r, s) in sequences.enumerated() {
            for (t, (i, p, n)) in s.enumerated() {
                seq[r * w + t] = key(i); pos[r * w + t] = key(p); neg[r * w + t] = key(n); mask[r * w + t] = 1
            }
        }
        var fields = ["seq": SparseField(length: w, keys: seq, mask: mask), "pos": SparseField(length: w, keys: pos, mask: mask)]
        switch loss {
        case .bce: fields["neg"] = SparseField(length: w, keys: neg, mask: mask)
        case .sampledSoftmax:
            fields["neg"] = SparseField(length: sharedCandidates.count, keys: sharedCandidates.map(key), mask: [Float](repeating: 1, count: sharedCandidates.count))
        case .softmax:
            fields["neg"] = SparseField(length: catalogue.count, keys: catalogue.map(key), mask: [Float](repeating: 1, count: catalogue.count))
        }
        return ModelBatch(size: b, labels: [1, 1, 1], users: [1, 2, 3], fields: fields)
    }

    /// Rows of items 1…12 (10 unused, 11 and 12 padding only).
    static func items<T: Real>(seed: UInt64 = 9) -> TableRows<T> {
        let keys = (1...12).map { key(UInt64($0)) }.sorted()
        return TableRows(keys: keys, values: GradientCheck.random([keys.count, dim], seed: seed, scale: 0.7).converted())
    }

    /// A network with buckets of 2 sequences, so the batch runs as two buckets (lengths 2 and 3, then 5).
    static func network<T: Real>(_ loss: NextItemLoss, dropout: Double = 0.3, blocks: Int = 2, bucketSize: Int = 2) -> SASRecNetwork<T> {
        var rng = SeededGenerator(seed: 21)
        var net = SASRecNetwork<T>(dim: dim, window: window, blocks: blocks, heads: 2, dropout: dropout, loss: loss, generator: &rng)
        net.bucketSize = bucketSize
        // Non-trivial norms (gain 1, bias 0 at init would hide mistakes in their gradients).
        var k: UInt64 = 0
        net.visitParameters { name, value, _ in
            k += 1
            if name.hasSuffix("gain") || name.hasSuffix("bias") || name.hasSuffix(".b1") || name.hasSuffix(".b2") {
                let noise = GradientCheck.random(value.shape, seed: 100 + k, scale: 0.3)
                for i in 0..<value.count { value.data[i] += T(noise.data[i]) }
            }
        }
        return net
    }
}

/// Model-level central-difference checks in Double of the whole SASRec network — causal
/// multi-head attention with padding, pre-norm blocks with dropout, learned positions, the
/// final norm and each loss with the shared input/output item embeddings — against every
/// dense parameter and every pulled item row.
@Suite struct SASRecGradientTests {
    @Test(arguments: NextItemLoss.allCases)
    func denseAndItemGradientsMatchCentralDifferences(loss: NextItemLoss) {
        let batch = SASRecFixture.batch(loss)
        let items: TableRows<Double> = SASRecFixture.items()
        let net: SASRecNetwork<Double> = SASRecFixture.network(loss)

        var analytic = net
        let (value, dItems, _) = analytic.trainStep(batch, items: items)
        #expect(value.isFinite && value > 0)
        var grads: [(String, Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in grads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, v, _ in values.append(v) }
        #expect(grads.count == values.count && grads.count > 10)

        for (k, (name, grad)) in grads.enumerated() {
            let numeric = GradientCheck.numeric(at: values[k]) { probe in
                var n = net
                var i = 0
                n.visitParameters { _, v, _ in
                    if i == k { v = probe }
                    i += 1
                }
                return n.lossValue(batch, items: items)
            }
            let bad = GradientCheck.firstMismatch(analytic: grad, numeric: numeric)
            #expect(bad == nil, "\(loss) \(name): \(String(describing: bad))")
            #expect(grad.data.contains { $0 != 0 }, "\(loss) \(name) got no gradient")
        }

        let numeric = GradientCheck.numeric(at: items.values) { probe in
            var n = net
            return n.lossValue(batch, items: TableRows(keys: items.keys, values: probe))
        }
        let bad = GradientCheck.firstMismatch(analytic: dItems, numeric: numeric)
        #expect(bad == nil, "\(loss) item rows: \(String(describing: bad))")
        let d = SASRecFixture.dim
        for (i, key) in items.keys.enumerated() {
            let row = dItems.data[(i * d)..<((i + 1) * d)]
            let id = key & FeatureKey.hashMask
            let unused = key == SASRecFixture.key(11) || key == SASRecFixture.key(12) || (key == SASRecFixture.key(10) && loss != .softmax)
            if unused {
                #expect(row.allSatisfy { $0 == 0 }, "\(loss): item \(id) (padding/unused) got gradient \(Array(row))")
            } else {
                #expect(row.contains { $0 != 0 }, "\(loss): item \(id) got no gradient")
            }
        }
    }

    /// The prediction after position t depends on items 0…t only (causal attention), and a
    /// sequence's padding does not reach its real positions.
    @Test func laterItemsAndPaddingDoNotChangeEarlierOutputs() {
        let batch = SASRecFixture.batch(.bce)
        let items: TableRows<Double> = SASRecFixture.items()
        var net: SASRecNetwork<Double> = SASRecFixture.network(.bce, dropout: 0)
        net.forward(batch, items: items, training: false)
        let before = net.hidden
        var changed = batch
        // Replace the last item of sequence 0 (position 4) and a padded key of sequence 1.
        changed.fields["seq"]!.keys[4] = SASRecFixture.key(10)
        changed.fields["seq"]!.keys[5 + 3] = SASRecFixture.key(9)
        net.forward(changed, items: items, training: false)
        let after = net.hidden
        let d = SASRecFixture.dim, l = net.span
        func row(_ t: Tensor<Double>, _ r: Int, _ p: Int) -> ArraySlice<Double> { t.data[((r * l + p) * d)..<((r * l + p + 1) * d)] }
        for p in 0..<4 { #expect(row(before, 0, p) == row(after, 0, p), "position \(p) saw a later item") }
        #expect(row(before, 0, 4) != row(after, 0, 4))
        for p in 0..<2 { #expect(row(before, 1, p) == row(after, 1, p), "sequence 1 position \(p) saw its padding") }
    }

    /// The Float model that trains runs the same computation as the Double network.
    @Test(arguments: NextItemLoss.allCases)
    func floatModelStepMatchesDoubleNetwork(loss: NextItemLoss) throws {
        let batch = SASRecFixture.batch(loss)
        let items: TableRows<Double> = SASRecFixture.items()
        var reference: SASRecNetwork<Double> = SASRecFixture.network(loss, dropout: 0)
        let (refLoss, refItems, refProbabilities) = reference.trainStep(batch, items: items)
        let refDense = reference.flatGradients()

        var config = ModelConfig()
        config.name = "sasrec"
        config.embeddingDim = SASRecFixture.dim
        config.maxLength = SASRecFixture.window
        config.blocks = 2
        config.heads = 2
        config.dropout = 0
        config.loss = loss.rawValue
        let schema = SampleSchema(slots: [FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1),
                                          FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 8)],
                                  labels: ["click"], dense: [])
        var model = try SASRecModel(config: config, schema: schema, seed: 3)
        #expect(model.denseParameterCount == reference.parameterCount)
        model.loadDenseParameters(reference.flatParameters().map { Float($0) })
        let rows = BatchRows(tables: [2: BatchRows.Table(keys: items.keys, dim: SASRecFixture.dim, values: items.values.data.map { Float($0) })])
        let out = model.trainStep(batch, rows: rows)
        func close(_ a: Float, _ b: Double, _ what: String) {
            #expect(abs(Double(a) - b) <= 1e-4 + 1e-3 * abs(b), "\(what): float \(a) vs double \(b)")
        }
        #expect(abs(out.loss - refLoss) < 1e-4)
        #expect(out.denseGradient.count == refDense.count)
        for (i, g) in out.denseGradient.enumerated() { close(g, refDense[i], "dense gradient \(i)") }
        for (i, g) in out.rowGradients[2]!.enumerated() { close(g, refItems.data[i], "item gradient \(i)") }
        for (i, p) in out.predictions.enumerated() { close(p, refProbabilities[i], "prediction \(i)") }
    }

    /// Running a batch as length buckets gives the loss and every gradient of running it whole.
    @Test(arguments: NextItemLoss.allCases)
    func bucketedStepEqualsWholeBatchStep(loss: NextItemLoss) {
        let batch = SASRecFixture.batch(loss)
        let items: TableRows<Double> = SASRecFixture.items()
        var whole: SASRecNetwork<Double> = SASRecFixture.network(loss, dropout: 0, bucketSize: 0)
        var bucketed: SASRecNetwork<Double> = SASRecFixture.network(loss, dropout: 0, bucketSize: 2)
        #expect(SASRecNetwork<Double>.buckets(batch, size: 2).buckets == [[1, 2], [0]])
        let a = whole.trainStep(batch, items: items), b = bucketed.trainStep(batch, items: items)
        #expect(abs(a.loss - b.loss) < 1e-12)
        let ga = whole.flatGradients(), gb = bucketed.flatGradients()
        #expect(zip(ga, gb).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(zip(a.itemGradient.data, b.itemGradient.data).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(zip(a.lastProbabilities, b.lastProbabilities).allSatisfy { abs($0 - $1) < 1e-12 })
        let ua = whole.userVectors(batch, items: items), ub = bucketed.userVectors(batch, items: items)
        #expect(zip(ua.vectors, ub.vectors).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(zip(ua.attention, ub.attention).allSatisfy { abs($0 - $1) < 1e-12 })
        // Sequence 1 has 2 items: attention weights over them sum to 1, none beyond.
        let w = SASRecFixture.window
        #expect(abs(ub.attention[w] + ub.attention[w + 1] - 1) < 1e-12 && ub.attention[(w + 2)..<(2 * w)].allSatisfy { $0 == 0 })
    }
}
