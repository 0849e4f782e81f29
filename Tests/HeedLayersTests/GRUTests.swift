import Testing
import HeedCore
@testable import HeedLayers

/// Right-padded, left-padded, gapped and fully padded sequences of length 5.
private let mask = Tensor<Double>(shape: [4, 5], data: [1, 1, 1, 0, 0,
                                                        0, 0, 1, 1, 1,
                                                        1, 0, 1, 1, 0,
                                                        0, 0, 0, 0, 0])

private func makeLayer() -> GRULayer<Double> {
    var rng = SeededGenerator(seed: 21)
    var layer = GRULayer<Double>(inputSize: 3, hiddenSize: 4, generator: &rng)
    var seed: UInt64 = 500
    layer.visitParameters { _, value, _ in value = GradientCheck.random(value.shape, seed: seed, scale: 0.6); seed += 1 }
    return layer
}

private func run(_ layer: inout GRULayer<Double>, _ x: Tensor<Double>, _ h0: Tensor<Double>) -> (Tensor<Double>, Tensor<Double>) {
    var out = Tensor<Double>.empty, final = Tensor<Double>.empty
    layer.forward(&out, &final, x, mask: mask, initialState: h0)
    return (out, final)
}

private func logistic(_ x: Double) -> Double { 1 / (1 + Glibc.exp(-x)) }

@Suite struct GRUTests {
    @Test func forwardMatchesStepByStepReference() {
        var layer = makeLayer()
        let x = GradientCheck.random([4, 5, 3], seed: 1), h0 = GradientCheck.random([4, 4], seed: 2)
        let (out, final) = run(&layer, x, h0)
        let p = layer.params
        for s in 0..<4 {
            var h = Array(h0.data[s * 4..<(s + 1) * 4])
            for t in 0..<5 {
                let real = mask.data[s * 5 + t] != 0
                var next = h
                if real {
                    func pre(_ gate: Int, _ k: Int) -> (Double, Double) {
                        let c = gate * 4 + k
                        var xi = p.inputBias.data[c], hh = p.hiddenBias.data[c]
                        for i in 0..<3 { xi += x.data[(s * 5 + t) * 3 + i] * p.inputWeight.data[i * 12 + c] }
                        for j in 0..<4 { hh += h[j] * p.hiddenWeight.data[j * 12 + c] }
                        return (xi, hh)
                    }
                    for k in 0..<4 {
                        let (xr, hr) = pre(0, k), (xz, hz) = pre(1, k), (xn, hn) = pre(2, k)
                        let r = logistic(xr + hr), z = logistic(xz + hz)
                        let n = Glibc.tanh(xn + r * hn)
                        next[k] = (1 - z) * n + z * h[k]
                    }
                }
                for k in 0..<4 { #expect(abs(out.data[(s * 5 + t) * 4 + k] - (real ? next[k] : 0)) < 1e-12) }
                h = next
            }
            for k in 0..<4 { #expect(abs(final.data[s * 4 + k] - h[k]) < 1e-12) }
        }
        // The fully padded sequence keeps its initial state.
        #expect(Array(final.data[12..<16]) == Array(h0.data[12..<16]))
    }

    @Test func paddedStepsNeitherChangeOutputsNorReceiveGradient() {
        let x = GradientCheck.random([4, 5, 3], seed: 3), h0 = GradientCheck.random([4, 4], seed: 4)
        var layer = makeLayer()
        let (out, final) = run(&layer, x, h0)
        #expect(rowsFollowMask(out, mask, width: 4))
        var perturbed = x
        for r in 0..<20 where mask.data[r] == 0 { for c in 0..<3 { perturbed.data[r * 3 + c] += 4 } }
        var other = makeLayer()
        let (out2, final2) = run(&other, perturbed, h0)
        #expect(out2 == out && final2 == final)
        var dx = Tensor<Double>(zeros: x.shape), dh0 = Tensor<Double>(zeros: h0.shape)
        layer.backward(&dx, &dh0, GradientCheck.random(out.shape, seed: 5), GradientCheck.random(final.shape, seed: 6))
        #expect(rowsFollowMask(dx, mask, width: 3))
    }

    @Test(arguments: [(true, true), (true, false), (false, true)])
    func gradientsMatchCentralDifferences(useOutputs: Bool, useFinal: Bool) {
        let x = GradientCheck.random([4, 5, 3], seed: 7), h0 = GradientCheck.random([4, 4], seed: 8)
        let probeOut = GradientCheck.random([4, 5, 4], seed: 9), probeFinal = GradientCheck.random([4, 4], seed: 10)
        let fresh = makeLayer()
        func loss(_ layer: inout GRULayer<Double>, _ x: Tensor<Double>, _ h0: Tensor<Double>) -> Double {
            let (out, final) = run(&layer, x, h0)
            return (useOutputs ? GradientCheck.weightedSum(out, probeOut) : 0) + (useFinal ? GradientCheck.weightedSum(final, probeFinal) : 0)
        }
        var layer = fresh
        _ = loss(&layer, x, h0)
        var dx = Tensor<Double>(zeros: x.shape), dh0 = Tensor<Double>(zeros: h0.shape)
        layer.backward(&dx, &dh0, useOutputs ? probeOut : .empty, useFinal ? probeFinal : .empty)
        let nx = GradientCheck.numeric(at: x) { v in var c = fresh; return loss(&c, v, h0) }
        let nh = GradientCheck.numeric(at: h0) { v in var c = fresh; return loss(&c, x, v) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: nx) == nil)
        #expect(GradientCheck.firstMismatch(analytic: dh0, numeric: nh) == nil)
        let failures = layerParameterGradientFailures(analytic: layer, fresh: fresh, visit: { l, b in l.visitParameters(b) },
                                                      loss: { loss(&$0, x, h0) })
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func backwardAccumulatesAndZeroInitialStateIsDefault() {
        let x = GradientCheck.random([4, 5, 3], seed: 11)
        var a = makeLayer(), b = makeLayer()
        let (outA, finalA) = run(&a, x, .empty)
        let (outB, finalB) = run(&b, x, Tensor(zeros: [4, 4]))
        #expect(outA == outB && finalA == finalB)
        let dout = GradientCheck.random(outA.shape, seed: 12)
        var dx = Tensor<Double>(zeros: x.shape), none = Tensor<Double>.empty
        a.backward(&dx, &none, dout, .empty)
        let once = (dx, a.grads)
        _ = run(&a, x, .empty)
        a.backward(&dx, &none, dout, .empty)
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * once.0.data[i]) < 1e-12) }
        for i in 0..<once.1.hiddenWeight.count { #expect(abs(a.grads.hiddenWeight.data[i] - 2 * once.1.hiddenWeight.data[i]) < 1e-12) }
        var names: [String] = []
        a.visitParameters { n, _, _ in names.append(n) }
        #expect(names == ["inputWeight", "hiddenWeight", "inputBias", "hiddenBias"])
        a.zeroGradients()
        a.visitParameters { _, _, g in #expect(g.data.allSatisfy { $0 == 0 }) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
