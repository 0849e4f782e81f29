import Testing
import HeedCore
@testable import HeedLayers

@Suite struct MLPLayerTests {
    typealias D = Tensor<Double>

    /// A small MLP with random (non-zero) biases and PReLU/Dice slopes, so every parameter matters.
    func makeMLP(_ kind: ActivationKind, sizes: [Int] = [4, 5, 3, 2]) -> MLPLayer<Double> {
        var rng = SeededGenerator(seed: 3)
        var mlp = MLPLayer<Double>(sizes: sizes, activation: kind, generator: &rng)
        var seed: UInt64 = 100
        mlp.visitParameters { name, value, _ in
            if !name.hasSuffix(".weight") { value = GradientCheck.random(value.shape, seed: seed, scale: 0.5); seed += 1 }
        }
        return mlp
    }

    @Test func forwardMatchesHandComputedNetwork() {
        var rng = SeededGenerator(seed: 1)
        var mlp = MLPLayer<Double>(sizes: [2, 2, 1], activation: .relu, generator: &rng)
        mlp.weights = [D(shape: [2, 2], data: [1, -1, 2, 1]), D(shape: [2, 1], data: [3, -2])]
        mlp.biases = [D(shape: [2], data: [0, 0.5]), D(shape: [1], data: [0.25])]
        var out = D.empty
        mlp.forward(&out, D(shape: [2, 2], data: [1, 1, -1, 0.5]), training: false)
        // Row 0: hidden [3, 0.5] → 9 − 1 + 0.25; row 1: hidden relu([0, 2]) → −4 + 0.25.
        #expect(out.shape == [2, 1])
        #expect(out.data == [8.25, -3.75])
    }

    @Test(arguments: ActivationKind.allCases)
    func gradientsMatchCentralDifferences(kind: ActivationKind) {
        let mlp = makeMLP(kind)
        let x = GradientCheck.random([6, 4], seed: 1), probe = GradientCheck.random([6, 2], seed: 2)
        var trained = mlp
        var out = D.empty
        trained.forward(&out, x, training: true)
        var dx = D(zeros: x.shape)
        trained.backward(&dx, probe)

        func loss(_ m: MLPLayer<Double>, _ x: D) -> Double {
            var m = m, o = D.empty
            m.forward(&o, x, training: true)
            return GradientCheck.weightedSum(o, probe)
        }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x) { loss(mlp, $0) }) == nil)
        var expectedNames = ["dense0.weight", "dense0.bias"]
        if kind.hasParameters { expectedNames.append("activation0.alpha") }
        expectedNames += ["dense1.weight", "dense1.bias"]
        if kind.hasParameters { expectedNames.append("activation1.alpha") }
        expectedNames += ["dense2.weight", "dense2.bias"]
        var names: [String] = []
        trained.visitParameters { name, _, grad in
            names.append(name)
            let numeric = GradientCheck.numeric(at: paramValue(mlp, name)) { v in
                var m = mlp
                m.visitParameters { n, value, _ in if n == name { value = v } }
                return loss(m, x)
            }
            #expect(GradientCheck.firstMismatch(analytic: grad, numeric: numeric) == nil, "\(kind) \(name)")
        }
        #expect(names == expectedNames)
    }

    func paramValue(_ mlp: MLPLayer<Double>, _ name: String) -> D {
        var m = mlp, found = D.empty
        m.visitParameters { n, value, _ in if n == name { found = value } }
        return found
    }

    @Test func diceRowMaskKeepsPaddedRowsOutOfStatistics() {
        // Rows 1 and 4 are padding: moving them must not change the real rows' outputs, and the
        // gradient (through the statistics) must still match central differences.
        let mlp = makeMLP(.dice)
        let mask = D(shape: [6], data: [1, 0, 1, 1, 0, 1])
        let x = GradientCheck.random([6, 4], seed: 5), probe = GradientCheck.random([6, 2], seed: 6)
        func run(_ m: MLPLayer<Double>, _ x: D) -> D {
            var m = m, o = D.empty
            m.forward(&o, x, training: true, rowMask: mask)
            return o
        }
        var moved = x
        for j in 0..<4 { moved.data[4 + j] += 3; moved.data[16 + j] -= 2 }
        let a = run(mlp, x), b = run(mlp, moved)
        for r in [0, 2, 3, 5] { for j in 0..<2 { #expect(abs(a.data[r * 2 + j] - b.data[r * 2 + j]) < 1e-12) } }

        var trained = mlp, out = D.empty
        trained.forward(&out, x, training: true, rowMask: mask)
        var dx = D(zeros: x.shape)
        trained.backward(&dx, probe)
        let numeric = GradientCheck.numeric(at: x) { GradientCheck.weightedSum(run(mlp, $0), probe) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: numeric) == nil)
    }

    @Test func backwardAccumulatesAndZeroGradientsClears() {
        var mlp = makeMLP(.prelu)
        let x = GradientCheck.random([3, 4], seed: 7), probe = GradientCheck.random([3, 2], seed: 8)
        var out = D.empty, dx = D(zeros: x.shape)
        mlp.forward(&out, x, training: true)
        mlp.backward(&dx, probe)
        let once = mlp.dWeights, dx1 = dx
        mlp.forward(&out, x, training: true)
        mlp.backward(&dx, probe)
        for l in 0..<3 { for i in 0..<once[l].count { #expect(abs(mlp.dWeights[l].data[i] - 2 * once[l].data[i]) < 1e-12) } }
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * dx1.data[i]) < 1e-12) }
        mlp.zeroGradients()
        mlp.visitParameters { _, _, grad in #expect(grad.data.allSatisfy { $0 == 0 }) }
    }

    @Test func singleLayerIsAnAffineMap() {
        var rng = SeededGenerator(seed: 2)
        var mlp = MLPLayer<Double>(sizes: [3, 2], activation: .dice, generator: &rng)
        let x = GradientCheck.random([4, 3], seed: 9)
        var out = D.empty, ref = D.empty
        mlp.forward(&out, x, training: true)
        denseForward(&ref, x, mlp.weights[0], mlp.biases[0])
        #expect(out == ref)
        #expect(mlp.activations.isEmpty)
    }
}
