import Testing
@testable import HeedModels

@Suite struct MetricsTests {
    @Test func aucCountsCorrectlyOrderedPairs() {
        // Pairs (pos, neg): (0.9,0.1) ok, (0.9,0.8) ok, (0.4,0.1) ok, (0.4,0.8) wrong → 3/4.
        #expect(Metrics.auc(scores: [0.9, 0.4, 0.1, 0.8], labels: [1.0, 1, 0, 0]) == 0.75)
        #expect(Metrics.auc(scores: [0.1, 0.9], labels: [1.0, 0]) == 0)
        #expect(Metrics.auc(scores: [0.5, 0.5, 0.5], labels: [1.0, 0, 0]) == 0.5)
        #expect(Metrics.auc(scores: [0.5, 0.2], labels: [1.0, 1]) == nil)
    }

    @Test func aucMatchesBruteForcePairCount() {
        var rng = SplitRandom(seed: 3)
        let n = 500
        let scores = (0..<n).map { _ in Double(Int(rng.next() % 50)) }  // many ties
        let labels = (0..<n).map { _ in rng.next() % 3 == 0 ? 1.0 : 0.0 }
        var good = 0.0, pairs = 0.0
        for i in 0..<n where labels[i] == 1 {
            for j in 0..<n where labels[j] == 0 {
                pairs += 1
                good += scores[i] > scores[j] ? 1 : (scores[i] == scores[j] ? 0.5 : 0)
            }
        }
        #expect(abs(Metrics.auc(scores: scores, labels: labels)! - good / pairs) < 1e-12)
    }

    @Test func gaucWeightsUsersByImpressionsAndSkipsOneClassUsers() {
        // user 1: 4 impressions, AUC 0.75; user 2: 2 impressions, AUC 0; user 3: positives only.
        let scores = [0.9, 0.4, 0.1, 0.8, 0.1, 0.9, 0.3]
        let labels = [1.0, 1, 0, 0, 1, 0, 1]
        let users: [UInt64] = [1, 1, 1, 1, 2, 2, 3]
        #expect(abs(Metrics.gauc(scores: scores, labels: labels, users: users)! - (4 * 0.75 + 2 * 0) / 6) < 1e-12)
    }

    @Test func logLossAtHalfIsLnTwo() {
        #expect(abs(Metrics.logLoss(probabilities: [0.5, 0.5], labels: [1.0, 0]) - 0.6931471805599453) < 1e-12)
        #expect(Metrics.logLoss(probabilities: [1.0], labels: [0.0]) < 17)  // clamped, finite
    }

    @Test func relaImprFollowsTheDINDefinition() {
        #expect(abs(Metrics.relaImpr(auc: 0.8, baseAUC: 0.75) - 20) < 1e-9)
    }

    @Test func rankingMetricsFromRanks() {
        #expect(Metrics.rank(positive: 0.5, negatives: [0.1, 0.7, 0.5]) == 3)
        var m = RankingMetrics(cutoffs: [1, 10])
        m.add(rank: 1); m.add(rank: 3); m.add(rank: 20)
        #expect(abs(m.hitRate(at: 1) - 1.0 / 3) < 1e-12)
        #expect(abs(m.hitRate(at: 10) - 2.0 / 3) < 1e-12)
        #expect(abs(m.ndcg(at: 10) - (1 + 0.5) / 3) < 1e-12)
        #expect(abs(m.mrr - (1 + 1.0 / 3 + 1.0 / 20) / 3) < 1e-12)
    }
}

/// A tiny local generator so this test does not depend on HeedCore's.
struct SplitRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
