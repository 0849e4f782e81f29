import HeedCore

/// Offline A/B of two models scored on the same samples: a paired bootstrap by user of the
/// difference B − A of AUC, GAUC and log loss, with a percentile interval.
///
/// The users (in order of first appearance) are the resampling unit, because a user's
/// samples are correlated. Resample r draws U users with replacement, user index
/// `generator.next() % U` each, from one `SeededGenerator(seed:)` shared by all resamples in
/// order; a user drawn k times counts k times (all of its samples). Both models are scored on
/// the same resample (paired), so the interval is of the difference itself. Each resample's
/// metrics equal `Metrics.auc/gauc/logLoss` on the concatenated drawn samples; they are
/// computed from per-user sums and one sort per model instead, so 1,000 resamples cost
/// O(1000 · N) rather than O(1000 · N log N).
public enum PairedBootstrap {
    /// One metric of A and B on all samples, their difference, and its interval.
    public struct Comparison: Codable, Equatable, Sendable {
        /// `auc`, `gauc` or `log_loss`.
        public var metric: String
        /// The metric of A and of B on all samples (nil where undefined).
        public var a: Double?, b: Double?
        /// B − A on all samples.
        public var difference: Double?
        /// Percentile interval of B − A over the resamples where both are defined.
        public var lower: Double?, upper: Double?
        /// Resamples where both metrics were defined.
        public var resamples: Int
    }

    /// Compares A's and B's scores of the same samples.
    ///
    /// - Parameters:
    ///   - a: (N) model A's probabilities.
    ///   - b: (N) model B's probabilities, for the same samples in the same order.
    ///   - labels: (N) 0/1 labels.
    ///   - users: (N) user id of each sample.
    ///   - resamples: bootstrap resamples (1,000 in reports).
    ///   - seed: seeds the user draws.
    ///   - confidence: the interval's coverage (0.95).
    /// - Returns: AUC, GAUC, log loss, in that order.
    public static func compare(a: [Float], b: [Float], labels: [Float], users: [UInt64], resamples: Int, seed: UInt64,
                               confidence: Double = 0.95) -> [Comparison] {
        precondition(a.count == b.count && b.count == labels.count && labels.count == users.count, "paired bootstrap: lengths differ")
        var userIndex: [UInt64: Int] = [:]
        var sampleUser = [Int](repeating: 0, count: users.count)
        for (i, u) in users.enumerated() {
            if let k = userIndex[u] { sampleUser[i] = k } else { sampleUser[i] = userIndex.count; userIndex[u] = userIndex.count }
        }
        let userCount = userIndex.count
        let scoredA = Scored(scores: a, labels: labels, sampleUser: sampleUser, userCount: userCount)
        let scoredB = Scored(scores: b, labels: labels, sampleUser: sampleUser, userCount: userCount)

        let all = [Double](repeating: 1, count: userCount)
        let fullA = scoredA.metrics(userWeights: all), fullB = scoredB.metrics(userWeights: all)
        var differences: [[Double]] = [[], [], []]
        var rng = SeededGenerator(seed: seed)
        var weights = [Double](repeating: 0, count: userCount)
        for _ in 0..<resamples where userCount > 0 {
            for k in 0..<userCount { weights[k] = 0 }
            for _ in 0..<userCount { weights[Int(rng.next() % UInt64(userCount))] += 1 }
            let ma = scoredA.metrics(userWeights: weights), mb = scoredB.metrics(userWeights: weights)
            for m in 0..<3 {
                if let x = ma[m], let y = mb[m] { differences[m].append(y - x) }
            }
        }
        let names = ["auc", "gauc", "log_loss"]
        let tail = (1 - confidence) / 2
        return (0..<3).map { m in
            let sorted = differences[m].sorted()
            let difference: Double? = if let x = fullA[m], let y = fullB[m] { y - x } else { nil }
            return Comparison(metric: names[m], a: fullA[m], b: fullB[m], difference: difference,
                              lower: percentile(sorted, tail), upper: percentile(sorted, 1 - tail), resamples: sorted.count)
        }
    }

    /// The q-quantile of ascending `sorted` with linear interpolation between order
    /// statistics (position q·(n − 1), NumPy's default); nil when empty.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let position = q * Double(sorted.count - 1)
        let lo = Int(position.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        let fraction = position - Double(lo)
        return sorted[lo] + fraction * (sorted[hi] - sorted[lo])
    }

    /// One model's scores, pre-digested for weighted metrics.
    struct Scored {
        /// Samples by ascending score, cut into tie groups: `groups[g] ..< groups[g + 1]`.
        let order: [Int]
        let groups: [Int]
        let labels: [Float]
        let sampleUser: [Int]
        /// Per user: AUC of its own samples (nil without both classes), sample count, summed log loss.
        let userAUC: [Double?]
        let userCount: [Double]
        let userLoss: [Double]

        init(scores: [Float], labels: [Float], sampleUser: [Int], userCount users: Int) {
            order = scores.indices.sorted { scores[$0] < scores[$1] }
            var groups: [Int] = []
            var i = 0
            while i < order.count {
                groups.append(i)
                var j = i
                while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
                i = j + 1
            }
            groups.append(order.count)
            self.groups = groups
            self.labels = labels
            self.sampleUser = sampleUser
            var members = [[Int]](repeating: [], count: users)
            var loss = [Double](repeating: 0, count: users)
            for s in scores.indices {
                members[sampleUser[s]].append(s)
                loss[sampleUser[s]] += Metrics.logLoss(probabilities: [scores[s]], labels: [labels[s]])
            }
            userAUC = members.map { idx in Metrics.auc(scores: idx.map { scores[$0] }, labels: idx.map { labels[$0] }) }
            userCount = members.map { Double($0.count) }
            userLoss = loss
        }

        /// AUC, GAUC, log loss with every sample of user k counted `userWeights[k]` times.
        func metrics(userWeights w: [Double]) -> [Double?] {
            // Weighted Mann–Whitney: a positive beats every lighter-scored negative and half
            // of the negatives tied with it.
            var negativesBelow = 0.0, pairs = 0.0, positives = 0.0
            for g in 0..<(groups.count - 1) {
                var p = 0.0, n = 0.0
                for k in groups[g]..<groups[g + 1] {
                    let s = order[k], weight = w[sampleUser[s]]
                    if labels[s] > 0.5 { p += weight } else { n += weight }
                }
                pairs += p * (negativesBelow + n / 2)
                positives += p
                negativesBelow += n
            }
            let auc: Double? = positives > 0 && negativesBelow > 0 ? pairs / (positives * negativesBelow) : nil
            var weighted = 0.0, impressions = 0.0, loss = 0.0, samples = 0.0
            for k in w.indices where w[k] > 0 {
                loss += w[k] * userLoss[k]
                samples += w[k] * userCount[k]
                if let a = userAUC[k] { weighted += w[k] * userCount[k] * a; impressions += w[k] * userCount[k] }
            }
            return [auc, impressions > 0 ? weighted / impressions : nil, samples > 0 ? loss / samples : nil]
        }
    }
}

extension PairedBootstrap {
    /// Paired bootstrap of the difference of two per-record means (B − A), resampling records
    /// (on a leave-one-out test split each record is one user) with replacement from one
    /// `SeededGenerator(seed:)`, index `next() % N` per draw; records where either value is
    /// nil (no ground truth) are left out first, and both models are judged on the same records.
    /// `compareRunMeans` with one run per side.
    public static func compareMeans(metric: String, a: [Double?], b: [Double?], resamples: Int, seed: UInt64,
                                    confidence: Double = 0.95) -> Comparison {
        compareRunMeans(metric: metric, a: [a], b: [b], resamples: resamples, seed: seed, confidence: confidence)
    }

    /// Two-level paired bootstrap of B − A when each side is several training runs of one
    /// configuration (seeds): the statistic is the mean over a side's runs of each run's mean
    /// over the records, and its interval reflects both the records and the run-to-run spread.
    ///
    /// A record bootstrap of one run per side cannot see that spread (two seeds of one hybrid
    /// config differ by several times its interval's half-width, docs/RESULTS.md). Resample r
    /// draws, from one `SeededGenerator(seed:)` in this order: N record indices `next() % N`
    /// (shared by every run of both sides: paired), then, for A when it has more than one run,
    /// R_A run indices `next() % R_A`, then the same for B. The drawn difference is the mean of
    /// the drawn B runs' means over the drawn records minus that of A. With one run per side no
    /// run is drawn, so it is the record bootstrap of `compareMeans`. With few runs the run
    /// level is a plug-in bootstrap over R values, whose spread is (R − 1)/R of the runs'
    /// sample variance: the interval is slightly narrow for R = 3-5 (stated in the docs).
    ///
    /// - Parameters:
    ///   - a: (R_A × N) per run, per record values of A (nil where the record has no ground truth).
    ///   - b: (R_B × N) the same records for B.
    /// - Returns: `a`, `b`: the means over runs of the per-run means over the records kept;
    ///   records where any run of either side is nil are left out first.
    public static func compareRunMeans(metric: String, a: [[Double?]], b: [[Double?]], resamples: Int, seed: UInt64,
                                       confidence: Double = 0.95) -> Comparison {
        precondition(!a.isEmpty && !b.isEmpty, "paired bootstrap: a side without runs")
        let records = a[0].count
        let all = a + b
        precondition(all.allSatisfy { $0.count == records }, "paired bootstrap: lengths differ")
        let kept = (0..<records).filter { i in all.allSatisfy { $0[i] != nil } }
        let n = kept.count
        guard n > 0 else { return Comparison(metric: metric, a: nil, b: nil, difference: nil, lower: nil, upper: nil, resamples: 0) }
        let runsA = a.map { run in kept.map { run[$0]! } }, runsB = b.map { run in kept.map { run[$0]! } }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        let meanA = mean(runsA.map(mean)), meanB = mean(runsB.map(mean))

        var rng = SeededGenerator(seed: seed)
        var multiplicity = [Double](repeating: 0, count: n)
        var differences: [Double] = []
        differences.reserveCapacity(resamples)
        /// The mean over `runs` drawn with replacement (all of them, once, when there is one).
        func drawnMean(_ runMeans: [Double]) -> Double {
            guard runMeans.count > 1 else { return runMeans[0] }
            var sum = 0.0
            for _ in runMeans.indices { sum += runMeans[Int(rng.next() % UInt64(runMeans.count))] }
            return sum / Double(runMeans.count)
        }
        for _ in 0..<resamples {
            for k in 0..<n { multiplicity[k] = 0 }
            for _ in 0..<n { multiplicity[Int(rng.next() % UInt64(n))] += 1 }
            func resampledMean(_ run: [Double]) -> Double {
                var sum = 0.0
                for k in 0..<n where multiplicity[k] > 0 { sum += multiplicity[k] * run[k] }
                return sum / Double(n)
            }
            let drawnA = drawnMean(runsA.map(resampledMean))
            let drawnB = drawnMean(runsB.map(resampledMean))
            differences.append(drawnB - drawnA)
        }
        differences.sort()
        let tail = (1 - confidence) / 2
        return Comparison(metric: metric, a: meanA, b: meanB, difference: meanB - meanA,
                          lower: percentile(differences, tail), upper: percentile(differences, 1 - tail), resamples: resamples)
    }
}
