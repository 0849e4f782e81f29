import Foundation
import HeedCore
import HeedData

/// How next-item records are ranked and which figures are reported.
public struct NextItemEvaluationOptions: Codable, Equatable, Sendable {
    /// The K of HR@K and NDCG@K.
    public var cutoffs = [5, 10, 20]
    /// Full ranking: leave the items of the record's history out of the candidates (the
    /// S3-Rec/ICLRec protocol, which scores them 0 in `FinetuneTrainer`; here they are left out
    /// entirely). The target itself is never left out, even if it was bought before.
    public var excludeHistory = true
    /// Negatives of the sampled protocol (SASRec: 100): distinct catalogue items outside the
    /// user's items (history and target), uniform, drawn from
    /// `SeededGenerator(seed: mix64(seed ^ mix64(user) ^ mix64(target)))`.
    public var sampledNegatives = 100
    /// Seed of the sampled negatives.
    public var seed: UInt64 = 1
    /// A record is cold when its user has at most this many interactions up to and
    /// including the predicted one (history + 1); on the test split of leave-one-out data,
    /// the users with at most this many interactions.
    public var coldMaxInteractions = 5
    /// Records scored per matrix product.
    public var userBlock = 256
    /// Length of the lists whose catalogue coverage is reported.
    public var coverageCutoff = 10

    public init() {}
}

/// HR@K, NDCG@K and MRR over a set of ranked records.
public struct RankingFigures: Codable, Equatable, Sendable {
    /// Records ranked.
    public var records: Int
    /// K → hit rate at K (keys are the cut-offs as strings, for JSON).
    public var hitRate: [String: Double]
    /// K → NDCG at K (one relevant item, so IDCG = 1).
    public var ndcg: [String: Double]
    /// Mean reciprocal rank (over the whole ranking, no cut-off).
    public var mrr: Double

    /// The figures of accumulated ranks.
    public init(_ m: RankingMetrics) {
        records = m.count
        hitRate = Dictionary(uniqueKeysWithValues: m.cutoffs.map { (String($0), m.hitRate(at: $0)) })
        ndcg = Dictionary(uniqueKeysWithValues: m.cutoffs.map { (String($0), m.ndcg(at: $0)) })
        mrr = m.mrr
    }

    /// `HR@5 … NDCG@5 … MRR` on one line.
    public func line(cutoffs: [Int]) -> String {
        let hr = cutoffs.map { String(format: "HR@%d %.4f", $0, hitRate[String($0)] ?? 0) }
        let nd = cutoffs.map { String(format: "NDCG@%d %.4f", $0, ndcg[String($0)] ?? 0) }
        return (hr + nd).joined(separator: "  ") + String(format: "  MRR %.4f  (%d records)", mrr, records)
    }
}

/// Next-item figures of one split.
public struct NextItemMetrics: Codable, Equatable, Sendable {
    /// How they were computed.
    public var options: NextItemEvaluationOptions
    /// Candidates of the full ranking (the catalogue).
    public var catalogItems: Int
    /// Full ranking over the catalogue.
    public var full: RankingFigures
    /// The target against `options.sampledNegatives` sampled negatives.
    public var sampled: RankingFigures
    /// `full` restricted to cold records.
    public var coldFull: RankingFigures
    /// `sampled` restricted to cold records.
    public var coldSampled: RankingFigures
    /// Share of the catalogue that appears in at least one record's top-`coverageCutoff` list.
    public var coverage: Double
    /// Seconds spent scoring and ranking (user vectors, products, ranks; not the row pulls).
    public var scoringSeconds: Double

    /// Lines for the terminal.
    public var summary: String {
        let c = options.cutoffs
        return ["full ranking (\(catalogItems) items\(options.excludeHistory ? ", history excluded" : "")): " + full.line(cutoffs: c),
                "\(options.sampledNegatives) sampled negatives: " + sampled.line(cutoffs: c),
                "cold users (<= \(options.coldMaxInteractions) interactions), full: " + coldFull.line(cutoffs: c),
                "cold users, sampled: " + coldSampled.line(cutoffs: c),
                String(format: "catalogue coverage@%d %.4f  scoring %.2f s", options.coverageCutoff, coverage, scoringSeconds)]
            .joined(separator: "\n")
    }
}

/// Ranks held-out next items with a `NextItemModel` whose parameters live behind a
/// `ParameterAccess` (a local shard or the servers).
public enum NextItemEvaluation {
    /// Evaluates every record of `shards`.
    ///
    /// The dense vector and every catalogue row are pulled once; each block of
    /// `options.userBlock` records then costs one pull of its history rows, one forward and
    /// one (B × D)·(D × C) product. Per record: the full-ranking rank of the target
    /// (1 + the candidates scoring at least as high; ties count against the target), the
    /// rank among the sampled negatives, and the top-`coverageCutoff` list for coverage.
    public static func evaluate(model: any NextItemModel, params: any ParameterAccess, shards: [SampleShard],
                                options: NextItemEvaluationOptions = NextItemEvaluationOptions()) async throws -> NextItemMetrics {
        var model = model
        model.loadDenseParameters(try await params.pullDense())
        let batcher = model.batcher
        guard !batcher.catalog.isEmpty else { throw HeedError(.config, "next-item evaluation: the model has no catalogue") }
        let scorer = try await ItemScorer.catalog(of: model, params: params)
        var ranker = Ranker(scorer: scorer, options: options)
        var seconds = 0.0
        for shard in shards {
            var start = 0
            while start < shard.count {
                let records = start..<min(start + options.userBlock, shard.count)
                start = records.upperBound
                let sample = SampleBatch.gather(from: shard, records: records)
                let batch = batcher.inferenceBatch(sample)
                let rows = try await ItemScorer.pullInputRows(of: model, batch: batch, params: params)
                let clock = Date()
                let users = model.userVectors(batch, rows: rows)
                var scores = scorer.scores(users: users, count: sample.size)
                let c = scorer.count
                scores.withUnsafeMutableBufferPointer { all in
                    for r in 0..<sample.size {
                        // Safe: row r of the (B × C) scores.
                        ranker.add(scores: UnsafeMutableBufferPointer(rebasing: all[(r * c)..<((r + 1) * c)]),
                                   user: sample.userIDs[r], target: batcher.target(sample, row: r),
                                   history: batcher.history(sample, row: r))
                    }
                }
                seconds += Date().timeIntervalSince(clock)
            }
        }
        return ranker.metrics(seconds: seconds)
    }
}

/// Accumulates next-item ranks from each record's scores over the catalogue.
public struct Ranker: Sendable {
    /// The candidates.
    public let scorer: ItemScorer
    public let options: NextItemEvaluationOptions
    var full: RankingMetrics, sampled: RankingMetrics, coldFull: RankingMetrics, coldSampled: RankingMetrics
    /// Per catalogue item: whether it appeared in some top list.
    var covered: [Bool]

    public init(scorer: ItemScorer, options: NextItemEvaluationOptions) {
        self.scorer = scorer
        self.options = options
        full = RankingMetrics(cutoffs: options.cutoffs); sampled = full; coldFull = full; coldSampled = full
        covered = [Bool](repeating: false, count: scorer.count)
    }

    /// Folds in one record (copies its scores; see the in-place form).
    public mutating func add(scores: ArraySlice<Float>, user: UInt64, target: UInt64, history: ArraySlice<UInt64>) {
        var row = Array(scores)
        row.withUnsafeMutableBufferPointer { add(scores: $0, user: user, target: target, history: history) }
    }

    /// Folds in one record.
    /// - Parameters:
    ///   - scores: (C) the record's scores over the catalogue, in `scorer.keys` order; used as
    ///     scratch (history entries become −∞).
    ///   - user: raw user id (seeds the sampled negatives).
    ///   - target: the held-out item's key; a target outside the catalogue is an error the
    ///     caller avoids (every prepared item is in the catalogue).
    ///   - history: the items before the target.
    public mutating func add(scores row: UnsafeMutableBufferPointer<Float>, user: UInt64, target: UInt64, history: ArraySlice<UInt64>) {
        guard let ti = scorer.index(of: target) else { preconditionFailure("next-item evaluation: target \(FeatureKey(rawValue: target)) is not in the catalogue") }
        precondition(row.count == scorer.count, "next-item evaluation: \(row.count) scores for \(scorer.count) items")
        let st = row[ti]
        var historyIndices: [Int] = []
        historyIndices.reserveCapacity(history.count)
        for k in history { if let i = scorer.index(of: k) { historyIndices.append(i) } }
        let cold = history.count + 1 <= options.coldMaxInteractions

        // Sampled protocol (its negatives are never history items, so exclusion does not matter).
        let negatives = Self.sampledNegatives(count: options.sampledNegatives, catalog: scorer.count, target: ti,
                                              history: historyIndices, seed: KeyHash.mix64(options.seed ^ KeyHash.mix64(user) ^ KeyHash.mix64(target)))
        var sampledRank = 1
        for j in negatives where row[j] >= st { sampledRank += 1 }
        sampled.add(rank: sampledRank)
        if cold { coldSampled.add(rank: sampledRank) }

        if options.excludeHistory {
            for i in historyIndices where i != ti { row[i] = -Float.infinity }
        }
        // Every candidate scoring at least the target's ranks above it (the target counts itself once).
        var atLeast = 0
        for j in 0..<row.count where row[j] >= st { atLeast += 1 }
        let fullRank = st.isNaN ? row.count : max(1, atLeast)
        full.add(rank: fullRank)
        if cold { coldFull.add(rank: fullRank) }
        for i in ItemScorer.topK(UnsafeBufferPointer(row), k: options.coverageCutoff) { covered[i] = true }
    }

    /// `count` distinct catalogue indices, none the target or in `history`, uniform from a
    /// generator seeded with `seed` (fewer if the catalogue runs out).
    public static func sampledNegatives(count: Int, catalog: Int, target: Int, history: [Int], seed: UInt64) -> [Int] {
        var excluded = Set(history)
        excluded.insert(target)
        let available = catalog - excluded.count
        let n = min(count, max(available, 0))
        var rng = SeededGenerator(seed: seed)
        var picked: [Int] = []
        picked.reserveCapacity(n)
        while picked.count < n {
            let j = Int(rng.next() % UInt64(catalog))
            if excluded.insert(j).inserted { picked.append(j) }
        }
        return picked
    }

    /// The figures so far.
    public func metrics(seconds: Double) -> NextItemMetrics {
        NextItemMetrics(options: options, catalogItems: scorer.count, full: RankingFigures(full), sampled: RankingFigures(sampled),
                        coldFull: RankingFigures(coldFull), coldSampled: RankingFigures(coldSampled),
                        coverage: scorer.count == 0 ? 0 : Double(covered.filter { $0 }.count) / Double(scorer.count),
                        scoringSeconds: seconds)
    }
}
