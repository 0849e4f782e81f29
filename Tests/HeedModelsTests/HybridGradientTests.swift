import Foundation
import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// A small hand-made hybrid batch: three users with sequences of window 5 (lengths 5, 2, 3),
/// items 1…10 in categories 1…3 with price levels 0…2, shared candidates 3, 5, 7, 9 (item 3 is
/// also a positive, so it leaves those positions' softmax). User 3 is anonymous (no row).
enum HybridFixture {
    static let dim = 3
    static let window = 5
    static func item(_ id: UInt64) -> UInt64 { FeatureGroup.item.key(id) }
    static func category(ofItem id: UInt64) -> UInt64 { FeatureGroup.category.key(id % 3 + 1) }
    static func level(ofItem id: UInt64) -> UInt64 { FeatureGroup.priceLevel.key(id % 3) }

    /// (input item, next item) per real position.
    static let sequences: [[(UInt64, UInt64)]] = [
        [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)],
        [(6, 1), (1, 3)],
        [(2, 4), (4, 8), (8, 9)],
    ]
    static let shared: [UInt64] = [3, 5, 7, 9]

    static func batch() -> ModelBatch {
        let b = sequences.count, w = window
        var seq = [UInt64](repeating: 0, count: b * w), pos = seq, mask = [Float](repeating: 0, count: b * w)
        for (r, s) in sequences.enumerated() {
            for (t, (i, p)) in s.enumerated() { seq[r * w + t] = item(i); pos[r * w + t] = item(p); mask[r * w + t] = 1 }
        }
        func side(_ keys: [UInt64], _ f: (UInt64) -> UInt64) -> [UInt64] { keys.map { $0 == 0 ? 0 : f(id(of: $0)) } }
        let neg = shared.map(item), ones = [Float](repeating: 1, count: shared.count)
        return ModelBatch(size: b, labels: [1, 1, 1], users: [1, 2, HybridBatcher.anonymousUser], fields: [
            "user": SparseField(length: 1, keys: [FeatureGroup.user.key(1), FeatureGroup.user.key(2), 0], mask: [1, 1, 0]),
            "seq": SparseField(length: w, keys: seq, mask: mask),
            "seq_cat": SparseField(length: w, keys: side(seq, category), mask: mask),
            "pos": SparseField(length: w, keys: pos, mask: mask),
            "pos_cat": SparseField(length: w, keys: side(pos, category), mask: mask),
            "pos_price": SparseField(length: w, keys: side(pos, level), mask: mask),
            "neg": SparseField(length: shared.count, keys: neg, mask: ones),
            "neg_cat": SparseField(length: shared.count, keys: neg.map { category(ofItem: id(of: $0)) }, mask: ones),
            "neg_price": SparseField(length: shared.count, keys: neg.map { level(ofItem: id(of: $0)) }, mask: ones),
        ])
    }

    /// The raw id of a fixture item key.
    static func id(of key: UInt64) -> UInt64 { (1...10).first { item($0) == key } ?? 0 }

    /// Rows of every table the batch reads.
    static func rows(seed: UInt64 = 5) -> [UInt8: TableRows<Double>] {
        let d = dim
        func table(_ keys: [UInt64], width: Int, seed: UInt64) -> TableRows<Double> {
            let sorted = keys.sorted()
            return TableRows(keys: sorted, values: GradientCheck.random([sorted.count, width], seed: seed, scale: 0.8))
        }
        return [FeatureGroup.user.rawValue: table([FeatureGroup.user.key(1), FeatureGroup.user.key(2)], width: 2 * d, seed: seed),
                FeatureGroup.item.rawValue: table((1...9).map(item), width: 3 * d, seed: seed + 1),
                FeatureGroup.category.rawValue: table((1...3).map { FeatureGroup.category.key($0) }, width: d, seed: seed + 2),
                FeatureGroup.priceLevel.rawValue: table((0...2).map { FeatureGroup.priceLevel.key($0) }, width: d, seed: seed + 3)]
    }

    static func network(parts: Set<HybridPart>, lstm: Bool, learned: Bool) -> HybridNetwork<Double> {
        var rng = SeededGenerator(seed: 31)
        var net = HybridNetwork<Double>(dim: dim, window: window, hidden: [4], lstm: lstm, parts: parts, learnedGate: learned,
                                        fixedWeights: [0.5, 1.5, 0.8], usesPriceLevel: true, generator: &rng)
        // Non-zero biases, so their gradients and the ReLU/gate paths are exercised off zero.
        var k: UInt64 = 0
        net.visitParameters { name, value, _ in
            k += 1
            if name.hasSuffix("bias") || name.hasSuffix("Bias") {
                let noise = GradientCheck.random(value.shape, seed: 200 + k, scale: 0.3)
                for i in 0..<value.count { value.data[i] += noise.data[i] }
            }
        }
        return net
    }
}

/// Central-difference checks in Double of the whole hybrid network: the MF score, the GRU and
/// the LSTM (back-propagation through every step: each input position's item row and the
/// recurrent weights), both MLP towers, the learned gate and the fixed blend, through the
/// softmax over the positive and shared candidates — against every dense parameter and every
/// pulled row of every table.
@Suite struct HybridGradientTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let parts: Set<HybridPart>, lstm: Bool, learned: Bool
        var testDescription: String { "\(parts.map(\.name).sorted().joined(separator: "+")) \(lstm ? "lstm" : "gru") \(learned ? "learned" : "fixed")" }
    }

    static let cases: [Case] = [
        Case(parts: [.mf], lstm: false, learned: false),
        Case(parts: [.seq], lstm: false, learned: false),
        Case(parts: [.seq], lstm: true, learned: false),
        Case(parts: [.mlp], lstm: false, learned: false),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: true),
        Case(parts: [.mf, .seq, .mlp], lstm: true, learned: true),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: false),
        Case(parts: [.mf, .mlp], lstm: false, learned: true),
    ]

    @Test(arguments: cases)
    func denseAndRowGradientsMatchCentralDifferences(_ c: Case) {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        let net = HybridFixture.network(parts: c.parts, lstm: c.lstm, learned: c.learned)

        var analytic = net
        let (value, dRows, _) = analytic.trainStep(batch, rows: rows)
        #expect(value.isFinite && value > 0)
        var grads: [(String, Tensor<Double>)] = []
        analytic.visitParameters { name, _, grad in grads.append((name, grad)) }
        var values: [Tensor<Double>] = []
        var base = net
        base.visitParameters { _, v, _ in values.append(v) }

        for (k, (name, grad)) in grads.enumerated() {
            let numeric = GradientCheck.numeric(at: values[k]) { probe in
                var n = net
                var i = 0
                n.visitParameters { _, v, _ in
                    if i == k { v = probe }
                    i += 1
                }
                return n.loss(batch, rows: rows)
            }
            let bad = GradientCheck.firstMismatch(analytic: grad, numeric: numeric, rtol: 1e-5, atol: 1e-8)
            #expect(bad == nil, "\(c.testDescription) \(name): \(String(describing: bad))")
            // A part that does not score gets no gradient; a part that does gets some.
            let owner: HybridPart? = name.hasPrefix("gru") || name.hasPrefix("lstm") ? .seq : name.contains("Tower") ? .mlp : nil
            if let owner {
                #expect(grad.data.contains { $0 != 0 } == c.parts.contains(owner), "\(c.testDescription) \(name): gradient presence")
            } else {
                #expect(grad.data.contains { $0 != 0 } == (c.learned && c.parts.count > 1), "\(c.testDescription) \(name): gate gradient presence")
            }
        }
        for (table, t) in rows {
            let numeric = GradientCheck.numeric(at: t.values) { probe in
                var r = rows
                r[table] = TableRows(keys: t.keys, values: probe)
                return net.loss(batch, rows: r)
            }
            let bad = GradientCheck.firstMismatch(analytic: dRows[table]!, numeric: numeric, rtol: 1e-5, atol: 1e-8)
            #expect(bad == nil, "\(c.testDescription) table \(table): \(String(describing: bad))")
        }
        // Every sequence input row moves when the sequence part scores (BPTT reaches each step).
        let d = HybridFixture.dim, items = rows[FeatureGroup.item.rawValue]!
        if c.parts.contains(.seq) {
            for id: UInt64 in [1, 2, 4, 6, 8] {
                let i = items.index(of: HybridFixture.item(id))!
                #expect((0..<d).contains { dRows[FeatureGroup.item.rawValue]!.data[i * 3 * d + d + $0] != 0 }, "item \(id) sequence row got no gradient")
            }
        }
    }

    /// The score is one dot product: the user vector of the last position times the item
    /// vector equals the logit the loss uses, so full ranking by one matrix product is exact.
    @Test func userAndItemVectorsGiveTheTrainingLogit() {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        var net = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: true)
        let users = net.userVectors(batch, rows: rows)
        let key = HybridFixture.item(6), w = 3 * HybridFixture.dim
        let v = net.itemVectors(keys: [key], categories: [HybridFixture.category(ofItem: 6)], levels: [HybridFixture.level(ofItem: 6)], rows: rows)
        let score = (0..<w).reduce(0.0) { $0 + users[$1] * v[$1] }
        // User 0's last position predicts item 6: σ(score) is what trainStep reports for it.
        var copy = net
        let last = copy.trainStep(batch, rows: rows).last
        #expect(abs(1 / (1 + exp(-score)) - last[0]) < 1e-12)
    }
}
