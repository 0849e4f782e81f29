import Testing
import HeedCore
@testable import HeedLayers

@Suite struct DropoutTests {
    typealias D = Tensor<Double>

    @Test func keepsExpectedFractionAndScalesKeptElements() {
        let x = Tensor<Float>(shape: [200, 100], data: [Float](repeating: 2, count: 20_000))
        var out = Tensor<Float>.empty, mask = Tensor<Float>.empty
        var rng = SeededGenerator(seed: 7)
        dropoutForward(&out, &mask, x, rate: 0.3, generator: &rng)
        let kept = mask.data.filter { $0 != 0 }.count
        // 20,000 Bernoulli(0.7) draws: standard deviation ≈ 65, so ±400 is a wide margin.
        #expect(abs(kept - 14_000) < 400)
        #expect(mask.data.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
        for i in 0..<x.count { #expect(out.data[i] == x.data[i] * mask.data[i]) }
        let mean = out.data.reduce(0, +) / Float(out.count)
        #expect(abs(mean - 2) < 0.05)
    }

    @Test func sameSeedGivesSameMaskAndNewStepsGiveNewMasks() {
        let x = GradientCheck.random([8, 8], seed: 1)
        var a = DropoutLayer<Double>(rate: 0.5, seed: 99), b = DropoutLayer<Double>(rate: 0.5, seed: 99)
        var oa = D.empty, ob = D.empty
        a.forward(&oa, x, training: true)
        b.forward(&ob, x, training: true)
        #expect(oa == ob)
        let first = oa
        a.forward(&oa, x, training: true)
        #expect(oa != first)
    }

    @Test func gradientMatchesCentralDifferencesAndDroppedPositionsGetZero() {
        let x = GradientCheck.random([6, 5], seed: 2), probe = GradientCheck.random([6, 5], seed: 3)
        func loss(_ x: D) -> Double {
            var rng = SeededGenerator(seed: 42), out = D.empty, mask = D.empty
            dropoutForward(&out, &mask, x, rate: 0.4, generator: &rng)
            return GradientCheck.weightedSum(out, probe)
        }
        var rng = SeededGenerator(seed: 42), out = D.empty, mask = D.empty
        dropoutForward(&out, &mask, x, rate: 0.4, generator: &rng)
        var dx = D(zeros: x.shape)
        dropoutBackward(&dx, probe, mask)
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x, loss)) == nil)
        #expect(mask.data.contains(0) && mask.data.contains { $0 != 0 })
        for i in 0..<x.count where mask.data[i] == 0 { #expect(dx.data[i] == 0) }
    }

    @Test func evaluationIsTheIdentity() {
        let x = GradientCheck.random([4, 3], seed: 4), dout = GradientCheck.random([4, 3], seed: 5)
        var layer = DropoutLayer<Double>(rate: 0.9, seed: 1)
        var out = D.empty
        layer.forward(&out, x, training: false)
        #expect(out == x)
        var dx = D(zeros: x.shape)
        layer.backward(&dx, dout)
        #expect(dx == dout)
    }

    @Test func residualFormAddsTheSkipPathToTheSameMask() {
        let x = GradientCheck.random([7, 5], seed: 6), skip = GradientCheck.random([7, 5], seed: 7)
        var plain = D.empty, plainMask = D.empty, fused = D.empty, fusedMask = D.empty
        var r1 = SeededGenerator(seed: 11), r2 = SeededGenerator(seed: 11)
        dropoutForward(&plain, &plainMask, x, rate: 0.3, generator: &r1)
        dropoutResidualForward(&fused, &fusedMask, x, residual: skip, rate: 0.3, generator: &r2)
        #expect(fusedMask == plainMask)
        for i in 0..<x.count { #expect(fused.data[i] == skip.data[i] + plain.data[i]) }
        // Both forms consume the generator alike, so later masks stay in step too.
        #expect(r1.next() == r2.next())
    }

    @Test(arguments: [true, false])
    func layerResidualForwardAndOverwritingBackwardMatchTheAccumulatingForms(training: Bool) {
        let x = GradientCheck.random([4, 9], seed: 8), skip = GradientCheck.random([4, 9], seed: 9)
        let dout = GradientCheck.random([4, 9], seed: 10)
        var a = DropoutLayer<Double>(rate: 0.25, seed: 5), b = DropoutLayer<Double>(rate: 0.25, seed: 5)
        var dropped = D.empty, sum = D.empty, fused = D.empty
        a.forward(&dropped, x, training: training)
        residualForward(&sum, skip, dropped)
        b.forward(&fused, x, addingTo: skip, training: training)
        #expect(fused == sum)
        var accumulated = D(zeros: x.shape), overwritten = GradientCheck.random([4, 9], seed: 11)
        a.backward(&accumulated, dout)
        b.backward(overwriting: &overwritten, dout)
        #expect(overwritten == accumulated)
    }
}
