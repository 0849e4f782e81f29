import Testing
import HeedCore
@testable import HeedLayers

private typealias Params = SelfAttentionParameters<Double>

private let parameterPaths: [(String, WritableKeyPath<Params, Tensor<Double>>)] = [
    ("query.weight", \.queryWeight), ("query.bias", \.queryBias),
    ("key.weight", \.keyWeight), ("key.bias", \.keyBias),
    ("value.weight", \.valueWeight), ("value.bias", \.valueBias),
    ("output.weight", \.outputWeight), ("output.bias", \.outputBias),
]

/// Random parameters with non-zero biases, so a dropped bias term shows up.
private func randomParams(dim: Int, seed: UInt64) -> Params {
    var p = Params(zeros: dim)
    for (i, (_, path)) in parameterPaths.enumerated() {
        p[keyPath: path] = GradientCheck.random(p[keyPath: path].shape, seed: seed &+ UInt64(i), scale: 0.8)
    }
    return p
}

/// A loop-only reference of the forward, written from the paper's formulas.
private func referenceAttention(_ x: Tensor<Double>, _ mask: Tensor<Double>, _ p: Params, heads: Int, causal: Bool) -> Tensor<Double> {
    let b = x.shape[0], l = x.shape[1], d = x.shape[2], dh = d / heads
    func project(_ w: Tensor<Double>, _ bias: Tensor<Double>, _ s: Int, _ i: Int, _ c: Int) -> Double {
        var acc = bias.data[c]
        for k in 0..<d { acc += x.data[(s * l + i) * d + k] * w.data[k * d + c] }
        return acc
    }
    var out = Tensor<Double>(zeros: [b, l, d])
    for s in 0..<b {
        var ctx = [Double](repeating: 0, count: l * d)
        for i in 0..<l where mask.data[s * l + i] != 0 {
            for h in 0..<heads {
                var scores = [Double](repeating: -.infinity, count: l)
                for j in 0..<l where mask.data[s * l + j] != 0 && (!causal || j <= i) {
                    var dot = 0.0
                    for c in h * dh..<(h + 1) * dh {
                        dot += project(p.queryWeight, p.queryBias, s, i, c) * project(p.keyWeight, p.keyBias, s, j, c)
                    }
                    scores[j] = dot / Double(dh).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { $0 == -.infinity ? 0 : Glibc.exp($0 - m) }
                let z = e.reduce(0, +)
                for j in 0..<l where e[j] > 0 {
                    for c in h * dh..<(h + 1) * dh {
                        ctx[i * d + c] += e[j] / z * project(p.valueWeight, p.valueBias, s, j, c)
                    }
                }
            }
            for c in 0..<d {
                var acc = p.outputBias.data[c]
                for k in 0..<d { acc += ctx[i * d + k] * p.outputWeight.data[k * d + c] }
                out.data[(s * l + i) * d + c] = acc
            }
        }
    }
    return out
}

#if canImport(Glibc)
import Glibc
#endif

/// Three sequences of length 5: right-padded, left-padded, and fully padded.
private let paddedMask = Tensor<Double>(shape: [3, 5], data: [1, 1, 1, 0, 0,
                                                              0, 0, 1, 1, 1,
                                                              0, 0, 0, 0, 0])

@Suite struct SelfAttentionTests {
    private func forward(_ x: Tensor<Double>, _ mask: Tensor<Double>, _ p: Params, heads: Int, causal: Bool) -> Tensor<Double> {
        var out = Tensor<Double>.empty, cache = SelfAttentionCache<Double>()
        selfAttentionForward(&out, &cache, x, mask, p, heads: heads, causal: causal)
        return out
    }

    @Test(arguments: [(1, false), (2, false), (2, true), (4, true)])
    func forwardMatchesLoopReference(heads: Int, causal: Bool) {
        let x = GradientCheck.random([3, 5, 4], seed: 11)
        let p = randomParams(dim: 4, seed: 20)
        let out = forward(x, paddedMask, p, heads: heads, causal: causal)
        let ref = referenceAttention(x, paddedMask, p, heads: heads, causal: causal)
        #expect(out.shape == [3, 5, 4])
        for i in 0..<out.count { #expect(abs(out.data[i] - ref.data[i]) < 1e-12, "element \(i)") }
    }

    @Test func unmaskedForwardEqualsAllOnesMask() {
        let x = GradientCheck.random([2, 3, 4], seed: 12)
        let p = randomParams(dim: 4, seed: 30)
        let a = forward(x, .empty, p, heads: 2, causal: false)
        let b = forward(x, Tensor(shape: [2, 3], data: [Double](repeating: 1, count: 6)), p, heads: 2, causal: false)
        #expect(a == b)
    }

    @Test func paddedAndFullyMaskedRowsAreZeroNotNaN() {
        let x = GradientCheck.random([3, 5, 4], seed: 13)
        let p = randomParams(dim: 4, seed: 40)
        for causal in [false, true] {
            var out = Tensor<Double>.empty, cache = SelfAttentionCache<Double>()
            selfAttentionForward(&out, &cache, x, paddedMask, p, heads: 2, causal: causal)
            for r in 0..<15 {
                let row = out.data[r * 4..<(r + 1) * 4]
                if paddedMask.data[r] == 0 { #expect(row.allSatisfy { $0 == 0 }) } else { #expect(row.allSatisfy { $0 != 0 && !$0.isNaN }) }
            }
            #expect(!cache.probabilities.data.contains { $0.isNaN })
            // Every real query's weights sum to one over real keys only.
            for s in 0..<3 { for h in 0..<2 { for i in 0..<5 where paddedMask.data[s * 5 + i] != 0 {
                let row = (0..<5).map { cache.probabilities.data[((s * 2 + h) * 5 + i) * 5 + $0] }
                #expect(abs(row.reduce(0, +) - 1) < 1e-12)
                for j in 0..<5 where paddedMask.data[s * 5 + j] == 0 || (causal && j > i) { #expect(row[j] == 0) }
            } } }
        }
    }

    @Test(arguments: [false, true])
    func paddedInputsNeitherChangeOutputsNorReceiveGradient(causal: Bool) {
        let x = GradientCheck.random([3, 5, 4], seed: 14)
        let p = randomParams(dim: 4, seed: 50)
        let base = forward(x, paddedMask, p, heads: 2, causal: causal)
        var perturbed = x
        for r in 0..<15 where paddedMask.data[r] == 0 { for c in 0..<4 { perturbed.data[r * 4 + c] += 3 } }
        #expect(forward(perturbed, paddedMask, p, heads: 2, causal: causal) == base)

        var cache = SelfAttentionCache<Double>(), out = Tensor<Double>.empty
        selfAttentionForward(&out, &cache, x, paddedMask, p, heads: 2, causal: causal)
        var dx = Tensor<Double>(zeros: x.shape), grads = Params(zeros: 4)
        selfAttentionBackward(&dx, &grads, GradientCheck.random(x.shape, seed: 15), x, paddedMask, p, &cache, heads: 2)
        for r in 0..<15 {
            let row = dx.data[r * 4..<(r + 1) * 4]
            if paddedMask.data[r] == 0 { #expect(row.allSatisfy { $0 == 0 }) } else { #expect(row.contains { $0 != 0 }) }
        }
    }

    @Test func causalOutputsIgnoreLaterPositions() {
        let x = GradientCheck.random([1, 5, 4], seed: 16)
        let p = randomParams(dim: 4, seed: 60)
        let ones = Tensor<Double>(shape: [1, 5], data: [1, 1, 1, 1, 1])
        let base = forward(x, ones, p, heads: 2, causal: true)
        var later = x
        for c in 0..<4 { later.data[3 * 4 + c] += 1 }
        let changed = forward(later, ones, p, heads: 2, causal: true)
        #expect(Array(changed.data[0..<12]) == Array(base.data[0..<12]))
        #expect(Array(changed.data[12..<20]) != Array(base.data[12..<20]))
        // Without the causal mask position 0 does see position 3.
        #expect(Array(forward(later, ones, p, heads: 2, causal: false).data[0..<4]) != Array(forward(x, ones, p, heads: 2, causal: false).data[0..<4]))
    }

    @Test(arguments: [(1, false), (2, false), (2, true), (4, true)])
    func gradientsMatchCentralDifferences(heads: Int, causal: Bool) {
        let x = GradientCheck.random([3, 5, 4], seed: 17)
        let p = randomParams(dim: 4, seed: 70)
        let probe = GradientCheck.random([3, 5, 4], seed: 18)
        func loss(_ x: Tensor<Double>, _ p: Params) -> Double {
            GradientCheck.weightedSum(forward(x, paddedMask, p, heads: heads, causal: causal), probe)
        }
        var cache = SelfAttentionCache<Double>(), out = Tensor<Double>.empty
        selfAttentionForward(&out, &cache, x, paddedMask, p, heads: heads, causal: causal)
        var dx = Tensor<Double>(zeros: x.shape), grads = Params(zeros: 4)
        selfAttentionBackward(&dx, &grads, probe, x, paddedMask, p, &cache, heads: heads)

        let numericX = GradientCheck.numeric(at: x) { loss($0, p) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: numericX) == nil)
        for (name, path) in parameterPaths {
            let numeric = GradientCheck.numeric(at: p[keyPath: path]) { v in
                var q = p; q[keyPath: path] = v; return loss(x, q)
            }
            let mismatch = GradientCheck.firstMismatch(analytic: grads[keyPath: path], numeric: numeric)
            #expect(mismatch == nil, "\(name): \(String(describing: mismatch))")
            #expect(grads[keyPath: path].data.contains { $0 != 0 }, "\(name) gradient is all zero")
        }
    }

    @Test func layerBackwardAccumulatesAndVisitsEveryParameter() {
        var rng = SeededGenerator(seed: 3)
        var layer = SelfAttentionLayer<Double>(dim: 4, heads: 2, causal: true, generator: &rng)
        let x = GradientCheck.random([3, 5, 4], seed: 19), dout = GradientCheck.random([3, 5, 4], seed: 21)
        var out = Tensor<Double>.empty
        layer.forward(&out, x, mask: paddedMask)
        var dx1 = Tensor<Double>(zeros: x.shape)
        layer.backward(&dx1, dout)
        let once = layer.grads
        var dx2 = dx1
        // Each forward serves one backward; replay the same step.
        layer.forward(&out, x, mask: paddedMask)
        layer.backward(&dx2, dout)
        for i in 0..<dx1.count { #expect(abs(dx2.data[i] - 2 * dx1.data[i]) < 1e-12) }
        for (_, path) in parameterPaths {
            for i in 0..<once[keyPath: path].count {
                #expect(abs(layer.grads[keyPath: path].data[i] - 2 * once[keyPath: path].data[i]) < 1e-12)
            }
        }
        var names: [String] = []
        layer.visitParameters { name, value, grad in
            names.append(name)
            #expect(value.shape == grad.shape)
        }
        #expect(names == parameterPaths.map(\.0))
        layer.zeroGradients()
        #expect(layer.grads.queryWeight.data.allSatisfy { $0 == 0 })
    }

    @Test func floatForwardAgreesWithDouble() {
        let x = GradientCheck.random([2, 6, 8], seed: 22)
        let p = randomParams(dim: 8, seed: 80)
        let mask = Tensor<Double>(shape: [2, 6], data: [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1])
        let ref = forward(x, mask, p, heads: 2, causal: true)
        var pf = SelfAttentionParameters<Float>(zeros: 8)
        pf.queryWeight = p.queryWeight.converted(); pf.queryBias = p.queryBias.converted()
        pf.keyWeight = p.keyWeight.converted(); pf.keyBias = p.keyBias.converted()
        pf.valueWeight = p.valueWeight.converted(); pf.valueBias = p.valueBias.converted()
        pf.outputWeight = p.outputWeight.converted(); pf.outputBias = p.outputBias.converted()
        var out = Tensor<Float>.empty, cache = SelfAttentionCache<Float>()
        selfAttentionForward(&out, &cache, x.converted(), mask.converted(), pf, heads: 2, causal: true)
        for i in 0..<out.count { #expect(abs(Double(out.data[i]) - ref.data[i]) < 1e-5) }
    }
}
