import Foundation
import HeedCore
import Testing
@testable import HeedModels

/// The paired bootstrap of `heed eval --compare` against a brute-force reference (resampled
/// samples concatenated and fed to `Metrics`), on hand-checkable data; and the threshold
/// metrics against counted confusion matrices.
@Suite struct PairedBootstrapTests {
    /// Two users, two samples each: A ranks 3 of 4 pairs right (AUC 0.75) and user 2 wrong
    /// (GAUC (2·1 + 2·0)/4 = 0.5); B ranks every pair right (AUC 1, GAUC 1).
    static let tiny = (a: [Float](arrayLiteral: 0.9, 0.2, 0.4, 0.6), b: [Float](arrayLiteral: 0.8, 0.3, 0.7, 0.1),
                       labels: [Float](arrayLiteral: 1, 0, 1, 0), users: [UInt64](arrayLiteral: 1, 1, 2, 2))

    /// A bigger set: 30 users with 2-12 samples each, scores with ties (rounded to 0.05).
    static func random(seed: UInt64) -> (a: [Float], b: [Float], labels: [Float], users: [UInt64]) {
        var rng = SeededGenerator(seed: seed)
        var a: [Float] = [], b: [Float] = [], labels: [Float] = [], users: [UInt64] = []
        for u in 0..<30 {
            let n = 2 + Int(rng.next() % 11)
            for _ in 0..<n {
                let label: Float = rng.nextUnitFloat() < 0.4 ? 1 : 0
                let signal = label * 0.3
                a.append(((rng.nextUnitFloat() * 0.7 + signal) * 20).rounded() / 20)
                b.append(min(0.999, max(0.001, rng.nextUnitFloat() * 0.6 + signal * 1.5)))
                labels.append(label)
                users.append(UInt64(1000 + u * 7))
            }
        }
        return (a, b, labels, users)
    }

    /// The reference: each resample's drawn users' samples concatenated (user order of the
    /// draw), metrics from `Metrics`, B − A, sorted, quantiles at q·(n − 1).
    static func bruteForce(a: [Float], b: [Float], labels: [Float], users: [UInt64], resamples: Int, seed: UInt64) -> [[Double]] {
        var distinct: [UInt64] = []
        for u in users where !distinct.contains(u) { distinct.append(u) }
        var rng = SeededGenerator(seed: seed)
        var diffs: [[Double]] = [[], [], []]
        for _ in 0..<resamples {
            var ia: [Float] = [], ib: [Float] = [], il: [Float] = [], iu: [UInt64] = []
            for _ in 0..<distinct.count {
                let u = distinct[Int(rng.next() % UInt64(distinct.count))]
                for i in users.indices where users[i] == u { ia.append(a[i]); ib.append(b[i]); il.append(labels[i]); iu.append(u) }
            }
            if let x = Metrics.auc(scores: ia, labels: il), let y = Metrics.auc(scores: ib, labels: il) { diffs[0].append(y - x) }
            if let x = Metrics.gauc(scores: ia, labels: il, users: iu), let y = Metrics.gauc(scores: ib, labels: il, users: iu) { diffs[1].append(y - x) }
            diffs[2].append(Metrics.logLoss(probabilities: ib, labels: il) - Metrics.logLoss(probabilities: ia, labels: il))
        }
        return diffs.map { $0.sorted() }
    }

    static func quantile(_ s: [Double], _ q: Double) -> Double {
        let h = q * Double(s.count - 1)
        let lo = Int(h), frac = h - Double(lo)
        return lo + 1 < s.count ? s[lo] * (1 - frac) + s[lo + 1] * frac : s[lo]
    }

    @Test func pointDifferencesMatchTheHandComputedValues() {
        let t = Self.tiny
        let r = PairedBootstrap.compare(a: t.a, b: t.b, labels: t.labels, users: t.users, resamples: 10, seed: 1)
        #expect(r.map(\.metric) == ["auc", "gauc", "log_loss"])
        #expect(r[0].a == 0.75 && r[0].b == 1 && r[0].difference == 0.25)
        #expect(r[1].a == 0.5 && r[1].b == 1 && r[1].difference == 0.5)
        let llA = -(log(0.9) + log(0.8) + log(0.4) + log(0.4)) / 4, llB = -(log(0.8) + log(0.7) + log(0.7) + log(0.9)) / 4
        #expect(abs(r[2].a! - llA) < 1e-6 && abs(r[2].b! - llB) < 1e-6)
    }

    @Test(arguments: [(UInt64(1), UInt64(11)), (2, 12), (3, 13)])
    func intervalsMatchABruteForceBootstrap(dataSeed: UInt64, bootstrapSeed: UInt64) {
        let d = Self.random(seed: dataSeed)
        let r = PairedBootstrap.compare(a: d.a, b: d.b, labels: d.labels, users: d.users, resamples: 300, seed: bootstrapSeed)
        let reference = Self.bruteForce(a: d.a, b: d.b, labels: d.labels, users: d.users, resamples: 300, seed: bootstrapSeed)
        for m in 0..<3 {
            let s = reference[m]
            #expect(r[m].resamples == s.count)
            let lower = Self.quantile(s, 0.025), upper = Self.quantile(s, 0.975)
            #expect(abs(r[m].lower! - lower) < 1e-9 && abs(r[m].upper! - upper) < 1e-9,
                    "\(r[m].metric): [\(r[m].lower!), \(r[m].upper!)] vs brute force [\(lower), \(upper)]")
            #expect(r[m].lower! < r[m].upper!)
        }
        #expect(abs(r[0].difference! - (Metrics.auc(scores: d.b, labels: d.labels)! - Metrics.auc(scores: d.a, labels: d.labels)!)) < 1e-12)
        #expect(abs(r[1].difference! - (Metrics.gauc(scores: d.b, labels: d.labels, users: d.users)! - Metrics.gauc(scores: d.a, labels: d.labels, users: d.users)!)) < 1e-12)
    }

    @Test func identicalModelsDifferByExactlyZero() {
        let d = Self.random(seed: 4)
        for m in PairedBootstrap.compare(a: d.a, b: d.a, labels: d.labels, users: d.users, resamples: 1000, seed: 5) {
            #expect(m.difference == 0 && m.lower == 0 && m.upper == 0, "\(m)")
            #expect(m.resamples == 1000)
        }
    }

    @Test func swappingTheModelsFlipsTheSign() {
        let d = Self.random(seed: 6)
        let ab = PairedBootstrap.compare(a: d.a, b: d.b, labels: d.labels, users: d.users, resamples: 500, seed: 7)
        let ba = PairedBootstrap.compare(a: d.b, b: d.a, labels: d.labels, users: d.users, resamples: 500, seed: 7)
        for (x, y) in zip(ab, ba) {
            #expect(x.difference == -y.difference!)
            #expect(x.a == y.b && x.b == y.a)
            #expect(abs(x.lower! + y.upper!) < 1e-15 && abs(x.upper! + y.lower!) < 1e-15, "\(x) vs \(y)")
            #expect(x.difference != 0)
        }
    }

    /// Counted by hand: predictions ≥ 0.5 are positive (0.5 itself included).
    @Test func thresholdMetricsCountTheConfusionMatrix() {
        let p: [Float] = [0.9, 0.5, 0.49, 0.2, 0.7, 0.1]
        let y: [Float] = [1, 0, 1, 0, 1, 1]
        // TP 2 (0.9, 0.7), FP 1 (0.5), TN 1 (0.2), FN 2 (0.49, 0.1).
        let m = ThresholdMetrics(probabilities: p, labels: y)!
        #expect(m.accuracy == 3.0 / 6 && m.precision == 2.0 / 3 && m.recall == 2.0 / 4)
        #expect(abs(m.f1! - 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5)) < 1e-12)
        let none = ThresholdMetrics(probabilities: [Float](arrayLiteral: 0.1, 0.2), labels: [Float](arrayLiteral: 0, 1))!
        #expect(none.precision == nil && none.recall == 0 && none.f1 == nil && none.accuracy == 0.5)
        #expect(ThresholdMetrics(probabilities: [Float](), labels: [Float]()) == nil)
    }
}
