import Testing
@testable import HeedLayers

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

    @Test func measureRunsBothStepAndRawReplay() {
        let bench = SelfAttentionBench(component: .block, batch: 2, length: 4, dim: 4, heads: 2)
        let r = bench.measure(repeats: 1, seconds: 0.001)
        #expect(r.layerSeconds > 0 && r.rawSeconds > 0 && r.ratio > 0)
        #expect(r.flops == bench.flops)
    }
}
