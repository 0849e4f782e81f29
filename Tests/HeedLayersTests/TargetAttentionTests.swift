import Testing
import HeedCore
@testable import HeedLayers

/// Three sequences of length 4: right-padded, left-padded with a gap, fully padded.
private let mask = Tensor<Double>(shape: [3, 4], data: [1, 1, 1, 0,
                                                        0, 1, 0, 1,
                                                        0, 0, 0, 0])

private func makeLayer(_ activation: ActivationKind, _ weighting: TargetAttentionWeighting,
                       hidden: [Int] = [5, 4], dim: Int = 3) -> TargetAttentionLayer<Double> {
    var rng = SeededGenerator(seed: 9)
    var layer = TargetAttentionLayer<Double>(dim: dim, hidden: hidden, activation: activation, weighting: weighting, generator: &rng)
    // Non-zero biases and slopes, so a dropped term changes the result.
    var seed: UInt64 = 100
    layer.visitParameters { _, value, _ in
        value = GradientCheck.random(value.shape, seed: seed, scale: 0.7)
        seed += 1
    }
    return layer
}

private func run(_ layer: inout TargetAttentionLayer<Double>, _ e: Tensor<Double>, _ v: Tensor<Double>,
                 _ mask: Tensor<Double>) -> Tensor<Double> {
    var out = Tensor<Double>.empty
    layer.forward(&out, behaviours: e, target: v, mask: mask, training: true)
    return out
}

@Suite struct TargetAttentionTests {
    @Test func linearUnitMatchesHandComputedWeights() {
        // No hidden layer: score = [e, v, e − v, e ⊙ v] · W + b with D = 1.
        var rng = SeededGenerator(seed: 1)
        var layer = TargetAttentionLayer<Double>(dim: 1, hidden: [], activation: .relu, weighting: .raw, generator: &rng)
        layer.mlp.weights[0] = Tensor(shape: [4, 1], data: [1, 2, 3, 4])
        layer.mlp.biases[0] = Tensor(shape: [1], data: [0.5])
        let e = Tensor<Double>(shape: [1, 2, 1], data: [2, -1]), v = Tensor<Double>(shape: [1, 1], data: [3])
        let out = run(&layer, e, v, Tensor(shape: [1, 2], data: [1, 1]))
        // e = 2: 2 + 6 + 3·(−1) + 4·6 + 0.5 = 29.5; e = −1: −1 + 6 + 3·(−4) + 4·(−3) + 0.5 = −18.5
        #expect(layer.attention.data == [29.5, -18.5])
        #expect(out.data == [29.5 * 2 + 18.5])
    }

    @Test(arguments: [ActivationKind.relu, .prelu])
    func forwardMatchesLoopReference(activation: ActivationKind) {
        for weighting in TargetAttentionWeighting.allCases {
            var layer = makeLayer(activation, weighting)
            let e = GradientCheck.random([3, 4, 3], seed: 1), v = GradientCheck.random([3, 3], seed: 2)
            let out = run(&layer, e, v, mask)
            let alpha = activation == .prelu ? layer.mlp.activations.map(\.alpha) : []
            for s in 0..<3 {
                var scores: [Double] = []
                for j in 0..<4 where mask.data[s * 4 + j] != 0 {
                    let ej = Array(e.data[(s * 4 + j) * 3..<(s * 4 + j + 1) * 3]), vs = Array(v.data[s * 3..<(s + 1) * 3])
                    var h = ej + vs + zip(ej, vs).map { $0 - $1 } + zip(ej, vs).map { $0 * $1 }
                    for k in 0..<layer.mlp.weights.count {
                        let w = layer.mlp.weights[k], o = w.shape[1]
                        var next = layer.mlp.biases[k].data
                        for c in 0..<o { for i in 0..<h.count { next[c] += h[i] * w.data[i * o + c] } }
                        if k < layer.mlp.activations.count {
                            next = next.enumerated().map { c, x in x > 0 ? x : (alpha.isEmpty ? 0 : alpha[k].data[c] * x) }
                        }
                        h = next
                    }
                    scores.append(h[0])
                }
                if weighting == .softmax && !scores.isEmpty {
                    let z = scores.map { Glibc.exp($0) }.reduce(0, +)
                    scores = scores.map { Glibc.exp($0) / z }
                }
                let real = (0..<4).filter { mask.data[s * 4 + $0] != 0 }
                for c in 0..<3 {
                    var pooled = 0.0
                    for (n, j) in real.enumerated() { pooled += scores[n] * e.data[(s * 4 + j) * 3 + c] }
                    #expect(abs(out.data[s * 3 + c] - pooled) < 1e-12)
                }
                for (n, j) in real.enumerated() { #expect(abs(layer.attention.data[s * 4 + j] - scores[n]) < 1e-12) }
            }
        }
    }

    @Test func rawWeightsAreUnnormalisedAndSoftmaxWeightsSumToOne() {
        let e = GradientCheck.random([3, 4, 3], seed: 3), v = GradientCheck.random([3, 3], seed: 4)
        var raw = makeLayer(.dice, .raw), soft = makeLayer(.dice, .softmax)
        _ = run(&raw, e, v, mask); _ = run(&soft, e, v, mask)
        let rawSum = (0..<4).map { raw.attention.data[$0] }.reduce(0, +)
        #expect(abs(rawSum - 1) > 1e-3)
        for s in 0..<2 { #expect(abs((0..<4).map { soft.attention.data[s * 4 + $0] }.reduce(0, +) - 1) < 1e-12) }
        for layer in [raw, soft] {
            for p in 0..<12 where mask.data[p] == 0 { #expect(layer.attention.data[p] == 0) }
        }
    }

    @Test(arguments: [ActivationKind.dice, .prelu])
    func paddedBehavioursNeitherChangeOutputNorReceiveGradient(activation: ActivationKind) {
        for weighting in TargetAttentionWeighting.allCases {
            let e = GradientCheck.random([3, 4, 3], seed: 5), v = GradientCheck.random([3, 3], seed: 6)
            var layer = makeLayer(activation, weighting)
            let base = run(&layer, e, v, mask)
            #expect(base.data[6..<9].allSatisfy { $0 == 0 }, "fully padded sequence pools to zero")
            #expect(!base.data.contains { $0.isNaN })
            var perturbed = e
            for p in 0..<12 where mask.data[p] == 0 { for c in 0..<3 { perturbed.data[p * 3 + c] += 5 } }
            var other = makeLayer(activation, weighting)
            #expect(run(&other, perturbed, v, mask) == base)

            var de = Tensor<Double>(zeros: e.shape), dv = Tensor<Double>(zeros: v.shape)
            layer.backward(&de, &dv, GradientCheck.random([3, 3], seed: 7))
            #expect(rowsFollowMask(de, mask, width: 3))
            #expect(dv.data[6..<9].allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: [ActivationKind.dice, .prelu, .relu])
    func gradientsMatchCentralDifferences(activation: ActivationKind) {
        for weighting in TargetAttentionWeighting.allCases {
            let e = GradientCheck.random([3, 4, 3], seed: 8), v = GradientCheck.random([3, 3], seed: 9)
            let probe = GradientCheck.random([3, 3], seed: 10)
            let fresh = makeLayer(activation, weighting)
            func loss(_ layer: inout TargetAttentionLayer<Double>, _ e: Tensor<Double>, _ v: Tensor<Double>) -> Double {
                GradientCheck.weightedSum(run(&layer, e, v, mask), probe)
            }
            var layer = fresh
            _ = run(&layer, e, v, mask)
            var de = Tensor<Double>(zeros: e.shape), dv = Tensor<Double>(zeros: v.shape)
            layer.backward(&de, &dv, probe)

            let numericE = GradientCheck.numeric(at: e) { x in var c = fresh; return loss(&c, x, v) }
            let numericV = GradientCheck.numeric(at: v) { x in var c = fresh; return loss(&c, e, x) }
            #expect(GradientCheck.firstMismatch(analytic: de, numeric: numericE) == nil, "\(activation) \(weighting) behaviours")
            #expect(GradientCheck.firstMismatch(analytic: dv, numeric: numericV) == nil, "\(activation) \(weighting) target")
            let failures = layerParameterGradientFailures(analytic: layer, fresh: fresh,
                                                          visit: { l, body in l.visitParameters(body) },
                                                          loss: { loss(&$0, e, v) })
            #expect(failures.isEmpty, "\(activation) \(weighting): \(failures)")
        }
    }

    @Test func backwardAccumulatesAndZeroGradientsClears() {
        let e = GradientCheck.random([3, 4, 3], seed: 11), v = GradientCheck.random([3, 3], seed: 12)
        let dout = GradientCheck.random([3, 3], seed: 13)
        var layer = makeLayer(.dice, .softmax)
        _ = run(&layer, e, v, mask)
        var de = Tensor<Double>(zeros: e.shape), dv = Tensor<Double>(zeros: v.shape)
        layer.backward(&de, &dv, dout)
        let once = (de, dv, layer.mlp.dWeights)
        // Each forward serves one backward (MLPLayer's contract); replay the same step.
        _ = run(&layer, e, v, mask)
        layer.backward(&de, &dv, dout)
        for i in 0..<de.count { #expect(abs(de.data[i] - 2 * once.0.data[i]) < 1e-12) }
        for i in 0..<dv.count { #expect(abs(dv.data[i] - 2 * once.1.data[i]) < 1e-12) }
        for i in 0..<once.2[0].count { #expect(abs(layer.mlp.dWeights[0].data[i] - 2 * once.2[0].data[i]) < 1e-12) }
        var names: [String] = []
        layer.visitParameters { name, _, _ in names.append(name) }
        #expect(names == ["mlp.dense0.weight", "mlp.dense0.bias", "mlp.activation0.alpha",
                          "mlp.dense1.weight", "mlp.dense1.bias", "mlp.activation1.alpha",
                          "mlp.dense2.weight", "mlp.dense2.bias"])
        var stats: [String] = []
        layer.visitStatistics { name, _ in stats.append(name) }
        #expect(stats == ["mlp.activation0.runningMean", "mlp.activation0.runningVar",
                          "mlp.activation1.runningMean", "mlp.activation1.runningVar"])
        layer.zeroGradients()
        layer.visitParameters { _, _, grad in #expect(grad.data.allSatisfy { $0 == 0 }) }
    }

    @Test func allPaddedBatchOutputsZeros() {
        var layer = makeLayer(.dice, .softmax)
        let e = GradientCheck.random([2, 3, 3], seed: 14), v = GradientCheck.random([2, 3], seed: 15)
        let out = run(&layer, e, v, Tensor(zeros: [2, 3]))
        #expect(out.data.allSatisfy { $0 == 0 })
        var de = Tensor<Double>(zeros: e.shape), dv = Tensor<Double>(zeros: v.shape)
        layer.backward(&de, &dv, GradientCheck.random([2, 3], seed: 16))
        #expect(de.data.allSatisfy { $0 == 0 } && dv.data.allSatisfy { $0 == 0 })
    }
}

#if canImport(Glibc)
import Glibc
#endif
