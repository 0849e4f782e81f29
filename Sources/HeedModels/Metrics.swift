#if canImport(Glibc)
import Glibc
#endif

/// Offline evaluation metrics for CTR and next-item models.
///
/// - AUC: probability that a random positive outscores a random negative (ties count ½),
///   computed from average ranks (Mann–Whitney U).
/// - GAUC: per-user AUC weighted by the user's impression count, over users that have at
///   least one positive and one negative (DIN paper, Zhou et al. 2018, eq. 11).
/// - Log loss: mean binary cross-entropy with probabilities clamped to [1e-7, 1 − 1e-7].
/// - HR@K / NDCG@K / MRR: from the 1-based rank of the held-out item among candidates.
public enum Metrics {
    /// Area under the ROC curve; `nil` if there is no positive or no negative.
    /// - Parameters:
    ///   - scores: (N) model scores (any monotone scale).
    ///   - labels: (N) labels; > 0.5 counts as positive.
    public static func auc<S: BinaryFloatingPoint, L: BinaryFloatingPoint>(scores: [S], labels: [L]) -> Double? {
        precondition(scores.count == labels.count, "auc: \(scores.count) scores vs \(labels.count) labels")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var positives = 0.0, negatives = 0.0, positiveRankSum = 0.0
        var i = 0
        while i < order.count {
            // A tie group shares the average of its 1-based ranks.
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j + 2) / 2
            for k in i...j {
                if labels[order[k]] > 0.5 { positives += 1; positiveRankSum += averageRank } else { negatives += 1 }
            }
            i = j + 1
        }
        guard positives > 0, negatives > 0 else { return nil }
        return (positiveRankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Impression-weighted per-user AUC; `nil` if no user has both classes.
    /// - Parameter users: (N) user id per sample.
    public static func gauc<S: BinaryFloatingPoint, L: BinaryFloatingPoint>(scores: [S], labels: [L], users: [UInt64]) -> Double? {
        precondition(scores.count == labels.count && labels.count == users.count, "gauc: lengths differ")
        var byUser: [UInt64: [Int]] = [:]
        for (i, u) in users.enumerated() { byUser[u, default: []].append(i) }
        var weighted = 0.0, weight = 0.0
        for (_, idx) in byUser {
            guard let a = auc(scores: idx.map { scores[$0] }, labels: idx.map { labels[$0] }) else { continue }
            weighted += Double(idx.count) * a
            weight += Double(idx.count)
        }
        return weight > 0 ? weighted / weight : nil
    }

    /// Mean binary cross-entropy of probabilities `p` against 0/1 labels.
    public static func logLoss<S: BinaryFloatingPoint, L: BinaryFloatingPoint>(probabilities p: [S], labels: [L]) -> Double {
        precondition(p.count == labels.count && !p.isEmpty, "logLoss: lengths differ or empty")
        var total = 0.0
        for i in p.indices {
            let q = min(max(Double(p[i]), 1e-7), 1 - 1e-7)
            total -= labels[i] > 0.5 ? log(q) : log(1 - q)
        }
        return total / Double(p.count)
    }

    /// Relative improvement of `auc` over `baseAUC`, as the DIN paper defines it:
    /// `((auc − 0.5) / (base − 0.5) − 1) × 100` percent.
    public static func relaImpr(auc: Double, baseAUC: Double) -> Double {
        ((auc - 0.5) / (baseAUC - 0.5) - 1) * 100
    }

    /// 1-based rank of the positive among candidates; ties are resolved against the positive
    /// (a candidate scoring equal to the positive ranks above it), so a constant model does not
    /// look perfect.
    public static func rank<S: BinaryFloatingPoint>(positive: S, negatives: some Sequence<S>) -> Int {
        var r = 1
        for s in negatives where s >= positive { r += 1 }
        return r
    }
}

/// Accumulates HR@K, NDCG@K and MRR over ranked test cases.
public struct RankingMetrics: Sendable {
    /// The cut-offs reported (e.g. 5, 10, 20).
    public let cutoffs: [Int]
    /// Number of test cases folded in.
    public private(set) var count = 0
    private var hits: [Double]
    private var ndcg: [Double]
    private var reciprocalRankSum = 0.0

    public init(cutoffs: [Int] = [5, 10, 20]) {
        self.cutoffs = cutoffs
        hits = Array(repeating: 0, count: cutoffs.count)
        ndcg = Array(repeating: 0, count: cutoffs.count)
    }

    /// Folds in one held-out item's 1-based rank.
    public mutating func add(rank: Int) {
        count += 1
        reciprocalRankSum += 1 / Double(rank)
        for (i, k) in cutoffs.enumerated() where rank <= k {
            hits[i] += 1
            ndcg[i] += 1 / log2(Double(rank) + 1)
        }
    }

    /// Hit rate at cut-off `k` (must be one of `cutoffs`).
    public func hitRate(at k: Int) -> Double { count == 0 ? 0 : hits[cutoffs.firstIndex(of: k)!] / Double(count) }
    /// NDCG at cut-off `k` with a single relevant item (IDCG = 1).
    public func ndcg(at k: Int) -> Double { count == 0 ? 0 : ndcg[cutoffs.firstIndex(of: k)!] / Double(count) }
    /// Mean reciprocal rank.
    public var mrr: Double { count == 0 ? 0 : reciprocalRankSum / Double(count) }
}
