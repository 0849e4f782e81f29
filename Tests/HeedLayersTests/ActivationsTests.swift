import Testing
import HeedCore
@testable import HeedLayers

@Suite struct ActivationsTests {
    typealias D = Tensor<Double>

    /// Checks `analytic` against the central-difference gradient of `f` at `x`.
    func expectGradient(_ analytic: D, at x: D, _ f: (D) -> Double, sourceLocation: SourceLocation = #_sourceLocation) {
        let numeric = GradientCheck.numeric(at: x, f)
        let mismatch = GradientCheck.firstMismatch(analytic: analytic, numeric: numeric)
        #expect(mismatch == nil, "gradient mismatch \(String(describing: mismatch))", sourceLocation: sourceLocation)
    }

    @Test func forwardValuesMatchDefinitions() {
        let x = D(shape: [1, 4], data: [-2, -0.5, 0, 3])
        var out = D.empty
        reluForward(&out, x)
        #expect(out.data == [0, 0, 0, 3])
        sigmoidForward(&out, x)
        #expect(abs(out.data[2] - 0.5) < 1e-15)
        #expect(abs(out.data[3] - 1 / (1 + Double.exp(-3))) < 1e-15)
        tanhForward(&out, x)
        #expect(abs(out.data[0] - (-0.9640275800758169)) < 1e-15)
        preluForward(&out, x, D(shape: [4], data: [0.1, 0.2, 0.3, 0.4]))
        #expect(out.data == [-0.2, -0.1, 0, 3])
    }

    @Test func sigmoidAndTanhSaturateWithoutNaN() {
        let x = Tensor<Float>(shape: [4], data: [-100, 100, -1000, 1000])
        var out = Tensor<Float>.empty
        sigmoidForward(&out, x)
        // The Float path clamps e^−x at e^88, so the low side is a tiny positive number, not 0.
        #expect(out.data[1] == 1 && out.data[3] == 1)
        #expect(out.data[0] >= 0 && out.data[0] < 1e-37 && out.data[2] >= 0 && out.data[2] < 1e-37)
        var dx = Tensor<Float>(zeros: [4])
        sigmoidBackward(&dx, Tensor(shape: [4], data: [1, 1, 1, 1]), out)
        #expect(dx.data.allSatisfy { $0.isFinite })
        tanhForward(&out, x)
        #expect(out.data == [-1, 1, -1, 1])
    }

    @Test func reluGradientMatchesCentralDifferences() {
        let x = GradientCheck.random([4, 5], seed: 11), probe = GradientCheck.random([4, 5], seed: 12)
        var dx = D(zeros: x.shape)
        reluBackward(&dx, probe, x)
        expectGradient(dx, at: x) { var o = D.empty; reluForward(&o, $0); return GradientCheck.weightedSum(o, probe) }
        // Negative inputs pass no gradient.
        for i in 0..<x.count where x.data[i] < 0 { #expect(dx.data[i] == 0) }
    }

    @Test func sigmoidGradientMatchesCentralDifferences() {
        let x = GradientCheck.random([3, 4], seed: 13, scale: 4), probe = GradientCheck.random([3, 4], seed: 14)
        var y = D.empty
        sigmoidForward(&y, x)
        var dx = D(zeros: x.shape)
        sigmoidBackward(&dx, probe, y)
        expectGradient(dx, at: x) { var o = D.empty; sigmoidForward(&o, $0); return GradientCheck.weightedSum(o, probe) }
    }

    @Test func tanhGradientMatchesCentralDifferences() {
        let x = GradientCheck.random([3, 4], seed: 15, scale: 2), probe = GradientCheck.random([3, 4], seed: 16)
        var y = D.empty
        tanhForward(&y, x)
        var dx = D(zeros: x.shape)
        tanhBackward(&dx, probe, y)
        expectGradient(dx, at: x) { var o = D.empty; tanhForward(&o, $0); return GradientCheck.weightedSum(o, probe) }
    }

    @Test func preluGradientsMatchCentralDifferences() {
        let x = GradientCheck.random([5, 3], seed: 17), alpha = GradientCheck.random([3], seed: 18)
        let probe = GradientCheck.random([5, 3], seed: 19)
        func loss(_ x: D, _ a: D) -> Double { var o = D.empty; preluForward(&o, x, a); return GradientCheck.weightedSum(o, probe) }
        var dx = D(zeros: x.shape), da = D(zeros: alpha.shape)
        preluBackward(&dx, &da, probe, x, alpha)
        expectGradient(dx, at: x) { loss($0, alpha) }
        expectGradient(da, at: alpha) { loss(x, $0) }
    }

    // MARK: Dice

    /// Dice output with fresh copies of the running statistics, so a probe does not drift them.
    func diceLoss(_ x: D, _ alpha: D, mean: D, variance: D, mask: D, training: Bool, probe: D) -> Double {
        var out = D.empty, cache = DiceCache<Double>(), m = mean, v = variance
        diceForward(&out, &cache, &m, &v, x, alpha, rowMask: mask, training: training)
        return GradientCheck.weightedSum(out, probe)
    }

    @Test(arguments: [true, false])
    func diceGradientsMatchCentralDifferences(training: Bool) {
        let x = GradientCheck.random([6, 3], seed: 21, scale: 2)
        let alpha = GradientCheck.random([3], seed: 22)
        let mean = GradientCheck.random([3], seed: 23, scale: 0.3)
        let variance = D(shape: [3], data: [0.5, 1.5, 2.0])
        let probe = GradientCheck.random([6, 3], seed: 24)
        var out = D.empty, cache = DiceCache<Double>(), m = mean, v = variance
        diceForward(&out, &cache, &m, &v, x, alpha, training: training)
        var dx = D(zeros: x.shape), da = D(zeros: alpha.shape)
        diceBackward(&dx, &da, probe, x, alpha, cache)
        expectGradient(dx, at: x) { diceLoss($0, alpha, mean: mean, variance: variance, mask: .empty, training: training, probe: probe) }
        expectGradient(da, at: alpha) { diceLoss(x, $0, mean: mean, variance: variance, mask: .empty, training: training, probe: probe) }
    }

    @Test func diceTrainingGradientNeedsTheStatisticsPath() {
        // The inference-style gradient (statistics held fixed) must differ from the training one,
        // otherwise the check above could not tell whether the statistics path is there.
        let x = GradientCheck.random([6, 3], seed: 25, scale: 2), alpha = GradientCheck.random([3], seed: 26)
        let probe = GradientCheck.random([6, 3], seed: 27)
        var out = D.empty, cache = DiceCache<Double>(), m = D(zeros: [3]), v = D(zeros: [3])
        diceForward(&out, &cache, &m, &v, x, alpha, training: true)
        var full = D(zeros: x.shape), none = D.empty
        diceBackward(&full, &none, probe, x, alpha, cache)
        cache.statisticsRows = 0
        var fixed = D(zeros: x.shape)
        diceBackward(&fixed, &none, probe, x, alpha, cache)
        let gap = zip(full.data, fixed.data).map { abs($0 - $1) }.max() ?? 0
        #expect(gap > 1e-3)
    }

    @Test func diceMaskedRowsStayOutOfStatistics() {
        let x = GradientCheck.random([6, 3], seed: 31, scale: 2), alpha = GradientCheck.random([3], seed: 32)
        let mask = D(shape: [6], data: [1, 1, 0, 1, 0, 1])
        let probe = GradientCheck.random([6, 3], seed: 33)
        let mean = D(zeros: [3]), variance = D(shape: [3], data: [1, 1, 1])
        var out = D.empty, cache = DiceCache<Double>(), m = mean, v = variance
        diceForward(&out, &cache, &m, &v, x, alpha, rowMask: mask, training: true)
        var dx = D(zeros: x.shape), da = D(zeros: alpha.shape)
        diceBackward(&dx, &da, probe, x, alpha, cache)
        expectGradient(dx, at: x) { diceLoss($0, alpha, mean: mean, variance: variance, mask: mask, training: true, probe: probe) }
        expectGradient(da, at: alpha) { diceLoss(x, $0, mean: mean, variance: variance, mask: mask, training: true, probe: probe) }

        // Statistics equal those of the real rows alone: real rows' outputs do not move when a
        // padded row changes.
        var moved = x
        moved.data[2 * 3 + 1] += 5
        var out2 = D.empty, cache2 = DiceCache<Double>(), m2 = mean, v2 = variance
        diceForward(&out2, &cache2, &m2, &v2, moved, alpha, rowMask: mask, training: true)
        for r in [0, 1, 3, 4, 5] { for j in 0..<3 { #expect(out2.data[r * 3 + j] == out.data[r * 3 + j]) } }
        // The batch mean covers rows 0, 1, 3 and 5 only.
        let expectedMean = (x.data[0] + x.data[3] + x.data[9] + x.data[15]) / 4
        #expect(abs(cache.mean.data[0] - expectedMean) < 1e-12)
    }

    @Test func diceUpdatesRunningStatisticsInTrainingOnly() {
        let x = D(shape: [4, 1], data: [1, 2, 3, 6])
        let alpha = D(shape: [1], data: [0.5])
        var out = D.empty, cache = DiceCache<Double>()
        var m = D(shape: [1], data: [0]), v = D(shape: [1], data: [1])
        diceForward(&out, &cache, &m, &v, x, alpha, training: true, momentum: 0.1)
        // batch mean 3, biased var 3.5, unbiased 14/3
        #expect(abs(m.data[0] - 0.3) < 1e-12)
        #expect(abs(v.data[0] - (0.9 + 0.1 * 14.0 / 3.0)) < 1e-12)
        // f(s) = s·(α + (1 − α)·p) with p = sigmoid((s − 3)/sqrt(3.5 + ε)); at s = 3, p = 1/2.
        #expect(abs(out.data[2] - 3 * 0.75) < 1e-6)
        let (m1, v1) = (m, v)
        diceForward(&out, &cache, &m, &v, x, alpha, training: false)
        #expect(m == m1 && v == v1)
        let p0 = 1 / (1 + Double.exp(-(1 - 0.3) / (v1.data[0] + 1e-8).squareRoot()))
        #expect(abs(out.data[0] - 1 * (0.5 + 0.5 * p0)) < 1e-12)
    }

    @Test func diceConstantFeatureStaysFinite() {
        // Zero batch variance: ŝ = 0 and p = 1/2 rather than 0/0.
        let x = Tensor<Float>(shape: [3, 2], data: [2, 1, 2, 5, 2, -3])
        let alpha = Tensor<Float>(shape: [2], data: [0.25, 0.25])
        var out = Tensor<Float>.empty, cache = DiceCache<Float>()
        var m = Tensor<Float>(zeros: [2]), v = Tensor<Float>(zeros: [2])
        diceForward(&out, &cache, &m, &v, x, alpha, training: true)
        #expect(abs(out.data[0] - 2 * 0.625) < 1e-6)
        var dx = Tensor<Float>(zeros: x.shape), da = Tensor<Float>(zeros: [2])
        diceBackward(&dx, &da, Tensor(shape: [3, 2], data: [1, 1, 1, 1, 1, 1]), x, alpha, cache)
        #expect(dx.data.allSatisfy { $0.isFinite } && da.data.allSatisfy { $0.isFinite })
    }

    // MARK: ActivationLayer

    @Test(arguments: ActivationKind.allCases, [true, false])
    func activationLayerGradientsMatchCentralDifferences(kind: ActivationKind, training: Bool) {
        let x = GradientCheck.random([5, 4], seed: 41, scale: 2), probe = GradientCheck.random([5, 4], seed: 42)
        var layer = ActivationLayer<Double>(kind, features: 4, preluSlope: 0.3, diceAlpha: 0.2)
        layer.runningMean = kind == .dice ? GradientCheck.random([4], seed: 43, scale: 0.2) : .empty
        let base = layer
        func loss(_ x: D, _ alpha: D) -> Double {
            var l = base
            l.alpha = alpha
            var o = D.empty
            l.forward(&o, x, training: training)
            return GradientCheck.weightedSum(o, probe)
        }
        var out = D.empty
        layer.forward(&out, x, training: training)
        var dx = D(zeros: x.shape)
        layer.backward(&dx, probe)
        expectGradient(dx, at: x) { loss($0, base.alpha) }
        var visited: [String] = []
        layer.visitParameters { name, value, grad in
            visited.append(name)
            expectGradient(grad, at: value) { loss(x, $0) }
        }
        #expect(visited == (kind.hasParameters ? ["alpha"] : []))
    }

    @Test func activationLayerBackwardAccumulatesAndZeroes() {
        let x = GradientCheck.random([3, 2], seed: 51), probe = GradientCheck.random([3, 2], seed: 52)
        var layer = ActivationLayer<Double>(.prelu, features: 2)
        var out = D.empty
        layer.forward(&out, x, training: true)
        var dx = D(zeros: x.shape)
        layer.backward(&dx, probe)
        let (dx1, da1) = (dx, layer.dAlpha)
        layer.forward(&out, x, training: true)
        layer.backward(&dx, probe)
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * dx1.data[i]) < 1e-12) }
        for i in 0..<2 { #expect(abs(layer.dAlpha.data[i] - 2 * da1.data[i]) < 1e-12) }
        layer.zeroGradients()
        #expect(layer.dAlpha.data == [0, 0])
        var stats: [String] = []
        var dice = ActivationLayer<Double>(.dice, features: 2)
        dice.visitStatistics { name, _ in stats.append(name) }
        #expect(stats == ["runningMean", "runningVar"])
    }
}

