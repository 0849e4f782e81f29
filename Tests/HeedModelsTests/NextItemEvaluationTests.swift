import Foundation
import HeedCore
import HeedData
import HeedOptim
import HeedServer
import Testing
@testable import HeedModels

/// Full-ranking and sampled next-item metrics against a brute-force reference on a real cut
/// (the first Amazon Beauty users of `data/cuts`, prepared with `--protocol seq`): the
/// reference scores every item with its own dot-product loop in Double, sorts, and draws the
/// documented sampled negatives itself.
@Suite struct NextItemEvaluationTests {
    /// The cut prepared for next-item training, a sasrec model for it and a local shard.
    static func setUp(excludeHistory: Bool) async throws -> (NextItemModel, LocalParameterAccess, DatasetManifest, String) {
        var o = PrepareOptions(dataset: .amazonBeauty, input: TestData.root + "/data/cuts/amazon-beauty", output: TestData.scratch("seq-eval"))
        o.sampleProtocol = .seq
        o.maxLength = 300
        let manifest = try Preparer.prepare(o)
        var config = RunConfig()
        config.model.name = "sasrec"
        config.model.embeddingDim = 8
        config.model.heads = 2
        config.model.maxLength = 6
        config.data.path = o.output
        let (made, _) = try ModelCatalog.make(config, schema: manifest.schema)
        let model = made as! any NextItemModel
        let table = EmbeddingTableConfig(name: "items", dim: 8, initializer: .normal(scale: 0.5), optimizer: .adam(AdamConfig(lr: 0.01)), seed: 3)
        let shard = try ParameterShard(rank: 0, serverCount: 1, tableConfigs: [model.itemTable: table], initialDense: model.denseParameters(),
                                       denseOptimizer: .adam(AdamConfig(lr: 0.01)), tableOptions: EmbeddingTableOptions(stripes: 1, hugePages: false))
        return (model, LocalParameterAccess(shard: shard), manifest, o.output)
    }

    @Test(arguments: [true, false])
    func metricsEqualABruteForceRanking(excludeHistory: Bool) async throws {
        let (model, access, manifest, directory) = try await Self.setUp(excludeHistory: excludeHistory)
        var options = NextItemEvaluationOptions()
        options.excludeHistory = excludeHistory
        options.sampledNegatives = 20
        options.userBlock = 7   // several blocks, one partial
        options.seed = 11
        let shards = try manifest.open(.test, directory: directory)
        let metrics = try await NextItemEvaluation.evaluate(model: model, params: access, shards: shards, options: options)

        // Reference: every catalogue row and every record's user vector, then textbook ranking.
        let catalog = try ModelCatalog.catalogKeys(dataDirectory: directory)
        let rows = try await access.pullRows(table: model.itemTable, keys: catalog)
        var m = model
        m.loadDenseParameters(try await access.pullDense())
        let d = model.embeddingDim, c = catalog.count
        var ranks: [Int] = [], sampledRanks: [Int] = [], cold: [Bool] = []
        var covered = Set<UInt64>()
        for shard in shards {
            let sample = SampleBatch.gather(from: shard, records: 0..<shard.count)
            let batch = m.batcher.inferenceBatch(sample)
            var tables: [UInt8: BatchRows.Table] = [:]
            for (t, keys) in batch.uniqueKeysByTable() {
                tables[t] = BatchRows.Table(keys: keys, dim: d, values: try await access.pullRows(table: t, keys: keys))
            }
            let users = m.userVectors(batch, rows: BatchRows(tables: tables))
            let hs = sample.schema.slotIndex("hist_items")!, ts = sample.schema.slotIndex("item")!
            for r in 0..<sample.size {
                let target = shard.keys(slot: ts, record: r)[0]
                let history = Set(shard.keys(slot: hs, record: r))
                var scored: [(key: UInt64, score: Double)] = []
                for (i, key) in catalog.enumerated() {
                    var s = 0.0
                    for j in 0..<d { s += Double(users[r * d + j]) * Double(rows[i * d + j]) }
                    scored.append((key, s))
                }
                let targetScore = scored.first { $0.key == target }!.score
                let candidates = scored.filter { !excludeHistory || $0.key == target || !history.contains($0.key) }
                // Ties count against the target: rank = 1 + others scoring at least as high.
                ranks.append(1 + candidates.filter { $0.key != target && $0.score >= targetScore }.count)
                let top = candidates.sorted { $0.score != $1.score ? $0.score > $1.score : catalog.firstIndex(of: $0.key)! < catalog.firstIndex(of: $1.key)! }.prefix(10)
                covered.formUnion(top.map(\.key))
                // The documented draw: distinct catalogue indices outside history and target.
                var rng = SeededGenerator(seed: KeyHash.mix64(options.seed ^ KeyHash.mix64(shard.userID(r)) ^ KeyHash.mix64(target)))
                var excluded = Set(history.compactMap { catalog.firstIndex(of: $0) } + [catalog.firstIndex(of: target)!])
                var negatives: [Int] = []
                while negatives.count < min(options.sampledNegatives, c - excluded.count) {
                    let j = Int(rng.next() % UInt64(c))
                    if excluded.insert(j).inserted { negatives.append(j) }
                }
                sampledRanks.append(1 + negatives.filter { scored[$0].score >= targetScore }.count)
                cold.append(history.count + 1 <= options.coldMaxInteractions)
            }
        }
        func expectFigures(_ f: RankingFigures, _ ranks: [Int], _ what: String) {
            #expect(f.records == ranks.count, "\(what)")
            for k in options.cutoffs {
                let hr = Double(ranks.filter { $0 <= k }.count) / Double(max(ranks.count, 1))
                let ndcg = ranks.filter { $0 <= k }.map { 1 / log2(Double($0) + 1) }.reduce(0, +) / Double(max(ranks.count, 1))
                #expect(abs(f.hitRate[String(k)]! - hr) < 1e-9, "\(what) HR@\(k): \(f.hitRate[String(k)]!) vs \(hr)")
                #expect(abs(f.ndcg[String(k)]! - ndcg) < 1e-9, "\(what) NDCG@\(k): \(f.ndcg[String(k)]!) vs \(ndcg)")
            }
            let mrr = ranks.map { 1 / Double($0) }.reduce(0, +) / Double(max(ranks.count, 1))
            #expect(abs(f.mrr - mrr) < 1e-9, "\(what) MRR")
        }
        #expect(ranks.count > 20 && Set(ranks).count > 5, "degenerate ranks \(ranks)")
        expectFigures(metrics.full, ranks, "full")
        expectFigures(metrics.sampled, sampledRanks, "sampled")
        expectFigures(metrics.coldFull, zip(ranks, cold).filter(\.1).map(\.0), "cold full")
        expectFigures(metrics.coldSampled, zip(sampledRanks, cold).filter(\.1).map(\.0), "cold sampled")
        #expect(metrics.coldFull.records > 0 && metrics.coldFull.records < ranks.count)
        #expect(abs(metrics.coverage - Double(covered.count) / Double(c)) < 1e-12)
        #expect(metrics.catalogItems == c)
    }

    /// The SASRec authors' draw (`heed eval --negative-draw sasrec-code`): with replacement,
    /// uniform, rejecting only the training items, so the validation answer and the target can
    /// be drawn; the documented generator, reimplemented here, gives the same draws.
    @Test func sasrecCodeDrawRejectsOnlyTrainingItems() {
        // Catalogue indices 0..<8: training items 0-3, validation answer 4, target 5.
        let negatives = Ranker.sasrecCodeNegatives(count: 400, catalog: 8, training: [0, 1, 2, 3], seed: 7)
        var rng = SeededGenerator(seed: 7)
        var expected: [Int] = []
        while expected.count < 400 {
            let j = Int(rng.next() % 8)
            if j >= 4 { expected.append(j) }
        }
        #expect(negatives == expected)
        #expect(Set(negatives) == [4, 5, 6, 7], "the validation answer and the target must be drawable")
        #expect(Ranker.sasrecCodeNegatives(count: 5, catalog: 3, training: [0, 1, 2], seed: 1) == [])
    }

    /// Through the ranker: on the test split (one held-out history item) the validation answer
    /// can be a negative, and every drawn item scoring at least the target's score (a drawn
    /// copy of the target included) counts against it; on the valid split it cannot be drawn.
    @Test(arguments: [1, 0])
    func sasrecCodeDrawRanksTheTargetAmongItsDraws(heldOut: Int) {
        let keys: [UInt64] = (10..<18).map { UInt64($0) }
        // Scores per index; the validation answer (index 4) scores highest, the target (5) third.
        let scores: [Float] = [9, 8, 7, 6, 10, 5, 4, 6]
        let scorer = ItemScorer(keys: keys, dim: 1, rows: scores)
        var options = NextItemEvaluationOptions()
        options.sampledDraw = .sasrecCode
        options.heldOutHistoryItems = heldOut
        options.sampledNegatives = 30
        options.seed = 3
        var ranker = Ranker(scorer: scorer, options: options)
        let user: UInt64 = 9, target = keys[5]
        ranker.add(scores: scores[...], user: user, target: target, history: keys[0..<5])
        let training = Array(0..<(5 - heldOut))
        let drawn = Ranker.sasrecCodeNegatives(count: 30, catalog: 8, training: training,
                                               seed: KeyHash.mix64(3 ^ KeyHash.mix64(user) ^ KeyHash.mix64(target)))
        #expect(drawn.contains(4) == (heldOut == 1), "draws \(drawn)")
        #expect(drawn.contains(5), "draws \(drawn)")
        let rank = 1 + drawn.filter { scores[$0] >= scores[5] }.count
        let figures = ranker.metrics(seconds: 0).sampled
        #expect(figures.records == 1)
        #expect(abs(figures.mrr - 1 / Double(rank)) < 1e-12, "MRR \(figures.mrr), rank \(rank)")
    }

    @Test func topKIsTheSortedPrefixWithTiesByIndex() {
        let scores: [Float] = [0.5, 2, -.infinity, 2, 1, 7, -1, 1]
        #expect(ItemScorer.topK(scores[...], k: 4) == [5, 1, 3, 4])
        #expect(ItemScorer.topK(scores[...], k: 20) == [5, 1, 3, 4, 7, 0, 6])
        #expect(ItemScorer.topK(scores[...], k: 0) == [])
    }

    @Test func scorerProductEqualsDotProducts() {
        let keys: [UInt64] = [3, 8, 20]
        let scorer = ItemScorer(keys: keys, dim: 2, rows: [1, 2, -1, 0.5, 3, -2])
        let s = scorer.scores(users: [1, 1, 2, -1], count: 2)
        #expect(s == [3, -0.5, 1, 0, -2.5, 8])
        #expect(scorer.index(of: 8) == 1 && scorer.index(of: 9) == nil)
    }
}
