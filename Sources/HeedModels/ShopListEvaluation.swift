import Foundation
import HeedCore
import HeedData

/// Figures of one list kind (cross-sell, upsell, alternatives) over a split.
public struct ShopListFigures: Codable, Equatable, Sendable {
    /// Lists produced (one per record with a history).
    public var lists: Int
    /// Records with ground truth (see `ShopListEvaluation`), and their hit rate / NDCG at the cut-off.
    public var judged: Int
    public var hitRate: Double, ndcg: Double
    /// The same over cold users' records.
    public var coldJudged: Int
    public var coldHitRate: Double, coldNDCG: Double
    /// Listed items that break the list's rule (`ShopListRules.violates`) over all listed items.
    public var violationRate: Double
    /// Listed items over lists (short when few items qualify).
    public var meanLength: Double
    /// Share of the catalogue listed at least once.
    public var coverage: Double
    /// Mean number of distinct categories within a list.
    public var categoryDiversity: Double
    /// Share of listed items outside the head (the 20 % most interacted-with training items).
    public var longTailShare: Double

    /// One line for the terminal.
    public func line(cutoff: Int) -> String {
        String(format: "HR@%d %.4f  NDCG@%d %.4f  (%d judged of %d lists)  cold HR@%d %.4f NDCG@%d %.4f (%d)  violations %.4f  length %.2f  coverage@%d %.4f  categories/list %.2f  long tail %.4f",
               cutoff, hitRate, cutoff, ndcg, judged, lists, cutoff, coldHitRate, cutoff, coldNDCG, coldJudged, violationRate, meanLength,
               cutoff, coverage, categoryDiversity, longTailShare)
    }
}

/// Next-item, cross-sell, upsell and alternatives figures of a `hybrid` model, with the
/// per-record values the paired bootstrap of `heed eval --compare` resamples.
public struct ShopListMetrics: Codable, Equatable, Sendable {
    /// The list length judged (10).
    public var cutoff: Int
    /// Per kind (raw value) its figures, for the kinds the dataset supports.
    public var figures: [String: ShopListFigures]
    /// Per record (in evaluation order): the record's raw user id.
    public var users: [UInt64]
    /// Per record: NDCG at the cut-off of the next item, full ranking with the history left out.
    public var nextNDCG: [Double]
    /// Per record: hit of the next item in the top `cutoff`.
    public var nextHit: [Double]
    /// Per kind: per record its hit (1/0) and NDCG, nil when the record has no ground truth.
    public var hits: [String: [Double?]]
    public var ndcgs: [String: [Double?]]

    /// Lines for the terminal.
    public var summary: String {
        let n = Double(max(nextNDCG.count, 1))
        var lines = [String(format: "next item (full ranking, history excluded): HR@%d %.4f  NDCG@%d %.4f  (%d records)", cutoff,
                            nextHit.reduce(0, +) / n, cutoff, nextNDCG.reduce(0, +) / n, nextNDCG.count)]
        for kind in ShopListKind.allCases {
            if let f = figures[kind.rawValue] { lines.append("\(kind.rawValue): " + f.line(cutoff: cutoff)) }
        }
        return lines.joined(separator: "\n")
    }
}

/// Evaluates the lists of a next-item model that has an `ItemSide` (hybrid) on held-out records.
///
/// Per record (user u, history h, target y; records with an empty history are skipped) the
/// anchor is the most recent history item `a = h.last` and the user vector is the model's
/// after h (so the anchor is what the user just bought). Every catalogue item is scored with
/// one product per block of records; the history's items are left out of every list. The
/// lists (not the next item) use `ShopListEvaluation.listScores`: with `list_gate_weights` the
/// parts are blended with those weights, and with `anchor_weight` β > 0 the user vector leans
/// towards the anchor's item vector (`HybridNetwork.anchoredVectors`).
/// - next item: the full-ranking rank of y (ties against y), as `NextItemEvaluation`;
/// - cross-sell: the top items of categories other than a's; judged against a's also-bought
///   links (`complements`) of another category, outside h (records whose anchor has none are
///   not judged);
/// - alternatives: top items of a's category, judged against a's also-viewed links
///   (`substitutes`) of that category outside h;
/// - upsell (data with prices): the top dearer items of a's category, judged against the
///   target itself where y is such an item (the user did trade up).
/// NDCG uses binary relevance with the ideal DCG of min(|relevant|, K) hits.
public enum ShopListEvaluation {
    /// Evaluates `shards` (a held-out split); `train` gives item popularity for the long tail.
    public static func evaluate(model: any NextItemModel, side: ItemSide, params: any ParameterAccess, shards: [SampleShard],
                                train: [SampleShard], cutoff: Int = 10, coldMaxInteractions: Int = 5,
                                userBlock: Int = 256) async throws -> ShopListMetrics {
        var model = model
        model.loadDenseParameters(try await params.pullDense())
        let scorer = try await ItemScorer.catalog(of: model, params: params)
        guard scorer.keys == side.keys else { throw HeedError(.config, "shop lists: the model's catalogue differs from the item side") }
        let batcher = model.batcher
        let c = scorer.count
        let kinds = ShopListKind.allCases.filter { kind in
            switch kind {
            case .crossSell, .alternatives: side.categories.contains { $0 != FeatureGroup.category.missingKey }
            case .upsell: side.hasPrices
            }
        }
        let head = headItems(train: train, batcher: batcher, side: side)
        var acc = Dictionary(uniqueKeysWithValues: kinds.map { ($0, Accumulator(catalog: c)) })
        var out = ShopListMetrics(cutoff: cutoff, figures: [:], users: [], nextNDCG: [], nextHit: [],
                                  hits: Dictionary(uniqueKeysWithValues: kinds.map { ($0.rawValue, []) }),
                                  ndcgs: Dictionary(uniqueKeysWithValues: kinds.map { ($0.rawValue, []) }))
        for shard in shards {
            var start = 0
            while start < shard.count {
                let records = start..<min(start + userBlock, shard.count)
                start = records.upperBound
                let sample = SampleBatch.gather(from: shard, records: records)
                let keep = (0..<sample.size).filter { !batcher.history(sample, row: $0).isEmpty }
                guard !keep.isEmpty else { continue }
                let histories = keep.map { batcher.history(sample, row: $0) }
                let batch = batcher.inferenceBatch(histories: histories, users: keep.map { sample.userIDs[$0] })
                let inputRows = try await ItemScorer.pullInputRows(of: model, batch: batch, params: params)
                // One forward pass gives the next-item and, where they differ, the lists' user vectors.
                let both = userAndListVectors(model: model, batch: batch, rows: inputRows, anchors: histories.map { $0.last! }, scorer: scorer)
                let users = both?.next ?? model.userVectors(batch, rows: inputRows)
                let scores = scorer.scores(users: users, count: keep.count)
                let anchoredScores = both.map { scorer.scores(users: $0.list, count: keep.count) }
                for (k, r) in keep.enumerated() {
                    let history = histories[k], target = batcher.target(sample, row: r)
                    guard let ti = scorer.index(of: target), let anchor = scorer.index(of: history.last!) else { continue }
                    let historyIndices = Set(history.compactMap { scorer.index(of: $0) })
                    let cold = history.count + 1 <= coldMaxInteractions
                    var row = Array(scores[(k * c)..<((k + 1) * c)])
                    for i in historyIndices where i != ti { row[i] = -Float.infinity }
                    let st = row[ti]
                    let rank = st.isNaN ? c : max(1, row.reduce(0) { $0 + ($1 >= st ? 1 : 0) })
                    out.users.append(sample.userIDs[r])
                    out.nextHit.append(rank <= cutoff ? 1 : 0)
                    out.nextNDCG.append(rank <= cutoff ? 1 / log2(Double(rank) + 1) : 0)
                    if let anchoredScores { row = Array(anchoredScores[(k * c)..<((k + 1) * c)]) }
                    for i in historyIndices { row[i] = -Float.infinity }
                    for kind in kinds {
                        var list = row
                        list.withUnsafeMutableBufferPointer { ShopListRules.restrict($0, kind: kind, anchor: anchor, side: side) }
                        let top = ItemScorer.topK(list[...], k: cutoff)
                        let relevant = groundTruth(kind, anchor: anchor, target: ti, history: historyIndices, side: side)
                        let (hit, ndcg) = judge(top, relevant: relevant, cutoff: cutoff)
                        acc[kind]!.add(top: top, anchor: anchor, kind: kind, side: side, head: head, judged: relevant.isEmpty ? nil : (hit, ndcg), cold: cold)
                        out.hits[kind.rawValue]!.append(relevant.isEmpty ? nil : hit)
                        out.ndcgs[kind.rawValue]!.append(relevant.isEmpty ? nil : ndcg)
                    }
                }
            }
        }
        for kind in kinds { out.figures[kind.rawValue] = acc[kind]!.figures(catalog: c) }
        return out
    }

    /// (B × C) scores of every catalogue item for lists around each record's `anchors` (item
    /// keys), or nil when the model's lists use its next-item scores (not hybrid, or neither
    /// `anchor_weight` nor `list_gate_weights` set). `heed recommend` and this evaluation both make lists from these.
    public static func listScores(model: any NextItemModel, batch: ModelBatch, rows: BatchRows, anchors: [UInt64],
                                  scorer: ItemScorer) -> [Float]? {
        userAndListVectors(model: model, batch: batch, rows: rows, anchors: anchors, scorer: scorer)
            .map { scorer.scores(users: $0.list, count: anchors.count) }
    }

    /// `HybridModel.userAndListVectors` with the anchors' item vectors taken from `scorer`, or
    /// nil when the model's lists use its next-item scores.
    static func userAndListVectors(model: any NextItemModel, batch: ModelBatch, rows: BatchRows, anchors: [UInt64],
                                   scorer: ItemScorer) -> (next: [Float], list: [Float])? {
        guard var hybrid = model as? HybridModel, hybrid.hasListScoring else { return nil }
        let w = scorer.dim
        var vectors = [Float](repeating: 0, count: anchors.count * w)
        for (k, key) in anchors.enumerated() {
            guard let i = scorer.index(of: key) else { continue }
            for j in 0..<w { vectors[k * w + j] = scorer.rows[i * w + j] }
        }
        return hybrid.userAndListVectors(batch, rows: rows, anchors: vectors)
    }

    /// Catalogue indices relevant to a `kind` list around `anchor` (see the type's doc).
    static func groundTruth(_ kind: ShopListKind, anchor: Int, target: Int, history: Set<Int>, side: ItemSide) -> Set<Int> {
        switch kind {
        case .crossSell, .alternatives:
            let links = kind == .crossSell ? side.complements[anchor] : side.substitutes[anchor]
            return Set(links.compactMap { side.index(of: $0) }.filter { i in
                !history.contains(i) && ShopListRules.allows(kind, candidate: i, anchor: anchor, side: side)
            })
        case .upsell:
            return ShopListRules.allows(.upsell, candidate: target, anchor: anchor, side: side) ? [target] : []
        }
    }

    /// Hit (1/0) and NDCG at `cutoff` of `top` against `relevant` (binary relevance).
    static func judge(_ top: [Int], relevant: Set<Int>, cutoff: Int) -> (Double, Double) {
        guard !relevant.isEmpty else { return (0, 0) }
        var dcg = 0.0, hit = 0.0
        for (rank, i) in top.prefix(cutoff).enumerated() where relevant.contains(i) {
            dcg += 1 / log2(Double(rank) + 2)
            hit = 1
        }
        let ideal = (0..<min(relevant.count, cutoff)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
        return (hit, dcg / ideal)
    }

    /// Catalogue indices of the head: the most interacted-with items (history + target of the
    /// training records) that make up the first 20 % of the catalogue by count (ties by index).
    static func headItems(train: [SampleShard], batcher: SASRecBatcher, side: ItemSide) -> Set<Int> {
        var counts = [Int](repeating: 0, count: side.count)
        for shard in train {
            var start = 0
            while start < shard.count {
                let records = start..<min(start + 1024, shard.count)
                start = records.upperBound
                let sample = SampleBatch.gather(from: shard, records: records)
                for r in 0..<sample.size {
                    for key in batcher.history(sample, row: r) + [batcher.target(sample, row: r)] {
                        if let i = side.index(of: key) { counts[i] += 1 }
                    }
                }
            }
        }
        let order = counts.indices.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
        return Set(order.prefix(side.count / 5))
    }

    /// Running sums of one list kind.
    struct Accumulator {
        var lists = 0, listed = 0, violations = 0, judged = 0, coldJudged = 0
        var hits = 0.0, ndcg = 0.0, coldHits = 0.0, coldNDCG = 0.0, categories = 0.0, tail = 0
        var covered: [Bool]
        init(catalog: Int) { covered = [Bool](repeating: false, count: catalog) }

        mutating func add(top: [Int], anchor: Int, kind: ShopListKind, side: ItemSide, head: Set<Int>, judged result: (Double, Double)?, cold: Bool) {
            lists += 1
            listed += top.count
            for i in top {
                covered[i] = true
                if ShopListRules.violates(kind, item: side.keys[i], anchor: side.keys[anchor], side: side) { violations += 1 }
                if !head.contains(i) { tail += 1 }
            }
            categories += Double(Set(top.map { side.categories[$0] }).count)
            if let (h, n) = result {
                judged += 1; hits += h; ndcg += n
                if cold { coldJudged += 1; coldHits += h; coldNDCG += n }
            }
        }

        func figures(catalog: Int) -> ShopListFigures {
            func ratio(_ a: Double, _ b: Int) -> Double { b == 0 ? 0 : a / Double(b) }
            return ShopListFigures(lists: lists, judged: judged, hitRate: ratio(hits, judged), ndcg: ratio(ndcg, judged),
                                   coldJudged: coldJudged, coldHitRate: ratio(coldHits, coldJudged), coldNDCG: ratio(coldNDCG, coldJudged),
                                   violationRate: ratio(Double(violations), listed), meanLength: ratio(Double(listed), lists),
                                   coverage: ratio(Double(covered.filter { $0 }.count), catalog),
                                   categoryDiversity: ratio(categories, lists), longTailShare: ratio(Double(tail), listed))
        }
    }
}
