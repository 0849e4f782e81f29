import Foundation
import Testing
import HeedCore
import HeedCheckpoint
import HeedData
import HeedServer
@testable import heed

/// The `text-tower` model trained by a sync cluster over real nng (the item-text rows,
/// loaded from the committed vectors file, live on the servers) equals the in-process run
/// bitwise; frozen text rows end exactly as the file has them, trained ones move.
@Suite(.serialized) struct TextTowerClusterTests {
    static let vectors = ClusterHarness.repository + "/data/generic-online-retail-sample/item-text-minilm.heedvec"

    /// 1 server + 1 worker (the brief's reference shape) and 2 servers with frozen vectors.
    @Test(arguments: [(1, false), (2, true)])
    func syncClusterEqualsInProcessBitwise(servers: Int, frozen: Bool) async throws {
        let data = try ClusterHarness.prepared(.generic, sample: "generic-online-retail-sample", shards: 2)
        var config = ClusterHarness.config(data: data, model: "text-tower", servers: servers, workers: 1, mode: .sync, steps: 30)
        config.model.textVectors = Self.vectors
        config.model.freezeText = frozen
        config.sparseOptimizer = OptimizerConfig(kind: .adamw, learningRate: 0.01)
        config.sparseOptimizer.weightDecay = 0.01
        config.denseOptimizer = config.sparseOptimizer
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        #expect(cluster.shards.flatMap { $0.pullDense() } == reference.pullDense())
        let plan = ShardingPlan(serverCount: servers, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
        #expect(expected[12]?.count == 2407, "every item's text row is on the servers from the start")
        var compared = 0
        for (table, rows) in expected {
            #expect(rows.count == actual[table]?.count)
            for (key, (step, values)) in rows {
                guard let (s, v) = actual[table]?[key] else { Issue.record("key \(key) missing from the cluster"); continue }
                #expect(s == step && v == values, "row \(key) of table \(table) differs")
                compared += 1
            }
        }
        #expect(compared > 2407)
        #expect(cluster.evaluation?.auc == referenceEval.auc)
        #expect(referenceEval.auc != nil)

        // Frozen: every text row is still the file's row, never updated. Trained: the rows the
        // batches used moved and count their updates.
        let file = try ItemVectors.read(path: Self.vectors)
        let text = actual[12] ?? [:]
        var moved = 0
        for (i, rawID) in file.rawIDs.enumerated() {
            guard let (step, values) = text[FeatureKey(group: 12, id: rawID).rawValue] else { Issue.record("item \(rawID) has no text row"); continue }
            let initial = Array(file.values[(i * 384)..<((i + 1) * 384)])
            if frozen {
                #expect(step == 0 && Array(values[0..<384]) == initial, "frozen row of item \(rawID) changed")
            } else if step > 0 {
                #expect(Array(values[0..<384]) != initial)
                moved += 1
            } else {
                #expect(Array(values[0..<384]) == initial)
            }
        }
        if !frozen { #expect(moved > 500) }
    }
}
