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

    /// The timing loop against bodies of known length (busy waits on the clock, so a loaded
    /// machine can only lengthen them, never shorten): a "layer" of 4 ms and a "raw" replay of
    /// 0.5 ms must give at least those seconds per step and a ratio raw/layer near 0.125. The
    /// upper bounds are loose (4× and 0.5) because two shared cores can deschedule a spin;
    /// swapping which body is timed as which, inverting the ratio (8) or not dividing by the
    /// step count (≥ 5×) still fails them.
    @Test func measureReportsTheTimesOfKnownBodies() {
        func spin(_ seconds: Double) -> () -> Void {
            {
                let clock = ContinuousClock(), end = clock.now.advanced(by: .nanoseconds(Int64(seconds * 1e9)))
                while clock.now < end {}
            }
        }
        let r = SelfAttentionBench.measure(flops: 8e6, repeats: 3, seconds: 0.02, layer: spin(0.004), raw: spin(0.0005))
        #expect(r.layerSeconds >= 0.004 && r.layerSeconds < 0.016, "layer \(r.layerSeconds)")
        #expect(r.rawSeconds >= 0.0005 && r.rawSeconds < r.layerSeconds / 2, "raw \(r.rawSeconds)")
        #expect(r.ratio > 0.03 && r.ratio < 0.5, "ratio \(r.ratio)")
        #expect(r.layerGFLOPs <= 8e6 / 0.004 / 1e9 && r.layerGFLOPs == r.flops / r.layerSeconds / 1e9)
    }
}
