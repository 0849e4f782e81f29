import HeedCore
import HeedLayers
import Testing
@testable import HeedBench

@Suite struct SelfAttentionBenchTests {
    @Test(arguments: SelfAttentionBench.Component.allCases)
    func gemmFlopsMatchTheLayerFormula(component: SelfAttentionBench.Component) {
        let b = 3, l = 5, d = 8, h = 2
        let bench = SelfAttentionBench(component: component, batch: b, length: l, dim: d, heads: h)
        let n = Double(b * l), dd = Double(d)
        // Attention: 4 projections (2ND² each) forward and 2 GEMMs each backward (dx of the output
        // projection included), plus 2 forward and 4 backward per-head products of 2L²·dh.
        var expected = 4 * 3 * 2 * n * dd * dd + 6 * 2 * Double(l * l) * Double(d / h) * Double(b * h)
        if component == .block { expected += 2 * 3 * 2 * n * dd * dd }
        #expect(bench.flops == expected)
        #expect(bench.gemms.filter { $0.count == b * h }.count == 6)
    }

    /// The benchmarked step is the real training step: its output and input gradient equal,
    /// to the bit, those of the layer (or block) built from the same seed and run directly.
    @Test(arguments: SelfAttentionBench.Component.allCases)
    func benchmarkedStepComputesTheUnbenchmarkedLayer(component: SelfAttentionBench.Component) {
        let (b, l, d, h) = (2, 6, 8, 2)
        let bench = SelfAttentionBench(component: component, batch: b, length: l, dim: d, heads: h, seed: 9)
        bench.step()
        // The same draws in the same order as the bench's init.
        var rng = SeededGenerator(seed: 9)
        var attention = SelfAttentionLayer<Float>(dim: d, heads: h, causal: true, generator: &rng)
        var block = SelfAttentionBlock<Float>(dim: d, heads: h, hidden: d, causal: true, dropout: 0.2, generator: &rng)
        let x = Tensor<Float>(gaussian: [b, l, d], std: 1, generator: &rng)
        let mask = Tensor<Float>(shape: [b, l], data: [Float](repeating: 1, count: b * l))
        let dout = Tensor<Float>(gaussian: [b, l, d], std: 1e-3, generator: &rng)
        var out = Tensor<Float>.empty, dx = Tensor<Float>(zeros: [b, l, d])
        switch component {
        case .attention:
            attention.forward(&out, x, mask: mask)
            attention.backward(&dx, dout)
        case .block:
            block.forward(&out, x, mask: mask, training: true)
            block.backward(&dx, dout)
        }
        #expect(bench.lastOutput.shape == [b, l, d] && bench.lastOutput.data == out.data)
        #expect(bench.accumulatedInputGradient.data == dx.data)
        #expect(dx.data.contains { $0 != 0 } && out.data.contains { $0 != 0 })
    }

    /// The timing loop against bodies of known length, on a clock the bodies advance (a
    /// "layer" of 1/256 s, a "raw" replay of 1/2048 s: binary fractions, so every sum is
    /// exact), so the figures are exact on any host: at
    /// least 2 steps per repeat, seconds per step, ratio raw/layer 0.125 and GFLOP/s from
    /// them. Swapping the bodies, inverting the ratio or not dividing by the step count
    /// fails it.
    @Test func measureReportsTheTimesOfKnownBodies() {
        var clock = 0.0
        var layerRuns = 0
        let r = SelfAttentionBench.measure(flops: 8e6, repeats: 3, seconds: 5.0 / 256,
                                           layer: { clock += 1.0 / 256; layerRuns += 1 }, raw: { clock += 1.0 / 2048 }, now: { clock })
        #expect(r.layerSeconds == 1.0 / 256, "layer \(r.layerSeconds)")
        #expect(r.rawSeconds == 1.0 / 2048, "raw \(r.rawSeconds)")
        #expect(r.ratio == 0.125, "ratio \(r.ratio)")
        #expect(r.layerGFLOPs == r.flops / r.layerSeconds / 1e9)
        // warm-up, one sizing run, then 3 repeats of (5/256) / (1/256) = 5 steps
        #expect(layerRuns == 1 + 1 + 3 * 5)
    }
}
