import HeedCore
import Testing
@testable import HeedOptim

/// Runs `RowOptimizer.update(rows:steps:indices:grads:)` on arrays.
func lazyUpdate(_ opt: RowOptimizer, _ rows: inout [Float], _ steps: inout [UInt32], _ indices: [Int], _ grads: [Float]) {
    rows.withUnsafeMutableBufferPointer { r in
        steps.withUnsafeMutableBufferPointer { s in
            indices.withUnsafeBufferPointer { i in
                grads.withUnsafeBufferPointer { g in opt.update(rows: r, steps: s, indices: i, grads: g) }
            }
        }
    }
}

@Suite struct RowOptimizerTests {
    // Row layout [w | m | v]. Kingma & Ba (2015) Alg. 1, step 1: m̂ = g, v̂ = g², so
    // w -= α·g/(|g| + ε) = α·sign(g); m = (1−β₁)g, v = (1−β₂)g².
    @Test func lazyAdamFirstRowStepWritesWeightsAndMoments() {
        let opt = RowOptimizer(config: .adam(AdamConfig(lr: 0.1)), dim: 2)
        var rows: [Float] = [1, -2, 0, 0, 0, 0]
        var steps: [UInt32] = [0]
        lazyUpdate(opt, &rows, &steps, [0], [0.5, -1])
        #expect(steps == [1])
        #expect(closeRelative(rows, [0.9, -1.9, 0.05, -0.1, 0.00025, 0.001]))
    }

    // Per-row bias correction: row 1 is updated twice and row 3 once. Row 3's only update
    // must use t = 1 (moving by exactly α·sign(g)), whatever other rows did before it;
    // with a global t = 2 it would move by α·(0.1/0.19)/√(0.001/0.001999) = 0.0744 instead.
    // Row 1's second step repeats DenseOptimizerTests' numbers for w₀ and w₂.
    @Test func lazyAdamCountsStepsPerRowAndLeavesOtherRowsAlone() {
        let opt = RowOptimizer(config: .adam(AdamConfig(lr: 0.1)), dim: 2)
        var rows: [Float] = []
        for r in 0..<4 { rows += [Float(r) + 0.25, -Float(r)] + [Float](repeating: 0, count: 4) }
        rows.replaceSubrange(6..<8, with: [1, 0.5])  // row 1's w
        let before = rows
        var steps: [UInt32] = [0, 0, 0, 0]
        lazyUpdate(opt, &rows, &steps, [1], [0.5, 0])
        lazyUpdate(opt, &rows, &steps, [1, 3], [0.25, 2, -4, 3])
        #expect(steps == [0, 2, 0, 1])
        #expect(Array(rows[0..<6]) == Array(before[0..<6]))
        #expect(Array(rows[12..<18]) == Array(before[12..<18]))
        #expect(close(Array(rows[6..<8]), [0.806782040, 0.425586318]))
        #expect(close(Array(rows[18..<20]), [3.25 + 0.1, -3 - 0.1]))
    }

    // A row named twice in one batch is updated twice, in order (step 1 then step 2).
    @Test func duplicateIndicesApplySequentially() {
        let opt = RowOptimizer(config: .adam(AdamConfig(lr: 0.1)), dim: 1)
        var once: [Float] = [1, 0, 0], steps1: [UInt32] = [0]
        lazyUpdate(opt, &once, &steps1, [0, 0], [0.5, 0.25])
        var twice: [Float] = [1, 0, 0], steps2: [UInt32] = [0]
        lazyUpdate(opt, &twice, &steps2, [0], [0.5])
        lazyUpdate(opt, &twice, &steps2, [0], [0.25])
        #expect(once == twice && steps1 == [2] && steps2 == [2])
        #expect(close([once[0]], [0.806782040]))
    }

    // SGD rows [w]: w -= lr·g. Momentum rows [w | buf]: buf = μ buf + g, w -= lr buf.
    @Test func sgdRowsWithAndWithoutMomentum() {
        let plain = RowOptimizer(config: .sgd(SGDConfig(lr: 0.1)), dim: 2)
        #expect(plain.width == 2)
        var rows: [Float] = [1, 1, 2, 2]
        var steps: [UInt32] = [0, 0]
        lazyUpdate(plain, &rows, &steps, [1], [1, -1])
        #expect(close(rows, [1, 1, 1.9, 2.1]) && steps == [0, 1])

        let heavy = RowOptimizer(config: .sgd(SGDConfig(lr: 0.1, momentum: 0.9)), dim: 1)
        var m: [Float] = [1, 0]
        var s: [UInt32] = [0]
        lazyUpdate(heavy, &m, &s, [0, 0], [0.5, 0.5])
        #expect(close(m, [0.855, 0.95]))
    }

    // Adagrad rows [w | acc] (Duchi et al. 2011): acc starts at initialAccumulator = 0.1;
    // g = 0.5 → acc = 0.35, w = 1 − 0.1·0.5/√0.35 = 0.915485.
    @Test func adagradRowsStartFromTheInitialAccumulator() {
        let opt = RowOptimizer(config: .adagrad(AdagradConfig(lr: 0.1, initialAccumulator: 0.1)), dim: 1)
        var rows: [Float] = [1, -7]
        rows.withUnsafeMutableBufferPointer { opt.initializeState($0.baseAddress!) }
        #expect(rows == [1, 0.1])
        var steps: [UInt32] = [0]
        lazyUpdate(opt, &rows, &steps, [0], [0.5])
        #expect(close(rows, [0.915484575, 0.35]))
    }

    // The Float C kernel against a Double loop of Algorithm 1 in its textbook form
    // (m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), w -= α m̂/(√v̂ + ε) + αλw), over 50 steps of random
    // gradients on a dimension that is not a multiple of any vector width.
    @Test(arguments: [Float(0), 0.01])
    func floatKernelMatchesDoubleReference(weightDecay: Float) {
        let dim = 67, steps = 50
        let config = AdamConfig(lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: weightDecay)
        let opt = RowOptimizer(config: .adam(config), dim: dim)
        var rng = SeededGenerator(seed: 7)
        var row = (0..<dim).map { _ in Float(rng.nextGaussian()) } + [Float](repeating: 0, count: 2 * dim)
        var w = row[0..<dim].map(Double.init), m = [Double](repeating: 0, count: dim), v = m
        let (b1, b2, lr, eps, wd) = (Double(config.beta1), Double(config.beta2), Double(config.lr), Double(config.eps), Double(weightDecay))
        var maxErr = 0.0
        for t in 1...steps {
            let g = (0..<dim).map { _ in Float(rng.nextGaussian()) * (t % 7 == 0 ? 10 : 0.1) }
            row.withUnsafeMutableBufferPointer { r in
                g.withUnsafeBufferPointer { opt.update(row: r.baseAddress!, grad: $0.baseAddress!, step: UInt32(t)) }
            }
            for i in 0..<dim {
                let gi = Double(g[i])
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                let mh = m[i] / (1 - Foundationless.pow(b1, t)), vh = v[i] / (1 - Foundationless.pow(b2, t))
                w[i] -= lr * mh / (vh.squareRoot() + eps) + lr * wd * w[i]
            }
            for i in 0..<dim { maxErr = max(maxErr, abs(Double(row[i]) - w[i]) / max(1, abs(w[i]))) }
        }
        #expect(maxErr < 1e-5, "max relative error \(maxErr)")
    }

    // The coefficient table and the direct computation agree, also past the table's end.
    @Test func tabulatedAdamCoefficientsMatchDirectOnes() {
        let a = AdamConfig(lr: 0.01)
        let opt = RowOptimizer(config: .adam(a), dim: 1)
        for t: UInt32 in [1, 2, 100, UInt32(RowOptimizer.tabulatedSteps)] {
            #expect(opt.adamSteps[Int(t) - 1] == a.coefficients(step: t))
        }
        let far = a.coefficients(step: 1_000_000)
        #expect(abs(far.stepSize - 0.01) < 1e-7 && abs(far.epsilon - 1e-8) < 1e-14)
    }

    // With the default betas the table runs to where the coefficients settle, and every
    // later step computes exactly the last entry; the entry before it still differs.
    @Test func settledAdamCoefficientsAreExactForEveryLaterStep() throws {
        let a = AdamConfig(lr: 0.01)
        let opt = RowOptimizer(config: .adam(a), dim: 1)
        #expect(opt.adamStepsAreFinal)
        let n = opt.adamSteps.count
        #expect(n > RowOptimizer.tabulatedSteps && n <= RowOptimizer.maxTabulatedSteps)
        let last = try #require(opt.adamSteps.last)
        for t: UInt32 in [UInt32(n), UInt32(n) + 1, UInt32(n) + 1000, 1_000_000, UInt32.max - 1, UInt32.max] {
            #expect(a.coefficients(step: t) == last, "step \(t)")
        }
        for t in stride(from: 1, through: n, by: 997) {
            #expect(opt.adamSteps[t - 1] == a.coefficients(step: UInt32(t)))
        }
        #expect(AdamConfig.power(0.999, UInt32(n - 1)) >= 0x1p-54)
        // Betas that settle too late keep the short table and the computed path.
        let slow = RowOptimizer(config: .adam(AdamConfig(lr: 0.01, beta2: 0.99999)), dim: 1)
        #expect(!slow.adamStepsAreFinal && slow.adamSteps.count == RowOptimizer.tabulatedSteps)
    }
}

/// Integer powers without Foundation.
enum Foundationless {
    /// `x^n` by repeated multiplication (n is small in tests).
    static func pow(_ x: Double, _ n: Int) -> Double { (0..<n).reduce(1) { acc, _ in acc * x } }
}

@Suite struct KernelPrecisionTests {
    // SGD with momentum and Adagrad kernels against Double loops of their formulas
    // (Sutskever et al. 2013 PyTorch form; Duchi et al. 2011), 50 steps, dim 67.
    @Test(arguments: ["sgd", "sgdMomentum", "adagrad"])
    func floatKernelsMatchDoubleReference(kind: String) {
        let dim = 67
        let settings: OptimizerSettings
        switch kind {
        case "sgd": settings = .sgd(SGDConfig(lr: 0.05))
        case "sgdMomentum": settings = .sgd(SGDConfig(lr: 0.05, momentum: 0.9))
        default: settings = .adagrad(AdagradConfig(lr: 0.05, eps: 1e-10, initialAccumulator: 0.1))
        }
        let opt = RowOptimizer(config: settings, dim: dim)
        var rng = SeededGenerator(seed: 3)
        var row = (0..<opt.width).map { _ in Float(rng.nextGaussian()) }
        row.withUnsafeMutableBufferPointer { opt.initializeState($0.baseAddress!) }
        var w = row[0..<dim].map(Double.init), s = row[dim...].map(Double.init)
        var maxErr = 0.0
        for t in 1...50 {
            let g = (0..<dim).map { _ in Float(rng.nextGaussian()) }
            row.withUnsafeMutableBufferPointer { r in
                g.withUnsafeBufferPointer { opt.update(row: r.baseAddress!, grad: $0.baseAddress!, step: UInt32(t)) }
            }
            for i in 0..<dim {
                let gi = Double(g[i])
                switch kind {
                case "sgd": w[i] -= 0.05 * gi
                case "sgdMomentum": s[i] = 0.9 * s[i] + gi; w[i] -= 0.05 * s[i]
                default: s[i] += gi * gi; w[i] -= 0.05 * gi / (s[i].squareRoot() + 1e-10)
                }
                maxErr = max(maxErr, abs(Double(row[i]) - w[i]) / max(1, abs(w[i])))
            }
        }
        #expect(maxErr < 1e-5, "max relative error \(maxErr)")
        #expect(maxErr > 0 || kind == "sgd", "the Float run should differ from Double by rounding at least")
    }
}
