import Foundation
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

/// Kingma & Ba (2015), Algorithm 1, written out in Double exactly as the paper states it,
/// with lazy per-row step counts (a row's t is the number of updates it has received) and
/// AdamW's decoupled decay (Loshchilov & Hutter 2019, Alg. 2: w ← w − η(α m̂/(√v̂ + ε) + λ w)
/// with η = 1, i.e. decay lr·λ·w on the pre-update w). It does not use the C kernel, the
/// "efficient form" coefficients, or the coefficient table.
struct TextbookLazyAdam {
    let lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    /// Per row: weights, first and second moments, update count.
    var w: [[Double]], m: [[Double]], v: [[Double]], t: [Int]

    init(_ c: AdamConfig, initial: [[Double]]) {
        lr = Double(c.lr); beta1 = Double(c.beta1); beta2 = Double(c.beta2)
        eps = Double(c.eps); weightDecay = Double(c.weightDecay)
        w = initial
        m = initial.map { [Double](repeating: 0, count: $0.count) }
        v = m
        t = [Int](repeating: 0, count: initial.count)
    }

    /// One update of row `r` with gradient `g`.
    mutating func update(row r: Int, gradient g: [Float]) {
        t[r] += 1
        let step = Double(t[r])
        for i in g.indices {
            let gi = Double(g[i])
            m[r][i] = beta1 * m[r][i] + (1 - beta1) * gi
            v[r][i] = beta2 * v[r][i] + (1 - beta2) * gi * gi
            let mHat = m[r][i] / (1 - pow(beta1, step))
            let vHat = v[r][i] / (1 - pow(beta2, step))
            w[r][i] = w[r][i] - lr * mHat / (vHat.squareRoot() + eps) - lr * weightDecay * w[r][i]
        }
    }
}

/// The parameter server's push path (`EmbeddingTable.push`: batched, C kernel, tabulated
/// and settled coefficients, computed ones past the table) against `TextbookLazyAdam`.
///
/// Tolerance: |float − double| ≤ 5e-6·max(1, |double|) for weights and 1e-4 relative for
/// the moments (Float rounding of m and v); measured worst weight error 3.9e-7 (the
/// 4,200-step schedule), 1.5e-7 (the settled one), 1.2e-7 (per-row steps).
@Suite struct LazyAdamReferenceTests {
    /// Pushes `schedule[s]` (row numbers, repeats allowed) at global step s + 1 to a table
    /// and to the textbook, then compares every row: weights, moments and step counts.
    /// Returns the worst relative error of the weights.
    @discardableResult
    private func run(_ config: AdamConfig, dim: Int, rows: Int, schedule: [[Int]], seed: UInt64,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> Double {
        let table = try EmbeddingTable(
            config: EmbeddingTableConfig(name: "item", dim: dim, initializer: .uniform(scale: 0.5), optimizer: .adam(config), seed: seed),
            options: EmbeddingTableOptions(stripes: 2, hugePages: false))
        let keys = itemKeys(0..<rows)
        let initial = table.pull(keys, step: 0)
        var reference = TextbookLazyAdam(config, initial: (0..<rows).map { r in initial[r * dim..<(r + 1) * dim].map(Double.init) })
        var rng = SeededGenerator(seed: seed)
        for (s, picks) in schedule.enumerated() {
            // Gradients of mixed scale, so |m̂|/√v̂ is not always ±1.
            let grads = (0..<picks.count * dim).map { _ in Float(rng.nextGaussian()) * (s % 5 == 0 ? 2 : 0.05) }
            table.push(picks.map { keys[$0] }, grads: grads, step: UInt32(s + 1))
            for (i, r) in picks.enumerated() { reference.update(row: r, gradient: Array(grads[i * dim..<(i + 1) * dim])) }
        }
        var worst = 0.0
        for r in 0..<rows {
            let row = try #require(table.row(for: keys[r]), sourceLocation: sourceLocation)
            #expect(Int(row.step) == reference.t[r], "row \(r): step \(row.step), textbook \(reference.t[r])", sourceLocation: sourceLocation)
            if reference.t[r] == 0 {
                #expect(Array(row.values[0..<dim]) == Array(initial[r * dim..<(r + 1) * dim]), "row \(r) was never pushed but changed", sourceLocation: sourceLocation)
                #expect(row.values[dim...].allSatisfy { $0 == 0 }, sourceLocation: sourceLocation)
                continue
            }
            for i in 0..<dim {
                let w = reference.w[r][i], error = abs(Double(row.values[i]) - w) / max(1, abs(w))
                worst = max(worst, error)
                #expect(error <= 5e-6, "row \(r) w[\(i)]: \(row.values[i]) vs textbook \(w) (t = \(reference.t[r]))", sourceLocation: sourceLocation)
                let m = reference.m[r][i], v = reference.v[r][i]
                #expect(abs(Double(row.values[dim + i]) - m) <= 1e-4 * abs(m) + 1e-12, "row \(r) m[\(i)]: \(row.values[dim + i]) vs \(m)", sourceLocation: sourceLocation)
                #expect(abs(Double(row.values[2 * dim + i]) - v) <= 1e-4 * v + 1e-12, "row \(r) v[\(i)]: \(row.values[2 * dim + i]) vs \(v)", sourceLocation: sourceLocation)
            }
        }
        return worst
    }

    /// Rows at different step counts in the same pushes: row 0 every push, row 1 every third,
    /// row 2 first at push 10 (its first update must use t = 1 although the table has seen
    /// nine pushes), row 3 twice in every even push, row 4 never. Plain Adam and AdamW.
    @Test(arguments: [Float(0), 0.05])
    func pushFollowsTextbookAdamWithPerRowStepCounts(weightDecay: Float) throws {
        let schedule: [[Int]] = (1...40).map { s in
            var picks = [0]
            if s % 3 == 0 { picks.append(1) }
            if s >= 10 && s % 4 == 2 { picks.append(2) }
            if s % 2 == 0 { picks += [3, 3] }
            var shuffle = SeededGenerator(seed: UInt64(s))
            return picks.shuffled(using: &shuffle)
        }
        try run(AdamConfig(lr: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: weightDecay),
                dim: 5, rows: 5, schedule: schedule, seed: 17)
    }

    /// A row's first update moves each weight by exactly lr·sign(g) (m̂ = g, v̂ = g²), whatever
    /// the other rows' step counts; a global t would give a different step.
    @Test func firstUpdateOfALateRowMovesByTheLearningRate() throws {
        let table = try EmbeddingTable(config: EmbeddingTableConfig(name: "item", dim: 2, optimizer: .adam(AdamConfig(lr: 0.1)), seed: 1),
                                       options: EmbeddingTableOptions(stripes: 1, hugePages: false))
        let keys = itemKeys(0..<2)
        let before = table.pull(keys, step: 0)
        for s in 1...30 { table.push([keys[0]], grads: [0.3, -0.2], step: UInt32(s)) }
        table.push([keys[1]], grads: [0.5, -4], step: 31)
        let row = try #require(table.row(for: keys[1]))
        #expect(row.step == 1)
        #expect(abs(Double(row.values[0]) - (Double(before[2]) - 0.1)) < 1e-6)
        #expect(abs(Double(row.values[1]) - (Double(before[3]) + 0.1)) < 1e-6)
    }

    /// The settled regime: with β1 = 0.5, β2 = 0.6 both β^t fall below 2^-54 after 74 steps,
    /// where the table ends and every later step reuses its last entry. Row 0 runs 150
    /// updates deep into that regime while row 1 starts at push 100 (small t, bias
    /// corrections still large) and row 2 is updated at the table's edge.
    @Test func settledCoefficientsFollowTheTextbook() throws {
        let config = AdamConfig(lr: 0.01, beta1: 0.5, beta2: 0.6)
        let optimizer = RowOptimizer(config: .adam(config), dim: 3)
        #expect(optimizer.adamStepsAreFinal)
        let settled = optimizer.adamCoefficients.count / 3
        #expect(pow(0.6, Double(settled)) < 0x1p-54 && pow(0.6, Double(settled - 1)) >= 0x1p-54)
        let schedule: [[Int]] = (1...150).map { s in
            [0] + (s >= 100 ? [1] : []) + (s >= settled - 3 && s <= settled + 3 ? [2, 2] : [])
        }
        try run(config, dim: 3, rows: 3, schedule: schedule, seed: 23)
    }

    /// β2 = 0.99999 does not settle within the largest table: past its 4096 tabulated steps
    /// the coefficients are computed per update (with β2^t still far from 0).
    @Test func computedCoefficientsPastTheTableFollowTheTextbook() throws {
        let config = AdamConfig(lr: 0.001, beta1: 0.9, beta2: 0.99999)
        #expect(!RowOptimizer(config: .adam(config), dim: 2).adamStepsAreFinal)
        let schedule: [[Int]] = (1...4200).map { s in s > 4090 ? [0, 1] : [0] }
        try run(config, dim: 2, rows: 2, schedule: schedule, seed: 29)
    }

    /// The table's coefficients, applied in the efficient form `w −= α_t m/(√v + ε_t)`, give
    /// the textbook step `α m̂/(√v̂ + ε)` for moments of very different sizes, at early steps,
    /// at the table's end and far past it.
    @Test(arguments: [AdamConfig(lr: 0.01), AdamConfig(lr: 0.003, beta1: 0.8, beta2: 0.99), AdamConfig(lr: 0.01, beta1: 0.5, beta2: 0.6)])
    func tabulatedCoefficientsGiveTheTextbookStep(config: AdamConfig) {
        let optimizer = RowOptimizer(config: .adam(config), dim: 1)
        let n = optimizer.adamCoefficients.count / 3
        let (b1, b2, lr, eps) = (Double(config.beta1), Double(config.beta2), Double(config.lr), Double(config.eps))
        for t in [1, 2, 3, 10, 100, n - 1, n, n + 1, 1_000_000] {
            // Row update count t through the optimizer: one step on a row whose m and v
            // were set so that after the moment update they equal (m, v) below.
            for (m, v) in [(0.3, 0.04), (-1e-3, 1e-12), (2.0, 9.0)] {
                let g = 0.0
                var row: [Float] = [0, Float(m / b1), Float(v / b2)]
                // With g = 0 the moment update is m ← β1·m, v ← β2·v: exactly (m, v) up to rounding.
                let mf = Double(Float(b1) * row[1]), vf = Double(Float(b2) * row[2])
                row.withUnsafeMutableBufferPointer { r in
                    [Float(g)].withUnsafeBufferPointer { optimizer.update(row: r.baseAddress!, grad: $0.baseAddress!, step: UInt32(t)) }
                }
                let textbook = -lr * (mf / (1 - pow(b1, Double(t)))) / ((vf / (1 - pow(b2, Double(t)))).squareRoot() + eps)
                #expect(abs(Double(row[0]) - textbook) <= 1e-5 * abs(textbook), "t = \(t), m = \(m), v = \(v): \(row[0]) vs \(textbook)")
            }
        }
    }
}
