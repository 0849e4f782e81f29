import Foundation
import Testing
import HeedCore
import HeedData
import HeedModels
import HeedServer
@testable import heed

/// `hybrid` through a real cluster against the single-process run, and the cross-sell /
/// upsell rules on real catalogues.
@Suite(.serialized) struct HybridClusterTests {
    /// A bundled or cut dataset prepared with `--protocol seq` once per test process.
    static func prepared(_ dataset: PrepareOptions.Dataset, _ input: String, name: String, shards: Int = 2) throws -> String {
        try lock.withLock {
            let out = NSTemporaryDirectory() + "heed-hybrid-\(name)-\(getpid())"
            if FileManager.default.fileExists(atPath: out + "/manifest.json") { return out }
            var o = PrepareOptions(dataset: dataset, input: ClusterHarness.repository + "/data/" + input, output: out)
            o.sampleProtocol = .seq
            o.maxLength = 1000
            o.shards = shards
            o.overwrite = true
            _ = try Preparer.prepare(o)
            return out
        }
    }

    /// The bundled Grocery sample (3,000 users, categories and complement/substitute links).
    static func grocery() throws -> String { try prepared(.amazonGrocery, "amazon-grocery-sample", name: "grocery") }

    private static let lock = NSLock()

    /// A small hybrid run config.
    static func config(data: String, servers: Int, steps: Int, sequence: String, loss: NextItemLoss) -> RunConfig {
        var c = ClusterHarness.config(data: data, model: "hybrid", servers: servers, workers: 1, mode: .sync, steps: steps, batch: 128)
        c.model.embeddingDim = 8
        c.model.hidden = [16]
        c.model.maxLength = 20
        c.model.loss = loss.rawValue
        c.model.negatives = 64
        c.model.sequence = sequence
        c.sparseOptimizer.learningRate = 0.005
        c.denseOptimizer.learningRate = 0.005
        return c
    }

    /// Sync mode with one worker reads the same batches with the same negatives and applies
    /// the same Adam updates as the in-process run: every row of every table (user, item,
    /// category; with its Adam state), the dense vector and the ranking figures are bitwise equal.
    /// The last case adds the per-part losses, the history-reading gate, the user-row factor and
    /// FPMC's last-item rows.
    @Test(arguments: [("gru", NextItemLoss.sampledSoftmax, 1, false), ("lstm", .sampledSoftmax, 2, false), ("gru", .softmax, 1, false),
                      ("gru", .sampledSoftmax, 2, true)])
    func syncHybridWithOneWorkerEqualsInProcessBitwise(sequence: String, loss: NextItemLoss, servers: Int, partLosses: Bool) async throws {
        var config = Self.config(data: try Self.grocery(), servers: servers, steps: 12, sequence: sequence, loss: loss)
        if partLosses {
            config.model.partLossWeight = 0.5
            config.model.gateHistory = true
            config.model.userRowScale = 4
            config.model.mfLastItem = true
        }
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        #expect(cluster.shards.flatMap { $0.pullDense() } == reference.pullDense())
        let plan = ShardingPlan(serverCount: servers, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
        #expect(Set(expected.keys).isSuperset(of: [FeatureGroup.user.rawValue, FeatureGroup.item.rawValue, FeatureGroup.category.rawValue]))
        var trained = 0
        for (table, rows) in expected {
            #expect(rows.count == actual[table]?.count)
            for (key, (step, values)) in rows {
                guard let (s, v) = actual[table]?[key] else { Issue.record("key \(key) missing from the cluster"); continue }
                #expect(s == step && v == values, "row \(key) of table \(table) differs")
                if step > 0 { trained += 1 }
            }
        }
        #expect(trained > 1000, "only \(trained) rows were updated")
        let figures = try #require(referenceEval.nextItem)
        #expect(figures.full.records == 3000)
        let got = try #require(cluster.evaluation?.nextItem)
        #expect(got.full == figures.full && got.sampled == figures.sampled && got.coverage == figures.coverage)
    }

    /// On real catalogues — Grocery (categories, no prices), Complete Journey (categories and
    /// prices), UCI Online Retail (prices, no categories) — lists made by `restrict` + top-K
    /// never break their rule, even with scores that favour exactly the forbidden items; and
    /// they are the best allowed items, where "allowed" is recomputed from `violates`.
    @Test(arguments: [(PrepareOptions.Dataset.amazonGrocery, "amazon-grocery-sample"), (.completeJourney, "cuts/completejourney"),
                      (.generic, "generic-online-retail-sample")])
    func listsNeverBreakTheirRulesOnRealCatalogues(dataset: PrepareOptions.Dataset, input: String) throws {
        let data = try Self.prepared(dataset, input, name: dataset.rawValue, shards: 1)
        let side = try ItemSide.load(dataDirectory: data)
        let kinds: [ShopListKind] = side.hasPrices ? [.crossSell, .upsell, .alternatives] : [.crossSell, .alternatives]
        if !side.hasPrices { #expect(throws: HeedError.self) { try ShopListRules.check(.upsell, side: side, data: data) } }
        var rng = SeededGenerator(seed: 7)
        var nonEmpty: [ShopListKind: Int] = [:]
        let anchors = Array(stride(from: 0, to: side.count, by: max(1, side.count / 300)))
        for a in anchors {
            for kind in kinds {
                // Adversarial scores: every forbidden item outscores every allowed one.
                var scores = (0..<side.count).map { c -> Float in
                    let forbidden = c == a || ShopListRules.violates(kind, item: side.keys[c], anchor: side.keys[a], side: side)
                    return (forbidden ? 10 : 0) + Float(rng.nextUnitDouble())
                }
                let original = scores
                scores.withUnsafeMutableBufferPointer { ShopListRules.restrict($0, kind: kind, anchor: a, side: side) }
                let top = ItemScorer.topK(scores[...], k: 10)
                #expect(top.allSatisfy { !ShopListRules.violates(kind, item: side.keys[$0], anchor: side.keys[a], side: side) && $0 != a },
                        "\(kind) around \(side.rawIDs[a]) lists a forbidden item")
                let allowed = (0..<side.count).filter { $0 != a && !ShopListRules.violates(kind, item: side.keys[$0], anchor: side.keys[a], side: side) }
                let best = allowed.sorted { original[$0] > original[$1] }.prefix(10)
                #expect(top == Array(best), "\(kind) around \(side.rawIDs[a]): not the best allowed items")
                if !top.isEmpty { nonEmpty[kind, default: 0] += 1 }
                if kind == .upsell, let pa = side.prices[a] {
                    #expect(top.allSatisfy { (side.prices[$0] ?? -1) > pa }, "upsell around \(side.rawIDs[a]) lists an item not dearer than \(pa)")
                }
            }
        }
        // The rules leave real lists to rank (no rule passes by listing nothing).
        let hasCategories = side.categories.contains { $0 != FeatureGroup.category.missingKey }
        for kind in kinds where kind != .crossSell || hasCategories {
            #expect(nonEmpty[kind, default: 0] > anchors.count / 3, "\(kind): only \(nonEmpty[kind, default: 0]) of \(anchors.count) anchors have a list")
        }
    }
}
