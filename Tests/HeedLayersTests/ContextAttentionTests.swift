import Testing
import HeedCore
@testable import HeedLayers

/// Three sequences of length 4: right-padded, left-padded with a gap, fully padded.
private let mask = Tensor<Double>(shape: [3, 4], data: [1, 1, 1, 0,
                                                        0, 1, 0, 1,
                                                        0, 0, 0, 0])

private func makeLayer(_ activation: ActivationKind, _ weighting: TargetAttentionWeighting, context: Int,
                       dim: Int = 3) -> ContextAttentionLayer<Double> {
    var rng = SeededGenerator(seed: 9)
    var layer = ContextAttentionLayer<Double>(dim: dim, contextWidth: context, hidden: [5, 4], activation: activation,
                                              weighting: weighting, generator: &rng)
    // Non-zero biases and slopes, so a dropped term changes the result.
    var seed: UInt64 = 100
    layer.visitParameters { _, value, _ in
        value = GradientCheck.random(value.shape, seed: seed, scale: 0.7)
        seed += 1
    }
    return layer
}

private func run(_ layer: inout ContextAttentionLayer<Double>, _ e: Tensor<Double>, _ v: Tensor<Double>,
                 _ c: Tensor<Double>) -> Tensor<Double> {
    var out = Tensor<Double>.empty
    layer.forward(&out, behaviours: e, target: v, context: c, mask: mask, training: true)
    return out
}

/// The `attention-price` model's attention with price inputs (`ContextAttentionLayer`) and
/// its product fusion kernel: gradients against central differences in Double, the context
/// reaching the weights, padding ignored, and equality with DIN's unit when there is no context.
@Suite struct ContextAttentionTests {
    @Test func linearUnitMatchesHandComputedWeights() {
        // No hidden layer, D = 1, C = 1: score = [e, v, e − v, e ⊙ v, c] · W + b.
        var rng = SeededGenerator(seed: 1)
        var layer = ContextAttentionLayer<Double>(dim: 1, contextWidth: 1, hidden: [], activation: .relu, weighting: .raw, generator: &rng)
        layer.mlp.weights[0] = Tensor(shape: [5, 1], data: [1, 2, 3, 4, -2])
        layer.mlp.biases[0] = Tensor(shape: [1], data: [0.5])
        let e = Tensor<Double>(shape: [1, 2, 1], data: [2, -1]), v = Tensor<Double>(shape: [1, 1], data: [3])
        var out = Tensor<Double>.empty
        layer.forward(&out, behaviours: e, target: v, context: Tensor(shape: [1, 1], data: [1.5]),
                      mask: Tensor(shape: [1, 2], data: [1, 1]), training: true)
        // e = 2: 2 + 6 + 3·(−1) + 4·6 − 2·1.5 + 0.5 = 26.5; e = −1: −1 + 6 + 3·(−4) + 4·(−3) − 3 + 0.5 = −21.5
        #expect(layer.attention.data == [26.5, -21.5])
        #expect(out.data == [26.5 * 2 + 21.5])
    }

    /// With no context the layer is DIN's unit: same weights drawn, same outputs and gradients.
    @Test(arguments: TargetAttentionWeighting.allCases)
    func withoutContextItEqualsTargetAttention(weighting: TargetAttentionWeighting) {
        var rng = SeededGenerator(seed: 4)
        var din = TargetAttentionLayer<Double>(dim: 3, hidden: [5, 4], activation: .dice, weighting: weighting, generator: &rng)
        var layer = makeLayer(.dice, weighting, context: 0)
        din.mlp = layer.mlp
        let e = GradientCheck.random([3, 4, 3], seed: 1), v = GradientCheck.random([3, 3], seed: 2)
        var expected = Tensor<Double>.empty
        din.forward(&expected, behaviours: e, target: v, mask: mask, training: true)
        // DIN's unit computes its first layer factored ([e, e ⊙ v]·[W1 + W3; W4] + v·(W2 − W3),
        // TargetAttentionFactored.swift): the same function and gradients, rounded differently.
        func close(_ a: Tensor<Double>, _ b: Tensor<Double>) -> Bool {
            a.shape == b.shape && zip(a.data, b.data).allSatisfy { abs($0 - $1) <= 1e-12 * (1 + abs($1)) }
        }
        #expect(close(run(&layer, e, v, .empty), expected))
        let dout = GradientCheck.random([3, 3], seed: 3)
        var de1 = Tensor<Double>(zeros: e.shape), dv1 = Tensor<Double>(zeros: v.shape)
        var de2 = de1, dv2 = dv1, dc = Tensor<Double>.empty
        din.backward(&de1, &dv1, dout)
        layer.backward(&de2, &dv2, &dc, dout)
        #expect(close(de1, de2) && close(dv1, dv2))
        #expect(din.mlp.dWeights.count == layer.mlp.dWeights.count)
        for (a, b) in zip(din.mlp.dWeights, layer.mlp.dWeights) { #expect(close(a, b)) }
    }

    @Test(arguments: [ActivationKind.dice, .prelu, .relu])
    func gradientsMatchCentralDifferences(activation: ActivationKind) {
        for weighting in TargetAttentionWeighting.allCases {
            let e = GradientCheck.random([3, 4, 3], seed: 8), v = GradientCheck.random([3, 3], seed: 9)
            let c = GradientCheck.random([3, 2], seed: 17)
            let probe = GradientCheck.random([3, 3], seed: 10)
            let fresh = makeLayer(activation, weighting, context: 2)
            func loss(_ layer: inout ContextAttentionLayer<Double>, _ e: Tensor<Double>, _ v: Tensor<Double>, _ c: Tensor<Double>) -> Double {
                GradientCheck.weightedSum(run(&layer, e, v, c), probe)
            }
            var layer = fresh
            _ = run(&layer, e, v, c)
            var de = Tensor<Double>(zeros: e.shape), dv = Tensor<Double>(zeros: v.shape), dc = Tensor<Double>(zeros: c.shape)
            layer.backward(&de, &dv, &dc, probe)

            let numericE = GradientCheck.numeric(at: e) { x in var l = fresh; return loss(&l, x, v, c) }
            let numericV = GradientCheck.numeric(at: v) { x in var l = fresh; return loss(&l, e, x, c) }
            let numericC = GradientCheck.numeric(at: c) { x in var l = fresh; return loss(&l, e, v, x) }
            #expect(GradientCheck.firstMismatch(analytic: de, numeric: numericE) == nil, "\(activation) \(weighting) behaviours")
            #expect(GradientCheck.firstMismatch(analytic: dv, numeric: numericV) == nil, "\(activation) \(weighting) target")
            #expect(GradientCheck.firstMismatch(analytic: dc, numeric: numericC) == nil, "\(activation) \(weighting) context")
            // Samples 0 and 1 have real behaviours, so their context moves the weights; sample 2 has none.
            #expect(dc.data[0..<4].contains { $0 != 0 } && dc.data[4..<6].allSatisfy { $0 == 0 })
            #expect(rowsFollowMask(de, mask, width: 3))
            let failures = layerParameterGradientFailures(analytic: layer, fresh: fresh,
                                                          visit: { l, body in l.visitParameters(body) },
                                                          loss: { loss(&$0, e, v, c) })
            #expect(failures.isEmpty, "\(activation) \(weighting): \(failures)")
        }
    }

    /// Different purchasing power (context) for the same behaviours and target gives different
    /// attention weights: the price inputs reach the attention.
    @Test func contextChangesTheWeights() {
        var layer = makeLayer(.prelu, .softmax, context: 2)
        let e = GradientCheck.random([3, 4, 3], seed: 20), v = GradientCheck.random([3, 3], seed: 21)
        _ = run(&layer, e, v, GradientCheck.random([3, 2], seed: 22))
        let first = layer.attention
        _ = run(&layer, e, v, GradientCheck.random([3, 2], seed: 23))
        #expect(first.data[0..<3] != layer.attention.data[0..<3])
    }

    @Test func elementwiseProductGradientsMatchCentralDifferences() {
        let x = GradientCheck.random([3, 4], seed: 30), y = GradientCheck.random([3, 4], seed: 31)
        let probe = GradientCheck.random([3, 4], seed: 32)
        var out = Tensor<Double>.empty
        elementwiseProductForward(&out, x, y)
        for i in 0..<x.count { #expect(out.data[i] == x.data[i] * y.data[i]) }
        var dx = Tensor<Double>(zeros: x.shape), dy = Tensor<Double>(zeros: y.shape)
        elementwiseProductBackward(&dx, &dy, probe, x, y)
        func f(_ a: Tensor<Double>, _ b: Tensor<Double>) -> Double {
            var o = Tensor<Double>.empty
            elementwiseProductForward(&o, a, b)
            return GradientCheck.weightedSum(o, probe)
        }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x) { f($0, y) }) == nil)
        #expect(GradientCheck.firstMismatch(analytic: dy, numeric: GradientCheck.numeric(at: y) { f(x, $0) }) == nil)
        // Backward accumulates.
        elementwiseProductBackward(&dx, &dy, probe, x, y)
        for i in 0..<x.count { #expect(abs(dx.data[i] - 2 * probe.data[i] * y.data[i]) < 1e-12) }
    }
}
