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
    static func rows(seed: UInt64 = 5, mfLastItem: Bool = false) -> [UInt8: TableRows<Double>] {
        let d = dim
        func table(_ keys: [UInt64], width: Int, seed: UInt64) -> TableRows<Double> {
            let sorted = keys.sorted()
            return TableRows(keys: sorted, values: GradientCheck.random([sorted.count, width], seed: seed, scale: 0.8))
        }
        return [FeatureGroup.user.rawValue: table([FeatureGroup.user.key(1), FeatureGroup.user.key(2)], width: 2 * d, seed: seed),
                FeatureGroup.item.rawValue: table((1...9).map(item), width: (mfLastItem ? 4 : 3) * d, seed: seed + 1),
                FeatureGroup.category.rawValue: table((1...3).map { FeatureGroup.category.key($0) }, width: d, seed: seed + 2),
                FeatureGroup.priceLevel.rawValue: table((0...2).map { FeatureGroup.priceLevel.key($0) }, width: d, seed: seed + 3)]
    }

    static func network(parts: Set<HybridPart>, lstm: Bool, learned: Bool, gateHistory: Bool = false, partLoss: Double = 0,
                        fixedWeights: [Double] = [0.5, 1.5, 0.8], userRowScale: Double = 1, mfLastItem: Bool = false) -> HybridNetwork<Double> {
        var rng = SeededGenerator(seed: 31)
        var net = HybridNetwork<Double>(dim: dim, window: window, hidden: [4], lstm: lstm, parts: parts, learnedGate: learned,
                                        fixedWeights: fixedWeights, usesPriceLevel: true, gateHistory: gateHistory,
                                        partLossWeight: partLoss, userRowScale: userRowScale, mfLastItem: mfLastItem,
                                        generator: &rng)
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
        var gateHistory = false, partLoss = 0.0, userRowScale = 1.0, mfLastItem = false
        var testDescription: String {
            "\(parts.map(\.name).sorted().joined(separator: "+")) \(lstm ? "lstm" : "gru") \(learned ? "learned" : "fixed")"
                + (gateHistory ? " history" : "") + (partLoss > 0 ? " part-loss \(partLoss)" : "")
                + (userRowScale != 1 ? " user-row-scale \(userRowScale)" : "") + (mfLastItem ? " fpmc" : "")
        }
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
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: true, gateHistory: true),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: true, gateHistory: true, partLoss: 0.7),
        Case(parts: [.mf, .seq, .mlp], lstm: true, learned: true, partLoss: 0.5),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: false, partLoss: 0.5),
        Case(parts: [.mf, .mlp], lstm: false, learned: true, gateHistory: true, partLoss: 1.0),
        Case(parts: [.mf], lstm: false, learned: false, userRowScale: 3),
        Case(parts: [.mlp], lstm: false, learned: false, userRowScale: 3),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: true, partLoss: 0.5, userRowScale: 4),
        Case(parts: [.mf], lstm: false, learned: false, mfLastItem: true),
        Case(parts: [.mf], lstm: false, learned: false, userRowScale: 2, mfLastItem: true),
        Case(parts: [.mf, .seq, .mlp], lstm: false, learned: false, partLoss: 1.0, mfLastItem: true),
        Case(parts: [.mf, .seq, .mlp], lstm: true, learned: true, mfLastItem: true),
    ]

    @Test(arguments: cases)
    func denseAndRowGradientsMatchCentralDifferences(_ c: Case) {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows(mfLastItem: c.mfLastItem)
        let net = HybridFixture.network(parts: c.parts, lstm: c.lstm, learned: c.learned, gateHistory: c.gateHistory, partLoss: c.partLoss,
                                        userRowScale: c.userRowScale, mfLastItem: c.mfLastItem)

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
            if name == "itemTower.dense1.bias" {
                // The item tower's output bias shifts every candidate's score by the same a_mlp·b:
                // a softmax ignores that, so its gradient is zero up to rounding (checked above).
            } else if let owner {
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
        let d = HybridFixture.dim, items = rows[FeatureGroup.item.rawValue]!, rowWidth = items.values.lastDim
        if c.parts.contains(.seq) {
            for id: UInt64 in [1, 2, 4, 6, 8] {
                let i = items.index(of: HybridFixture.item(id))!
                #expect((0..<d).contains { dRows[FeatureGroup.item.rawValue]!.data[i * rowWidth + d + $0] != 0 }, "item \(id) sequence row got no gradient")
            }
        }
        // FPMC: every item read as a last item gets a transition-row (fourth block) gradient.
        if c.mfLastItem {
            for id: UInt64 in [1, 2, 3, 4, 5, 6, 8] {
                let i = items.index(of: HybridFixture.item(id))!
                #expect((0..<d).contains { dRows[FeatureGroup.item.rawValue]!.data[i * rowWidth + 3 * d + $0] != 0 }, "item \(id) transition row got no gradient")
            }
        }
    }

    /// The per-part losses reach a part the blend ignores: with fixed weights (0, 1, 0) only the
    /// sequence part scores in the blend, so MF's user rows and the towers get gradient from
    /// their own losses alone — and exactly λ times the gradient they get as the only part.
    /// With a single part the per-part loss is off (its loss is the blend's), so one part's
    /// baseline trains the same with or without it.
    @Test func partLossesTrainEveryPartAndLeaveOnePartAlone() {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        let user = FeatureGroup.user.rawValue
        var silent = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: false, partLoss: 0, fixedWeights: [0, 1, 0])
        let noPartLoss = silent.trainStep(batch, rows: rows)
        #expect(!noPartLoss.dRows[user]!.data.contains { $0 != 0 }, "MF/tower user rows moved with weight 0 and no part loss")
        var supervised = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: false, partLoss: 0.5, fixedWeights: [0, 1, 0])
        let withPartLoss = supervised.trainStep(batch, rows: rows)
        var mfAlone = HybridFixture.network(parts: [.mf], lstm: false, learned: false, fixedWeights: [1, 1, 1])
        let alone = mfAlone.trainStep(batch, rows: rows)
        let d = HybridFixture.dim
        for r in 0..<2 {
            for j in 0..<d {
                let got = withPartLoss.dRows[user]!.data[r * 2 * d + j], want = 0.5 * alone.dRows[user]!.data[r * 2 * d + j]
                #expect(abs(got - want) < 1e-12, "user row \(r) MF column \(j): \(got) vs \(want)")
            }
        }
        #expect(supervised.flatGradients().contains { $0 != 0 } && withPartLoss.loss > noPartLoss.loss)
        var towerGradient = false
        supervised.visitParameters { name, _, grad in if name.hasPrefix("userTower") && grad.data.contains(where: { $0 != 0 }) { towerGradient = true } }
        #expect(towerGradient, "the user tower got no gradient from its own loss")
        var seqAlone = HybridFixture.network(parts: [.seq], lstm: false, learned: true)
        var seqAloneWithWeight = HybridFixture.network(parts: [.seq], lstm: false, learned: true, partLoss: 0.5)
        let a = seqAlone.trainStep(batch, rows: rows), b = seqAloneWithWeight.trainStep(batch, rows: rows)
        #expect(a.loss == b.loss && a.dRows[FeatureGroup.item.rawValue]! == b.dRows[FeatureGroup.item.rawValue]!)
        #expect(seqAlone.flatGradients() == seqAloneWithWeight.flatGradients())
    }

    /// The history-reading gate gives a different blend for a short and a long history even
    /// with the same part vectors: its extra row is a real input.
    @Test func historyGateReadsTheNumberOfItems() {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        var net = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: true, gateHistory: true)
        let positions = [(0, 0), (0, 4)]
        let before = net.userSide(batch, rows: rows, positions: positions, training: false)
        let d3 = 3 * HybridFixture.dim
        #expect(before.gateInput.lastDim == d3 + 1)
        #expect(abs(before.gateInput.data[d3] - log(2.0)) < 1e-12 && abs(before.gateInput.data[(d3 + 1) + d3] - log(6.0)) < 1e-12)
        // Zero the part rows of the gate: only the history feature can now move the blend.
        for r in 0..<d3 { for c in 0..<3 { net.gateWeight.data[r * 3 + c] = 0 } }
        let after = net.userSide(batch, rows: rows, positions: positions, training: false)
        #expect((0..<3).contains { abs(after.gate.data[$0] - after.gate.data[3 + $0]) > 1e-6 }, "the gate ignored the history length")
    }

    /// The score is one dot product: the user vector of the last position times the item
    /// vector equals the logit the loss uses, so full ranking by one matrix product is exact.
    @Test(arguments: [false, true])
    func userAndItemVectorsGiveTheTrainingLogit(gateHistory: Bool) {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        var net = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: true, gateHistory: gateHistory, partLoss: gateHistory ? 0.5 : 0)
        let users = net.userVectors(batch, rows: rows)
        let key = HybridFixture.item(6), w = 3 * HybridFixture.dim
        let v = net.itemVectors(keys: [key], categories: [HybridFixture.category(ofItem: 6)], levels: [HybridFixture.level(ofItem: 6)], rows: rows)
        let score = (0..<w).reduce(0.0) { $0 + users[$1] * v[$1] }
        // User 0's last position predicts item 6: σ(score) is what trainStep reports for it.
        var copy = net
        let last = copy.trainStep(batch, rows: rows).last
        #expect(abs(1 / (1 + exp(-score)) - last[0]) < 1e-12)
    }

    /// The user-row factor s is a reparametrisation: a network with s reading rows R scores
    /// exactly as one with s = 1 reading s·R, and its user-row gradient is s times the other's
    /// (so Adam, which ignores a gradient's size, moves the effective vector s times as far).
    @Test func userRowScaleReadsScaledRowsAndScalesTheirGradient() {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        let user = FeatureGroup.user.rawValue, s = 3.0
        var scaledRows = rows
        let u = rows[user]!
        scaledRows[user] = TableRows(keys: u.keys, values: Tensor(shape: u.values.shape, data: u.values.data.map { s * $0 }))
        var scaled = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: true, partLoss: 0.5, userRowScale: s)
        var plain = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: true, partLoss: 0.5)
        let a = scaled.trainStep(batch, rows: rows), b = plain.trainStep(batch, rows: scaledRows)
        #expect(abs(a.loss - b.loss) < 1e-12)
        let ga = a.dRows[user]!.data, gb = b.dRows[user]!.data
        #expect(ga.contains { $0 != 0 })
        for j in ga.indices { #expect(abs(ga[j] - s * gb[j]) < 1e-12, "user gradient \(j): \(ga[j]) vs \(s) × \(gb[j])") }
        #expect(a.dRows[FeatureGroup.item.rawValue]! == b.dRows[FeatureGroup.item.rawValue]!)
    }

    /// Lists around an anchor: the score of every candidate is the user's next-item score plus
    /// β Σ_k ‖U_k‖ b_k(a)·b_k(i)/‖b_k(a)‖, recomputed here part by part from the item vectors;
    /// β = 0 or a zero anchor leaves the user vectors untouched, and a single part's model
    /// relates items by that part's item vectors alone.
    @Test(arguments: ["blend learned", "blend fixed", "seq alone"])
    func anchoredVectorsAddEachPartsAnchorRelatedness(_ variant: String) {
        let parts: Set<HybridPart> = variant == "seq alone" ? [.seq] : [.mf, .seq, .mlp], learned = variant == "blend learned"
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        var net = HybridFixture.network(parts: parts, lstm: false, learned: learned)
        let users = net.userVectors(batch, rows: rows)
        let d = HybridFixture.dim, w = 3 * d, b = batch.size
        let ids: [UInt64] = Array(1...9)
        let vectors = net.itemVectors(keys: ids.map(HybridFixture.item), categories: ids.map(HybridFixture.category(ofItem:)),
                                      levels: ids.map(HybridFixture.level(ofItem:)), rows: rows)
        let anchorIDs: [UInt64] = [5, 3, 8]
        let anchors = anchorIDs.flatMap { id in Array(vectors[(Int(id) - 1) * w..<Int(id) * w]) }
        #expect(HybridNetwork<Double>.anchoredVectors(users: users, anchors: anchors, weight: 0, dim: d) == users)
        let beta = 0.7
        let anchored = HybridNetwork<Double>.anchoredVectors(users: users, anchors: anchors, weight: beta, dim: d)
        func dot(_ x: [Double], _ y: [Double], _ part: Int) -> Double { (0..<d).reduce(0.0) { $0 + x[part * d + $1] * y[part * d + $1] } }
        var moved = false
        for r in 0..<b {
            let u = Array(users[r * w..<(r + 1) * w]), a = Array(anchors[r * w..<(r + 1) * w])
            for (k, id) in ids.enumerated() {
                let v = Array(vectors[k * w..<(k + 1) * w])
                let score = (0..<w).reduce(0.0) { $0 + anchored[r * w + $1] * v[$1] }
                let plain = (0..<w).reduce(0.0) { $0 + u[$1] * v[$1] }
                var related = 0.0
                for c in 0..<3 where parts.contains(HybridPart(rawValue: c)!) && dot(u, u, c) > 0 {
                    related += dot(u, u, c).squareRoot() * dot(a, v, c) / dot(a, a, c).squareRoot()
                }
                #expect(abs(score - (plain + beta * related)) < 1e-9, "record \(r) item \(id): \(score) vs \(plain + beta * related)")
                if abs(score - plain) > 1e-6 { moved = true }
            }
        }
        #expect(moved, "the anchor changed no score")
        let none = HybridNetwork<Double>.anchoredVectors(users: users, anchors: [Double](repeating: 0, count: b * w), weight: beta, dim: d)
        #expect(none == users)
    }

    /// Lists blended by other fixed weights read the same parts: a network asked for weights w'
    /// gives exactly the user vectors of the same network built with the fixed gate w'; a
    /// disabled part stays 0 whatever its list weight.
    @Test func listWeightsReblendTheSameParts() {
        let batch = HybridFixture.batch()
        let rows = HybridFixture.rows()
        let listWeights = [0.15, 0.7, 0.15]
        var next = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: false, fixedWeights: [0.4, 0.5, 0.1])
        var lists = HybridFixture.network(parts: [.mf, .seq, .mlp], lstm: false, learned: false, fixedWeights: listWeights)
        let reblended = next.userVectors(batch, rows: rows, partWeights: listWeights)
        #expect(reblended == lists.userVectors(batch, rows: rows))
        #expect(reblended != next.userVectors(batch, rows: rows))
        var seqAlone = HybridFixture.network(parts: [.seq], lstm: false, learned: false, fixedWeights: [1, 1, 1])
        let d = HybridFixture.dim
        let alone = seqAlone.userVectors(batch, rows: rows, partWeights: [5, 1, 5])
        #expect(alone == seqAlone.userVectors(batch, rows: rows))
        for r in 0..<batch.size { for j in 0..<d { #expect(alone[r * 3 * d + j] == 0 && alone[r * 3 * d + 2 * d + j] == 0) } }
    }
}
