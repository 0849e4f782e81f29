import Foundation

/// A linear axis over `lower...upper` with ticks at round numbers (1, 2 or 5 × 10ⁿ).
struct AxisScale: Equatable {
    /// The axis range; a multiple of `step` at both ends.
    var lower: Double
    /// The axis range's upper end.
    var upper: Double
    /// Distance between ticks.
    var step: Double

    /// The smallest range of round ticks, about `ticks` of them, that holds `low...high`.
    /// `fromZero` extends the range down (or up) to 0 (rates and sizes); `integers` keeps
    /// ticks on whole numbers (epochs). A single value gets a range around it.
    init(low: Double, high: Double, ticks: Int = 6, fromZero: Bool = false, integers: Bool = false) {
        var lo = low.isFinite ? low : 0, hi = high.isFinite ? high : 1
        if fromZero { lo = min(lo, 0); hi = max(hi, 0) }
        if hi <= lo {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= fromZero && lo == 0 ? 0 : pad
            hi += pad
        }
        var step = Self.roundStep((hi - lo) / Double(max(1, ticks - 1)))
        if integers { step = max(1, step.rounded()) }
        lower = (lo / step).rounded(.down) * step
        upper = (hi / step).rounded(.up) * step
        if upper <= lower { upper = lower + step }
        self.step = step
    }

    /// 1, 2 or 5 times a power of ten, the first at least `raw`.
    static func roundStep(_ raw: Double) -> Double {
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let n = raw / magnitude
        let slack = 1 + 1e-9   // 0.2 / 0.1 must count as 2
        let f: Double = n <= slack ? 1 : n <= 2 * slack ? 2 : n <= 5 * slack ? 5 : 10
        return f * magnitude
    }

    /// The tick values, `lower` to `upper` inclusive.
    var ticks: [Double] {
        let n = Int(((upper - lower) / step).rounded())
        return (0...n).map { lower + Double($0) * step }
    }

    /// Where `value` falls, 0 at `lower` and 1 at `upper`.
    func fraction(_ value: Double) -> Double { (value - lower) / (upper - lower) }

    /// A tick label with as many decimals as the step needs; thousands and millions get
    /// `k` and `M` when the ticks are that large.
    func label(_ value: Double) -> String {
        let big = max(abs(lower), abs(upper))
        let (scale, suffix): (Double, String) = big >= 1e7 ? (1e6, "M") : big >= 1e4 ? (1e3, "k") : (1, "")
        let scaledStep = step / scale
        let decimals = max(0, Int((-log10(scaledStep)).rounded(.up)))
        let v = value / scale
        if abs(v) < scaledStep / 1e6 { return suffix.isEmpty ? String(format: "%.\(decimals)f", 0.0) : "0" }
        return String(format: "%.\(decimals)f", v) + suffix
    }
}
