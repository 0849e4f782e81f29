import Testing
import HeedCore
@testable import HeedLayers

/// Dice in Float runs its elementwise passes in C (`heed_dice_apply`, `heed_dice_backward`);
/// Double keeps the Swift loops that the gradient checks in ActivationsTests cover. These
/// tests pin the C passes to the Swift reference: bit for bit against the same Swift loops
/// run in Float here, and within Float rounding of the Double path.
@Suite struct DiceKernelTests {
    /// A batch shape whose feature count is not a multiple of any vector width, and a mask
    /// with padded rows.
    static let rows = 9, d = 37
    static let mask: [Float] = [1, 0, 1, 1, 0, 1, 1, 1, 0]

    enum Case: String, CaseIterable, Sendable {
        case training, trainingMasked, inference
        var training: Bool { self != .inference }
        var masked: Bool { self == .trainingMasked }
    }

    struct Result {
        var out: [Float], normalized: [Float], gate: [Float]
        var dx: [Float], dAlpha: [Float], dxOnly: [Float], dAlphaOnly: [Float]
    }

    static func inputs() -> (x: Tensor<Double>, alpha: Tensor<Double>, mean: Tensor<Double>, variance: Tensor<Double>, dout: Tensor<Double>) {
        let x = GradientCheck.random([rows, d], seed: 51, scale: 2)
        let alpha = GradientCheck.random([d], seed: 52, scale: 0.5)
        let mean = GradientCheck.random([d], seed: 53, scale: 0.3)
        var variance = GradientCheck.random([d], seed: 54, scale: 0.5)
        for j in 0..<d { variance.data[j] = 0.2 + abs(variance.data[j]) }
        // A feature far from its mean drives the sigmoid into its clamped tails.
        var wide = x
        for r in 0..<rows { wide.data[r * d + 5] *= 60 }
        return (wide, alpha, mean, variance, GradientCheck.random([rows, d], seed: 55))
    }

    static func float(_ t: Tensor<Double>) -> Tensor<Float> { Tensor(shape: t.shape, data: t.data.map { Float($0) }) }

    /// The library's Dice (the C passes for Float).
    static func library<T: Real>(_ c: Case, _ x: Tensor<T>, _ alpha: Tensor<T>, _ mean: Tensor<T>, _ variance: Tensor<T>,
                                 _ dout: Tensor<T>) -> (out: Tensor<T>, cache: DiceCache<T>, dx: Tensor<T>, dAlpha: Tensor<T>,
                                                        dxOnly: Tensor<T>, dAlphaOnly: Tensor<T>) {
        var out = Tensor<T>.empty, cache = DiceCache<T>(), m = mean, v = variance
        let rowMask = c.masked ? Tensor<T>(shape: [rows], data: mask.map { T(Double($0)) }) : .empty
        diceForward(&out, &cache, &m, &v, x, alpha, rowMask: rowMask, training: c.training)
        // Accumulating onto non-zero gradients, as layers do.
        var dx = Tensor<T>(shape: x.shape, data: [T](repeating: T(0.25), count: x.count))
        var dAlpha = Tensor<T>(shape: alpha.shape, data: [T](repeating: T(-0.5), count: alpha.count))
        diceBackward(&dx, &dAlpha, dout, x, alpha, cache)
        var dxOnly = Tensor<T>(zeros: x.shape), noAlpha = Tensor<T>.empty
        diceBackward(&dxOnly, &noAlpha, dout, x, alpha, cache)
        var noX = Tensor<T>.empty, dAlphaOnly = Tensor<T>(zeros: alpha.shape)
        diceBackward(&noX, &dAlphaOnly, dout, x, alpha, cache)
        return (out, cache, dx, dAlpha, dxOnly, dAlphaOnly)
    }

    /// The Swift loops of `diceForward`/`diceBackward` after the statistics, in Float, from
    /// the statistics the library computed (the statistics code is shared by both paths).
    static func swiftReference(_ c: Case, _ x: [Float], _ a: [Float], _ cache: DiceCache<Float>, _ dy: [Float]) -> Result {
        let mean = cache.mean.data, r = cache.invStd.data, statRows = cache.statisticsRows
        var out = [Float](repeating: 0, count: rows * d), sh = out, gate = out
        for row in 0..<rows {
            let off = row * d
            for j in 0..<d { sh[off + j] = (x[off + j] - mean[j]) * r[j] }
            sh.withUnsafeBufferPointer { ps in
                gate.withUnsafeMutableBufferPointer { pg in sigmoidRow(pg.baseAddress! + off, ps.baseAddress! + off, count: d) }
            }
            for j in 0..<d { out[off + j] = x[off + j] * (a[j] + (1 - a[j]) * gate[off + j]) }
        }
        func backward(wantX: Bool, wantAlpha: Bool, dx0: Float, dAlpha0: Float) -> ([Float], [Float]) {
            var ga = [Float](repeating: dAlpha0, count: d), s1 = [Float](repeating: 0, count: d), s2 = s1
            var dx = [Float](repeating: dx0, count: rows * d)
            if wantAlpha || (wantX && statRows > 0) {
                for row in 0..<rows {
                    let off = row * d
                    for j in 0..<d {
                        let p = gate[off + j], dyx = dy[off + j] * x[off + j]
                        let g = dyx * (1 - a[j]) * p * (1 - p)
                        ga[j] += dyx * (1 - p)
                        s1[j] += g
                        s2[j] += g * sh[off + j]
                    }
                }
            }
            if wantX {
                let invM: Float = statRows > 0 ? 1 / Float(statRows) : 0
                for row in 0..<rows {
                    let off = row * d
                    let batchTerms: Float = statRows > 0 && (!c.masked || mask[row] != 0) ? invM : 0
                    for j in 0..<d {
                        let p = gate[off + j], dyv = dy[off + j]
                        let g = dyv * x[off + j] * (1 - a[j]) * p * (1 - p)
                        dx[off + j] += dyv * (a[j] + (1 - a[j]) * p) + r[j] * (g - batchTerms * (s1[j] + sh[off + j] * s2[j]))
                    }
                }
            }
            return (dx, ga)
        }
        let both = backward(wantX: true, wantAlpha: true, dx0: 0.25, dAlpha0: -0.5)
        let xOnly = backward(wantX: true, wantAlpha: false, dx0: 0, dAlpha0: 0)
        let alphaOnly = backward(wantX: false, wantAlpha: true, dx0: 0, dAlpha0: 0)
        return Result(out: out, normalized: sh, gate: gate, dx: both.0, dAlpha: both.1, dxOnly: xOnly.0, dAlphaOnly: alphaOnly.1)
    }

    @Test(arguments: Case.allCases)
    func floatKernelsEqualTheSwiftLoopsBitForBit(c: Case) {
        let (x, alpha, mean, variance, dout) = Self.inputs()
        let lib = Self.library(c, Self.float(x), Self.float(alpha), Self.float(mean), Self.float(variance), Self.float(dout))
        #expect(lib.cache.statisticsRows == (c.training ? (c.masked ? 6 : Self.rows) : 0))
        let ref = Self.swiftReference(c, Self.float(x).data, Self.float(alpha).data, lib.cache, Self.float(dout).data)
        #expect(lib.out.data == ref.out, "\(c) forward output")
        #expect(lib.cache.normalized.data == ref.normalized, "\(c) normalised input")
        #expect(lib.cache.gate.data == ref.gate, "\(c) gate")
        #expect(lib.dx.data == ref.dx, "\(c) dx (accumulated)")
        #expect(lib.dAlpha.data == ref.dAlpha, "\(c) dAlpha (accumulated)")
        #expect(lib.dxOnly.data == ref.dxOnly, "\(c) dx without dAlpha")
        #expect(lib.dAlphaOnly.data == ref.dAlphaOnly, "\(c) dAlpha without dx")
    }

    /// The same passes against the Double path (Swift loops, exact sigmoid), whose gradients
    /// the central-difference checks cover: equal up to Float rounding.
    @Test(arguments: Case.allCases)
    func floatKernelsMatchTheDoublePath(c: Case) {
        let (x, alpha, mean, variance, dout) = Self.inputs()
        let lib = Self.library(c, Self.float(x), Self.float(alpha), Self.float(mean), Self.float(variance), Self.float(dout))
        let ref = Self.library(c, x, alpha, mean, variance, dout)
        func close(_ a: Tensor<Float>, _ b: Tensor<Double>, _ what: String) {
            #expect(a.count == b.count, "\(c) \(what) size")
            var worst = 0.0
            for (u, v) in zip(a.data, b.data) { worst = max(worst, abs(Double(u) - v) / (1 + abs(v))) }
            #expect(worst < 2e-5, "\(c) \(what): worst relative difference \(worst)")
        }
        close(lib.out, ref.out, "output")
        close(lib.cache.gate, ref.cache.gate, "gate")
        close(lib.dx, ref.dx, "dx")
        close(lib.dAlpha, ref.dAlpha, "dAlpha")
        close(lib.dxOnly, ref.dxOnly, "dx without dAlpha")
        close(lib.dAlphaOnly, ref.dAlphaOnly, "dAlpha without dx")
    }
}
