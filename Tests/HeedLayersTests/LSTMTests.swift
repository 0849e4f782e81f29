import Testing
import HeedCore
@testable import HeedLayers

/// Right-padded, left-padded, gapped and fully padded sequences of length 5.
private let mask = Tensor<Double>(shape: [4, 5], data: [1, 1, 1, 0, 0,
                                                        0, 0, 1, 1, 1,
                                                        1, 0, 1, 1, 0,
                                                        0, 0, 0, 0, 0])

private func makeLayer() -> LSTMLayer<Double> {
    var rng = SeededGenerator(seed: 31)
    var layer = LSTMLayer<Double>(inputSize: 3, hiddenSize: 4, generator: &rng)
    var seed: UInt64 = 700
    layer.visitParameters { _, value, _ in value = GradientCheck.random(value.shape, seed: seed, scale: 0.6); seed += 1 }
    return layer
}

private struct Run { var out, hidden, cell: Tensor<Double> }

private func run(_ layer: inout LSTMLayer<Double>, _ x: Tensor<Double>, _ h0: Tensor<Double>, _ c0: Tensor<Double>) -> Run {
    var r = Run(out: .empty, hidden: .empty, cell: .empty)
    layer.forward(&r.out, &r.hidden, &r.cell, x, mask: mask, initialHidden: h0, initialCell: c0)
    return r
}

private func logistic(_ x: Double) -> Double { 1 / (1 + Glibc.exp(-x)) }

@Suite struct LSTMTests {
    @Test func forwardMatchesStepByStepReference() {
        var layer = makeLayer()
        let x = GradientCheck.random([4, 5, 3], seed: 1)
        let h0 = GradientCheck.random([4, 4], seed: 2), c0 = GradientCheck.random([4, 4], seed: 3)
        let r = run(&layer, x, h0, c0)
        let p = layer.params
        for s in 0..<4 {
            var h = Array(h0.data[s * 4..<(s + 1) * 4]), c = Array(c0.data[s * 4..<(s + 1) * 4])
            for t in 0..<5 {
                let real = mask.data[s * 5 + t] != 0
                var hn = h, cn = c
                if real {
                    func pre(_ gate: Int, _ k: Int) -> Double {
                        let col = gate * 4 + k
                        var a = p.bias.data[col]
                        for i in 0..<3 { a += x.data[(s * 5 + t) * 3 + i] * p.inputWeight.data[i * 16 + col] }
                        for j in 0..<4 { a += h[j] * p.hiddenWeight.data[j * 16 + col] }
                        return a
                    }
                    for k in 0..<4 {
                        let i = logistic(pre(0, k)), f = logistic(pre(1, k)), g = Glibc.tanh(pre(2, k)), o = logistic(pre(3, k))
                        cn[k] = f * c[k] + i * g
                        hn[k] = o * Glibc.tanh(cn[k])
                    }
                }
                for k in 0..<4 { #expect(abs(r.out.data[(s * 5 + t) * 4 + k] - (real ? hn[k] : 0)) < 1e-12) }
                h = hn; c = cn
            }
            for k in 0..<4 {
                #expect(abs(r.hidden.data[s * 4 + k] - h[k]) < 1e-12)
                #expect(abs(r.cell.data[s * 4 + k] - c[k]) < 1e-12)
            }
        }
        #expect(Array(r.hidden.data[12..<16]) == Array(h0.data[12..<16]))
        #expect(Array(r.cell.data[12..<16]) == Array(c0.data[12..<16]))
    }

    @Test func forgetGateBiasStartsAtOne() {
        var rng = SeededGenerator(seed: 1)
        let p = LSTMParameters<Double>(input: 2, hidden: 3, generator: &rng)
        #expect(p.bias.data == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    }

    @Test func paddedStepsNeitherChangeOutputsNorReceiveGradient() {
        let x = GradientCheck.random([4, 5, 3], seed: 4)
        let h0 = GradientCheck.random([4, 4], seed: 5), c0 = GradientCheck.random([4, 4], seed: 6)
        var layer = makeLayer()
        let base = run(&layer, x, h0, c0)
        #expect(rowsFollowMask(base.out, mask, width: 4))
        var perturbed = x
        for r in 0..<20 where mask.data[r] == 0 { for c in 0..<3 { perturbed.data[r * 3 + c] -= 4 } }
        var other = makeLayer()
        let again = run(&other, perturbed, h0, c0)
        #expect(again.out == base.out && again.hidden == base.hidden && again.cell == base.cell)
        var dx = Tensor<Double>(zeros: x.shape), dh0 = Tensor<Double>(zeros: [4, 4]), dc0 = Tensor<Double>(zeros: [4, 4])
        layer.backward(&dx, &dh0, &dc0, GradientCheck.random(base.out.shape, seed: 7),
                       GradientCheck.random([4, 4], seed: 8), GradientCheck.random([4, 4], seed: 9))
        #expect(rowsFollowMask(dx, mask, width: 3))
    }

    @Test(arguments: [(true, true, true), (true, false, false), (false, true, false), (false, false, true)])
    func gradientsMatchCentralDifferences(useOutputs: Bool, useHidden: Bool, useCell: Bool) {
        let x = GradientCheck.random([4, 5, 3], seed: 10)
        let h0 = GradientCheck.random([4, 4], seed: 11), c0 = GradientCheck.random([4, 4], seed: 12)
        let probeOut = GradientCheck.random([4, 5, 4], seed: 13)
        let probeH = GradientCheck.random([4, 4], seed: 14), probeC = GradientCheck.random([4, 4], seed: 15)
        let fresh = makeLayer()
        func loss(_ layer: inout LSTMLayer<Double>, _ x: Tensor<Double>, _ h0: Tensor<Double>, _ c0: Tensor<Double>) -> Double {
            let r = run(&layer, x, h0, c0)
            return (useOutputs ? GradientCheck.weightedSum(r.out, probeOut) : 0)
                + (useHidden ? GradientCheck.weightedSum(r.hidden, probeH) : 0)
                + (useCell ? GradientCheck.weightedSum(r.cell, probeC) : 0)
        }
        var layer = fresh
        _ = loss(&layer, x, h0, c0)
        var dx = Tensor<Double>(zeros: x.shape), dh0 = Tensor<Double>(zeros: [4, 4]), dc0 = Tensor<Double>(zeros: [4, 4])
        layer.backward(&dx, &dh0, &dc0, useOutputs ? probeOut : .empty, useHidden ? probeH : .empty, useCell ? probeC : .empty)
        let nx = GradientCheck.numeric(at: x) { v in var c = fresh; return loss(&c, v, h0, c0) }
        let nh = GradientCheck.numeric(at: h0) { v in var c = fresh; return loss(&c, x, v, c0) }
        let nc = GradientCheck.numeric(at: c0) { v in var c = fresh; return loss(&c, x, h0, v) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: nx) == nil)
        #expect(GradientCheck.firstMismatch(analytic: dh0, numeric: nh) == nil)
        #expect(GradientCheck.firstMismatch(analytic: dc0, numeric: nc) == nil)
        let failures = layerParameterGradientFailures(analytic: layer, fresh: fresh, visit: { l, b in l.visitParameters(b) },
                                                      loss: { loss(&$0, x, h0, c0) })
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func backwardAccumulates() {
        let x = GradientCheck.random([4, 5, 3], seed: 16)
        var layer = makeLayer()
        let r = run(&layer, x, .empty, .empty)
        let dout = GradientCheck.random(r.out.shape, seed: 17)
        var dx = Tensor<Double>(zeros: x.shape), none1 = Tensor<Double>.empty, none2 = Tensor<Double>.empty
        layer.backward(&dx, &none1, &none2, dout, .empty, .empty)
        let once = (dx, layer.grads)
        _ = run(&layer, x, .empty, .empty)
        layer.backward(&dx, &none1, &none2, dout, .empty, .empty)
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * once.0.data[i]) < 1e-12) }
        for i in 0..<once.1.bias.count { #expect(abs(layer.grads.bias.data[i] - 2 * once.1.bias.data[i]) < 1e-12) }
        var names: [String] = []
        layer.visitParameters { n, _, _ in names.append(n) }
        #expect(names == ["inputWeight", "hiddenWeight", "bias"])
        layer.zeroGradients()
        layer.visitParameters { _, _, g in #expect(g.data.allSatisfy { $0 == 0 }) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
