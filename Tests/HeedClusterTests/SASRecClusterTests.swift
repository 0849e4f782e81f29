import Foundation
import Testing
import HeedCore
import HeedData
import HeedModels
import HeedServer
@testable import heed

/// `sasrec` through a real cluster (coordinator, servers and a worker over nng) against the
/// single-process run, on the bundled Amazon Beauty sample prepared for next-item training.
@Suite(.serialized) struct SASRecClusterTests {
    /// The bundled Beauty sample with `--protocol seq` (history up to 300, above every user),
    /// 2 shards, prepared once per test process.
    static func preparedSequences() throws -> String {
        try lock.withLock {
            let out = NSTemporaryDirectory() + "heed-cluster-beauty-seq-\(getpid())"
            if FileManager.default.fileExists(atPath: out + "/manifest.json") { return out }
            var o = PrepareOptions(dataset: .amazonBeauty, input: ClusterHarness.repository + "/data/amazon-beauty-sample", output: out)
            o.sampleProtocol = .seq
            o.maxLength = 300
            o.shards = 2
            o.overwrite = true
            _ = try Preparer.prepare(o)
            return out
        }
    }

    private static let lock = NSLock()

    /// A small sasrec run config.
    static func config(data: String, loss: NextItemLoss, servers: Int, steps: Int) -> RunConfig {
        var c = ClusterHarness.config(data: data, model: "sasrec", servers: servers, workers: 1, mode: .sync, steps: steps, batch: 128)
        c.model.embeddingDim = 16
        c.model.blocks = 2
        c.model.heads = 2
        c.model.dropout = 0.2
        c.model.maxLength = 20
        c.model.loss = loss.rawValue
        c.model.negatives = 64
        c.sparseOptimizer.learningRate = 0.005
        c.denseOptimizer.learningRate = 0.005
        return c
    }

    /// Sync mode with one worker visits the same batches with the same negatives and dropout
    /// masks as the in-process run and applies the same Adam updates row by row: every row
    /// (with its Adam state), the dense vector and the test ranking figures are bitwise equal.
    @Test(arguments: [(NextItemLoss.bce, 1), (.sampledSoftmax, 2), (.softmax, 1)])
    func syncSASRecWithOneWorkerEqualsInProcessBitwise(loss: NextItemLoss, servers: Int) async throws {
        let config = Self.config(data: try Self.preparedSequences(), loss: loss, servers: servers, steps: 30)
        let (reference, referenceEval) = try await ClusterHarness.runInProcess(config)
        let cluster = try await ClusterHarness.runCluster(config)
        #expect(cluster.outcome == .completed)
        #expect(cluster.shards.flatMap { $0.pullDense() } == reference.pullDense())
        let plan = ShardingPlan(serverCount: servers, slotCount: config.cluster.slots)
        let expected = try snapshot([reference], plan: plan)
        let actual = try snapshot(cluster.shards, plan: plan)
        #expect(Set(expected.keys) == Set(actual.keys))
        var compared = 0, trained = 0
        for (table, rows) in expected {
            #expect(rows.count == actual[table]?.count)
            for (key, (step, values)) in rows {
                guard let (s, v) = actual[table]?[key] else { Issue.record("key \(key) missing from the cluster"); continue }
                #expect(s == step && v == values, "row \(key) of table \(table) differs")
                compared += 1
                if step > 0 { trained += 1 }
            }
        }
        #expect(trained > 1000, "only \(trained) item rows were updated")
        let figures = try #require(referenceEval.nextItem)
        #expect(figures.full.records == 5000)
        let got = try #require(cluster.evaluation?.nextItem)
        #expect(got.full == figures.full && got.sampled == figures.sampled && got.coldFull == figures.coldFull
                && got.coldSampled == figures.coldSampled && got.coverage == figures.coverage)
    }
}
