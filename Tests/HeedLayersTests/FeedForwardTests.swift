import Testing
import HeedCore
@testable import HeedLayers

@Suite struct FeedForwardTests {
    private func randomLayer(dim: Int, hidden: Int) -> FeedForwardLayer<Double> {
        var rng = SeededGenerator(seed: 5)
        var layer = FeedForwardLayer<Double>(dim: dim, hidden: hidden, generator: &rng)
        var seed: UInt64 = 40
        layer.visitParameters { _, value, _ in value = GradientCheck.random(value.shape, seed: seed); seed += 1 }
        return layer
    }

    @Test func forwardMatchesHandComputedValues() {
        var rng = SeededGenerator(seed: 1)
        var layer = FeedForwardLayer<Double>(dim: 2, hidden: 2, generator: &rng)
        layer.w1 = Tensor(shape: [2, 2], data: [1, -1, 2, 1]); layer.b1 = Tensor(shape: [2], data: [0, -1])
        layer.w2 = Tensor(shape: [2, 2], data: [1, 2, 3, 4]); layer.b2 = Tensor(shape: [2], data: [0.5, -0.5])
        var out = Tensor<Double>.empty
        layer.forward(&out, Tensor(shape: [1, 2, 2], data: [1, 1, -1, 2]))
        // [1,1]: pre [3, -1] → relu [3, 0] → [3.5, 5.5]; [-1,2]: pre [3, 2] → [3 + 6 + .5, 6 + 8 − .5]
        #expect(out.shape == [1, 2, 2])
        #expect(out.data == [3.5, 5.5, 9.5, 13.5])
    }

    @Test(arguments: [(4, 3, 5), (7, 4, 8)])
    func gradientsMatchCentralDifferences(shape: (Int, Int, Int)) {
        let (rows, dim, hidden) = shape
        let x = GradientCheck.random([rows, dim], seed: 2), probe = GradientCheck.random([rows, dim], seed: 3)
        let fresh = randomLayer(dim: dim, hidden: hidden)
        func loss(_ layer: inout FeedForwardLayer<Double>, _ x: Tensor<Double>) -> Double {
            var out = Tensor<Double>.empty
            layer.forward(&out, x)
            return GradientCheck.weightedSum(out, probe)
        }
        var layer = fresh
        _ = loss(&layer, x)
        var dx = Tensor<Double>(zeros: x.shape)
        layer.backward(&dx, probe)
        let numeric = GradientCheck.numeric(at: x) { v in var c = fresh; return loss(&c, v) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: numeric) == nil)
        let failures = layerParameterGradientFailures(analytic: layer, fresh: fresh, visit: { l, b in l.visitParameters(b) },
                                                      loss: { loss(&$0, x) })
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func residualPassesGradientToBothBranches() {
        let x = GradientCheck.random([2, 3], seed: 6), y = GradientCheck.random([2, 3], seed: 7)
        var out = Tensor<Double>.empty
        residualForward(&out, x, y)
        for i in 0..<6 { #expect(out.data[i] == x.data[i] + y.data[i]) }
        let dout = GradientCheck.random([2, 3], seed: 8)
        var dx = Tensor<Double>(shape: [2, 3], data: [Double](repeating: 1, count: 6)), dy = Tensor<Double>(zeros: [2, 3])
        residualBackward(&dx, &dy, dout)
        for i in 0..<6 { #expect(dx.data[i] == 1 + dout.data[i] && dy.data[i] == dout.data[i]) }
        var skip = Tensor<Double>.empty
        residualBackward(&skip, &dy, dout)
        for i in 0..<6 { #expect(dy.data[i] == 2 * dout.data[i]) }
    }

    @Test func repeatedStepsAccumulate() {
        let x = GradientCheck.random([5, 3], seed: 9), dout = GradientCheck.random([5, 3], seed: 10)
        var layer = randomLayer(dim: 3, hidden: 4)
        var out = Tensor<Double>.empty, dx = Tensor<Double>(zeros: x.shape)
        layer.forward(&out, x)
        layer.backward(&dx, dout)
        let once = (dx, layer.dW1, layer.dB2)
        layer.forward(&out, x)
        layer.backward(&dx, dout)
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * once.0.data[i]) < 1e-12) }
        for i in 0..<once.1.count { #expect(abs(layer.dW1.data[i] - 2 * once.1.data[i]) < 1e-12) }
        for i in 0..<once.2.count { #expect(abs(layer.dB2.data[i] - 2 * once.2.data[i]) < 1e-12) }
        layer.zeroGradients()
        layer.visitParameters { _, _, g in #expect(g.data.allSatisfy { $0 == 0 }) }
    }
}
