import Foundation
import Testing
import HeedCore
import HeedCheckpoint
import HeedData
import HeedServer
@testable import heed

/// The `long-term-interest` model (both encoders, and its twin without neighbours) trained by
/// a sync cluster over real nng (every embedding row and dense weight on the servers) equals
/// the in-process run bitwise, on the committed Ciao cut (real ratings, categories and trust
/// links: `data/cuts/ciao`).
@Suite(.serialized) struct LongTermInterestClusterTests {
    @Test(arguments: [("gru", true, 1), ("self-attention", true, 1), ("gru", false, 2)])
    func syncClusterEqualsInProcessBitwise(encoder: String, neighbors: Bool, servers: Int) async throws {
        let data = try ClusterHarness.prepared(.ciao, sample: "cuts/ciao", shards: 2)
        let slots = try DatasetManifest.load(directory: data).schema.slots.map(\.name)
        #expect(slots.contains("neighbors") && slots.contains("hist_categories"), "the Ciao cut should have trust links and categories: \(slots)")
        var config = ClusterHarness.config(data: data, model: "long-term-interest", servers: servers, workers: 1, mode: .sync, epochs: 3, batch: 32)
        config.model.encoder = encoder
        config.model.heads = 2
        config.model.useNeighbors = neighbors
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        let dense = reference.pullDense()
        #expect(cluster.shards.flatMap { $0.pullDense() } == dense)
        let plan = ShardingPlan(serverCount: servers, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
        #expect(expected[1] != nil && expected[3] != nil, "user and category rows live on the servers")
        var compared = 0
        for (table, rows) in expected {
            #expect(rows.count == actual[table]?.count)
            for (key, (step, values)) in rows {
                guard let (s, v) = actual[table]?[key] else { Issue.record("key \(key) missing from the cluster"); continue }
                #expect(s == step && v == values, "row \(key) of table \(table) differs")
                compared += 1
            }
        }
        #expect(compared > 300)
        #expect(cluster.evaluation?.auc == referenceEval.auc)
        #expect(referenceEval.auc != nil)
    }
}
