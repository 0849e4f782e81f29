import Foundation
import Testing
import HeedCore
import HeedCheckpoint
import HeedData
import HeedServer
@testable import heed

/// The `self-attention` model and its mean-pooling twin trained by a sync cluster over real
/// nng (every embedding row and dense weight on the servers) equal the in-process run
/// bitwise: the same dense vector, every row with its Adam step and state, the same test AUC.
@Suite(.serialized) struct SelfAttentionClusterTests {
    /// Beauty (items, categories) with both poolings; Taobao adds event types and time gaps.
    @Test(arguments: [(PrepareOptions.Dataset.amazonBeauty, "amazon-beauty-sample", "attention"),
                      (.amazonBeauty, "amazon-beauty-sample", "mean"),
                      (.taobao, "taobao-userbehavior-sample", "attention")])
    func syncClusterEqualsInProcessBitwise(dataset: PrepareOptions.Dataset, sample: String, pooling: String) async throws {
        let data = try ClusterHarness.prepared(dataset, sample: sample, shards: 2)
        var config = ClusterHarness.config(data: data, model: "self-attention", servers: 2, workers: 1, mode: .sync, steps: 40)
        config.model.pooling = pooling
        if dataset == .taobao {
            let slots = try DatasetManifest.load(directory: data).schema.slots.map(\.name)
            #expect(slots.contains("hist_events") && slots.contains("hist_gaps"), "the Taobao sample should have events and gaps: \(slots)")
        }
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        let dense = reference.pullDense()
        #expect(cluster.shards.flatMap { $0.pullDense() } == dense)
        let plan = ShardingPlan(serverCount: 2, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
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
