import Testing
@testable import HeedLayers

@Suite struct SigmoidRowTests {
    @Test func floatFastPathMatchesExactSigmoid() {
        var xs: [Float] = []
        var v: Float = -110
        while v <= 110 { xs.append(v); v += 0.0037 }
        xs += [0, -0.0, 1e-8, -1e-8, 1e30, -1e30, .infinity, -.infinity, .greatestFiniteMagnitude]
        var out = [Float](repeating: -1, count: xs.count)
        xs.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in sigmoidRow(po.baseAddress!, px.baseAddress!, count: xs.count) }
        }
        var worst = 0.0
        for (x, y) in zip(xs, out) {
            let exact = 1 / (1 + Double.exp(-Double(x)))
            #expect(y.isFinite && y >= 0 && y <= 1, "sigmoid(\(x)) = \(y)")
            // Relative error where the result is a normal Float; absolute below that.
            let err = exact > 1e-30 ? abs(Double(y) - exact) / exact : abs(Double(y) - exact)
            worst = max(worst, err)
        }
        #expect(worst < 3e-7, "worst error \(worst)")
        // sigmoid(+inf) = 1, sigmoid(−inf) ≈ 0 (clamped to e^−88), sigmoid(0) = 1/2.
        #expect(out[out.count - 3] == 1)
        #expect(out[out.count - 2] < 1e-37)
        #expect(out[out.count - 9] == 0.5)
    }

    @Test func doublePathIsExactAndNaNPropagates() {
        let xs: [Double] = [-3, 0, 2.5]
        var out = [Double](repeating: 0, count: 3)
        xs.withUnsafeBufferPointer { px in out.withUnsafeMutableBufferPointer { po in sigmoidRow(po.baseAddress!, px.baseAddress!, count: 3) } }
        for i in 0..<3 { #expect(out[i] == 1 / (1 + Double.exp(-xs[i]))) }
        var nan: [Float] = [.nan]
        nan.withUnsafeMutableBufferPointer { p in sigmoidRow(p.baseAddress!, UnsafePointer(p.baseAddress!), count: 1) }
        #expect(nan[0].isNaN)
    }
}
