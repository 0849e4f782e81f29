import Testing
import HeedCore
@testable import HeedLayers

/// Right-padded, left-padded and fully padded sequences of length 4.
private let mask = Tensor<Double>(shape: [3, 4], data: [1, 1, 1, 0,
                                                        0, 1, 1, 1,
                                                        0, 0, 0, 0])

private func makeBlock(causal: Bool, dropout: Double) -> SelfAttentionBlock<Double> {
    var rng = SeededGenerator(seed: 77)
    var block = SelfAttentionBlock<Double>(dim: 4, heads: 2, hidden: 6, causal: causal, dropout: dropout, generator: &rng)
    // Non-trivial norms and biases, so every parameter's gradient path is exercised.
    var seed: UInt64 = 300
    block.visitParameters { name, value, _ in
        let base = name.hasSuffix("gain") ? 1.0 : 0.0
        value = GradientCheck.random(value.shape, seed: seed, scale: 0.6)
        for i in 0..<value.count { value.data[i] += base }
        seed += 1
    }
    return block
}

private func run(_ block: inout SelfAttentionBlock<Double>, _ x: Tensor<Double>, training: Bool = true) -> Tensor<Double> {
    var out = Tensor<Double>.empty
    block.forward(&out, x, mask: mask, training: training)
    return out
}

@Suite struct SelfAttentionBlockTests {
    @Test func composesNormAttentionFeedForwardAndResiduals() {
        // Rebuild the block from its parts in evaluation mode (dropout off).
        var block = makeBlock(causal: true, dropout: 0.5)
        let x = GradientCheck.random([3, 4, 4], seed: 1)
        let out = run(&block, x, training: false)
        var parts = makeBlock(causal: true, dropout: 0.5)
        var n1 = Tensor<Double>.empty, a = Tensor<Double>.empty, mid = Tensor<Double>.empty
        var n2 = Tensor<Double>.empty, f = Tensor<Double>.empty, expected = Tensor<Double>.empty
        parts.attentionNorm.forward(&n1, x)
        parts.attention.forward(&a, n1, mask: mask)
        residualForward(&mid, x, a)
        parts.feedForwardNorm.forward(&n2, mid)
        parts.feedForward.forward(&f, n2)
        residualForward(&expected, mid, f)
        for r in 0..<12 {
            for c in 0..<4 { #expect(out.data[r * 4 + c] == (mask.data[r] == 0 ? 0 : expected.data[r * 4 + c])) }
        }
    }

    @Test(arguments: [false, true])
    func paddedInputsNeitherChangeOutputsNorReceiveGradient(causal: Bool) {
        let x = GradientCheck.random([3, 4, 4], seed: 2)
        var block = makeBlock(causal: causal, dropout: 0.3)
        let base = run(&block, x)
        #expect(rowsFollowMask(base, mask, width: 4))
        var perturbed = x
        for r in 0..<12 where mask.data[r] == 0 { for c in 0..<4 { perturbed.data[r * 4 + c] -= 2 } }
        var other = makeBlock(causal: causal, dropout: 0.3)
        #expect(run(&other, perturbed) == base)
        var dx = Tensor<Double>(zeros: x.shape)
        block.backward(&dx, GradientCheck.random(x.shape, seed: 3))
        #expect(rowsFollowMask(dx, mask, width: 4))
    }

    @Test(arguments: [false, true])
    func gradientsMatchCentralDifferencesWithDropout(causal: Bool) {
        let x = GradientCheck.random([3, 4, 4], seed: 4), probe = GradientCheck.random([3, 4, 4], seed: 5)
        // A fresh copy per forward replays the same dropout masks.
        let fresh = makeBlock(causal: causal, dropout: 0.25)
        func loss(_ block: inout SelfAttentionBlock<Double>, _ x: Tensor<Double>) -> Double {
            GradientCheck.weightedSum(run(&block, x), probe)
        }
        var block = fresh
        _ = loss(&block, x)
        var dx = Tensor<Double>(zeros: x.shape)
        block.backward(&dx, probe)
        let numeric = GradientCheck.numeric(at: x) { v in var c = fresh; return loss(&c, v) }
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: numeric) == nil)
        let failures = layerParameterGradientFailures(analytic: block, fresh: fresh, visit: { b, body in b.visitParameters(body) },
                                                      loss: { loss(&$0, x) })
        #expect(failures.isEmpty, "\(failures)")
        var names: [String] = []
        block.visitParameters { n, _, _ in names.append(n) }
        #expect(names.count == 2 + 8 + 2 + 4 && names.first == "attentionNorm.gain" && names.last == "feedForward.b2")
    }

    @Test func dropoutIsActiveOnlyInTraining() {
        let x = GradientCheck.random([3, 4, 4], seed: 6)
        var a = makeBlock(causal: false, dropout: 0.5), b = makeBlock(causal: false, dropout: 0.0)
        #expect(run(&a, x, training: false) == run(&b, x, training: false))
        #expect(run(&a, x, training: true) != run(&b, x, training: true))
    }

    @Test func repeatedStepsReuseScratchAndAccumulate() {
        let x = GradientCheck.random([3, 4, 4], seed: 7), dout = GradientCheck.random([3, 4, 4], seed: 8)
        var block = makeBlock(causal: true, dropout: 0.0)
        var dx = Tensor<Double>(zeros: x.shape)
        _ = run(&block, x)
        block.backward(&dx, dout)
        let once = (dx, block.attention.grads.queryWeight, block.feedForward.dW1, block.attentionNorm.dGain)
        _ = run(&block, x)
        block.backward(&dx, dout)
        for i in 0..<dx.count { #expect(abs(dx.data[i] - 2 * once.0.data[i]) < 1e-12) }
        for i in 0..<once.1.count { #expect(abs(block.attention.grads.queryWeight.data[i] - 2 * once.1.data[i]) < 1e-12) }
        for i in 0..<once.2.count { #expect(abs(block.feedForward.dW1.data[i] - 2 * once.2.data[i]) < 1e-12) }
        for i in 0..<once.3.count { #expect(abs(block.attentionNorm.dGain.data[i] - 2 * once.3.data[i]) < 1e-12) }
        block.zeroGradients()
        block.visitParameters { _, _, g in #expect(g.data.allSatisfy { $0 == 0 }) }
    }
}
