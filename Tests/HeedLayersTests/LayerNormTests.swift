import Testing
@testable import HeedLayers

@Suite struct LayerNormTests {
    typealias D = Tensor<Double>

    @Test func forwardNormalisesEachRow() {
        let x = D(shape: [2, 4], data: [1, 2, 3, 4, -2, 0, 0, 2])
        var layer = LayerNormLayer<Double>(features: 4, epsilon: 0)
        layer.gain = D(shape: [4], data: [1, 2, 1, 1])
        layer.bias = D(shape: [4], data: [0, 0, 0, 1])
        var out = D.empty
        layer.forward(&out, x)
        // Row 0: mean 2.5, var 1.25; row 1: mean 0, var 2.
        let s0 = 1.25.squareRoot(), s1 = 2.0.squareRoot()
        let expected = [-1.5 / s0, 2 * -0.5 / s0, 0.5 / s0, 1.5 / s0 + 1, -2 / s1, 0, 0, 2 / s1 + 1]
        for i in 0..<8 { #expect(abs(out.data[i] - expected[i]) < 1e-12) }
    }

    @Test func constantRowGivesBiasNotNaN() {
        var layer = LayerNormLayer<Float>(features: 3)
        layer.bias = Tensor(shape: [3], data: [0.5, -1, 2])
        var out = Tensor<Float>.empty
        layer.forward(&out, Tensor(zeros: [1, 3]))
        #expect(out.data == [0.5, -1, 2])
        var dx = Tensor<Float>(zeros: [1, 3])
        layer.backward(&dx, Tensor(shape: [1, 3], data: [1, 2, 3]))
        #expect(dx.data.allSatisfy { $0.isFinite })
    }

    @Test(arguments: [(1, 5), (4, 3), (3, 8)])
    func gradientsMatchCentralDifferences(shape: (Int, Int)) {
        let (rows, d) = shape
        let x = GradientCheck.random([rows, d], seed: 1, scale: 2)
        let gain = GradientCheck.random([d], seed: 2), bias = GradientCheck.random([d], seed: 3)
        let probe = GradientCheck.random([rows, d], seed: 4)
        func loss(_ x: D, _ g: D, _ b: D) -> Double {
            var out = D.empty, n = D.empty, r = D.empty
            layerNormForward(&out, &n, &r, x, g, b)
            return GradientCheck.weightedSum(out, probe)
        }
        var layer = LayerNormLayer<Double>(features: d)
        layer.gain = gain
        layer.bias = bias
        var out = D.empty
        layer.forward(&out, x)
        var dx = D(zeros: x.shape)
        layer.backward(&dx, probe)
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x) { loss($0, gain, bias) }) == nil)
        var names: [String] = []
        layer.visitParameters { name, value, grad in
            names.append(name)
            let numeric = GradientCheck.numeric(at: value) { name == "gain" ? loss(x, $0, bias) : loss(x, gain, $0) }
            #expect(GradientCheck.firstMismatch(analytic: grad, numeric: numeric) == nil, "\(name)")
        }
        #expect(names == ["gain", "bias"])
        layer.zeroGradients()
        #expect(layer.dGain.data.allSatisfy { $0 == 0 } && layer.dBias.data.allSatisfy { $0 == 0 })
    }
}
