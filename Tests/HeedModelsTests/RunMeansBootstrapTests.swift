import Foundation
import HeedCore
import Testing
@testable import HeedModels

/// The per-record-mean bootstraps of `heed eval --compare` on hybrid models: one run per side
/// (`compareMeans`) against a brute-force record bootstrap, and several runs per side
/// (`compareRunMeans`) against a brute-force two-level one and against a hand-computed case
/// where only the run-to-run spread moves the difference.
@Suite struct RunMeansBootstrapTests {
    /// R runs of N records: 0/1 hits (or NDCG-like values in [0, 1] when `binary` is false),
    /// with nil on the records `noTruth` picks (the same records in every run, as on one split).
    static func runs(_ count: Int, records: Int, seed: UInt64, binary: Bool, noTruth: (Int) -> Bool) -> [[Double?]] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            (0..<records).map { i -> Double? in
                let v = Double(rng.nextUnitFloat())
                if noTruth(i) { return nil }
                return binary ? (v < 0.3 ? 1 : 0) : v * v
            }
        }
    }

    /// The documented draw order written out plainly: records kept where every run has a value;
    /// per resample N record draws, then R_A run draws if R_A > 1, then R_B if R_B > 1.
    static func bruteForce(a: [[Double?]], b: [[Double?]], resamples: Int, seed: UInt64) -> [Double] {
        let kept = a[0].indices.filter { i in (a + b).allSatisfy { $0[i] != nil } }
        var rng = SeededGenerator(seed: seed)
        var out: [Double] = []
        for _ in 0..<resamples {
            let drawn = kept.map { _ in kept[Int(rng.next() % UInt64(kept.count))] }
            func runMean(_ run: [Double?]) -> Double { drawn.map { run[$0]! }.reduce(0, +) / Double(drawn.count) }
            func side(_ runs: [[Double?]]) -> Double {
                let means = runs.map(runMean)
                if means.count == 1 { return means[0] }
                return means.indices.map { _ in means[Int(rng.next() % UInt64(means.count))] }.reduce(0, +) / Double(means.count)
            }
            let x = side(a)
            out.append(side(b) - x)
        }
        return out.sorted()
    }

    @Test(arguments: [(1, 1, true), (3, 2, true), (2, 4, false), (5, 5, false)])
    func intervalsMatchABruteForceBootstrap(runsA: Int, runsB: Int, binary: Bool) {
        let a = Self.runs(runsA, records: 120, seed: 21, binary: binary) { $0 % 7 == 3 }
        let b = Self.runs(runsB, records: 120, seed: 22, binary: binary) { $0 % 7 == 3 }
        let r = PairedBootstrap.compareRunMeans(metric: "m", a: a, b: b, resamples: 400, seed: 9)
        let reference = Self.bruteForce(a: a, b: b, resamples: 400, seed: 9)
        let lower = PairedBootstrapTests.quantile(reference, 0.025), upper = PairedBootstrapTests.quantile(reference, 0.975)
        #expect(abs(r.lower! - lower) < 1e-12 && abs(r.upper! - upper) < 1e-12, "[\(r.lower!), \(r.upper!)] vs brute force [\(lower), \(upper)]")
        // The point values: means over runs of the means over the 103 records with a value (17 of 120 have none).
        func mean(_ runs: [[Double?]]) -> Double {
            runs.map { run in run.compactMap { $0 }.reduce(0, +) / Double(run.compactMap { $0 }.count) }.reduce(0, +) / Double(runs.count)
        }
        #expect(a[0].compactMap { $0 }.count == 103)
        #expect(abs(r.a! - mean(a)) < 1e-12 && abs(r.b! - mean(b)) < 1e-12 && abs(r.difference! - (mean(b) - mean(a))) < 1e-12)
        #expect(r.lower! < r.difference! && r.difference! < r.upper!)
    }

    @Test func oneRunPerSideIsTheRecordBootstrap() {
        let a = Self.runs(1, records: 300, seed: 5, binary: true) { $0 % 11 == 0 }[0]
        let b = Self.runs(1, records: 300, seed: 6, binary: true) { $0 % 11 == 0 }[0]
        let r = PairedBootstrap.compareMeans(metric: "hit", a: a, b: b, resamples: 500, seed: 3)
        // Resampled records, mean of the paired differences.
        let pairs = zip(a, b).compactMap { x, y in x.flatMap { x in y.map { (x, $0) } } }
        var rng = SeededGenerator(seed: 3)
        let differences = (0..<500).map { _ in
            (0..<pairs.count).map { _ in pairs[Int(rng.next() % UInt64(pairs.count))] }.map { $0.1 - $0.0 }.reduce(0, +) / Double(pairs.count)
        }.sorted()
        #expect(abs(r.lower! - PairedBootstrapTests.quantile(differences, 0.025)) < 1e-12)
        #expect(abs(r.upper! - PairedBootstrapTests.quantile(differences, 0.975)) < 1e-12)
    }

    /// A's three runs are one run repeated; B's are it plus −0.05, +0.05, +0.15 on every
    /// record. Every record draw then cancels, and a resample's difference is the mean of three
    /// offsets drawn with replacement: from −0.05 (all three the lowest, 1/27 = 3.7 % of
    /// draws, so the 2.5 % quantile) to +0.15. A record bootstrap of the runs' averages would
    /// give the zero-width [+0.05, +0.05].
    @Test func theRunSpreadWidensTheInterval() {
        let base = Self.runs(1, records: 400, seed: 8, binary: false) { _ in false }[0]
        let a = [base, base, base]
        let b = [-0.05, 0.05, 0.15].map { c in base.map { $0! + c } as [Double?] }
        let r = PairedBootstrap.compareRunMeans(metric: "m", a: a, b: b, resamples: 2000, seed: 4)
        #expect(abs(r.difference! - 0.05) < 1e-12)
        #expect(abs(r.lower! + 0.05) < 1e-9 && abs(r.upper! - 0.15) < 1e-9, "[\(r.lower!), \(r.upper!)]")
        let averaged = PairedBootstrap.compareMeans(metric: "m", a: base, b: base.map { $0! + 0.05 }, resamples: 2000, seed: 4)
        #expect(abs(averaged.lower! - 0.05) < 1e-9 && abs(averaged.upper! - 0.05) < 1e-9)
    }
}
