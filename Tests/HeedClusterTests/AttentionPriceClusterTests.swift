import Foundation
import Testing
import HeedCore
import HeedCheckpoint
import HeedData
import HeedServer
@testable import heed

/// The `attention-price` model (both fusions) and its twin without price features trained by a
/// sync cluster over real nng (every embedding row, the price/spend tables included, and every
/// dense weight on the servers) equal the in-process run bitwise: the same dense vector, every
/// row with its Adam step and state, the same test AUC. Data: the bundled online-retail sample
/// (generic schema with prices: price and spend levels, dense price columns).
@Suite(.serialized) struct AttentionPriceClusterTests {
    @Test(arguments: [("concat", true, 1), ("product", true, 1), ("concat", false, 1), ("product", true, 2)])
    func syncClusterEqualsInProcessBitwise(fusion: String, priceFeatures: Bool, servers: Int) async throws {
        let data = try ClusterHarness.prepared(.generic, sample: "generic-online-retail-sample", shards: 2)
        var config = ClusterHarness.config(data: data, model: "attention-price", servers: servers, workers: 1, mode: .sync, steps: 40)
        config.model.priceFusion = fusion
        config.model.priceFeatures = priceFeatures
        config.model.attentionWeighting = "softmax"
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        let dense = reference.pullDense()
        #expect(cluster.shards.flatMap { $0.pullDense() } == dense)
        let plan = ShardingPlan(serverCount: servers, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
        // The price (7) and spend (8) level tables live on the servers exactly when the model reads them.
        #expect((expected[FeatureGroup.priceLevel.rawValue] != nil && expected[FeatureGroup.spendLevel.rawValue] != nil) == priceFeatures)
        var compared = 0
        for (table, rows) in expected {
            #expect(rows.count == actual[table]?.count)
            for (key, (step, values)) in rows {
                guard let (s, v) = actual[table]?[key] else { Issue.record("key \(key) missing from the cluster"); continue }
                #expect(s == step && v == values, "row \(key) of table \(table) differs")
                compared += 1
            }
        }
        #expect(compared > 1000)
        #expect(cluster.evaluation?.auc == referenceEval.auc)
        #expect(referenceEval.auc != nil)
    }
}
