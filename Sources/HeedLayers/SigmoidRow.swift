// A vectorisable logistic sigmoid over a contiguous run of values.
//
// libm's expf is a scalar call, so an elementwise sigmoid loop cannot vectorise and costs as
// much as a sizeable part of a GEMM at MLP widths (Dice applies one per hidden unit). For Float
// this computes e^−x with the Cephes expf scheme written branch-free: round x·log2(e) with the
// 1.5·2²³ trick, reduce with a two-part ln 2, a degree-7 polynomial for e^r on |r| ≤ ln2/2 and
// the power of two built in the exponent bits. Max relative error ~1.4e-7 (about 1 ulp; see
// SigmoidRowTests). Double keeps the exact libm path, so gradient checks are unaffected.

/// `out[i] = 1 / (1 + e^−x[i])` for `i < count`; `out` may equal `x`.
///
/// - Parameters:
///   - out: `count` elements, overwritten.
///   - x: `count` elements.
@inlinable
public func sigmoidRow<T: Real>(_ out: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, count: Int) {
    if T.self == Float.self {
        // Safe: T is Float here, so the rebinding is the identity on the same memory.
        out.withMemoryRebound(to: Float.self, capacity: count) { o in
            x.withMemoryRebound(to: Float.self, capacity: count) { xs in fastSigmoidFloat(o, xs, count: count) }
        }
    } else {
        for i in 0..<count { out[i] = sigmoid(x[i]) }
    }
}

/// The Float fast path of `sigmoidRow`; arguments are clamped so e^−x stays finite and normal.
@inlinable
func fastSigmoidFloat(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        var v = -x[i]
        v = v < -87 ? -87 : v
        v = v > 88 ? 88 : v
        out[i] = 1 / (1 + cephesExp(clamped: v))
    }
}

/// `e^x` for Float x already clamped to [−87, 88], within about one ulp of `expf`, as
/// straight-line arithmetic that vectorises (Cephes `expf`): x = n·ln2 + r with
/// |r| ≤ ln2/2 (Cody–Waite split of ln2), a degree-6 polynomial for e^r, and 2^n
/// assembled in the exponent bits.
@inlinable @inline(__always)
func cephesExp(clamped x: Float) -> Float {
    // Adding 1.5·2²³ rounds x·log2(e) to an integer n held in the low mantissa bits of t.
    let magic: Float = 12_582_912
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    // n = bits(t) − bits(1.5·2²³) ∈ [−126, 127], so n + 127 is a valid biased exponent.
    let scale = Float(bitPattern: (t.bitPattern &- magic.bitPattern &+ 127) &<< 23)
    return (p * r * r + r + 1) * scale
}
