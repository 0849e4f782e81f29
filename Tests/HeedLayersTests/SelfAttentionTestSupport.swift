import Testing
@testable import HeedLayers

/// Gradient-checks every parameter a layer visits.
///
/// `analytic` is the layer after its backward; `fresh` is the same layer before any forward
/// (so perturbed copies start from the same state, e.g. Dice running statistics). For each
/// visited parameter the numeric gradient of `loss` is compared with the visited gradient.
/// Returns one message per failing parameter, or per parameter whose gradient is entirely zero
/// when `requireNonZero` (a zero gradient would pass any check without testing anything).
func layerParameterGradientFailures<L>(
    analytic: L, fresh: L,
    visit: (inout L, (_ name: String, _ value: inout Tensor<Double>, _ grad: inout Tensor<Double>) -> Void) -> Void,
    requireNonZero: Bool = true, rtol: Double = 1e-5, atol: Double = 1e-7,
    loss: (inout L) -> Double
) -> [String] {
    var analyticCopy = analytic
    var entries: [(String, Tensor<Double>, Tensor<Double>)] = []
    visit(&analyticCopy) { name, value, grad in entries.append((name, value, grad)) }
    var failures: [String] = []
    for (index, (name, value, grad)) in entries.enumerated() {
        let numeric = GradientCheck.numeric(at: value) { probe in
            var copy = fresh
            var i = 0
            visit(&copy) { _, v, _ in
                if i == index { v = probe }
                i += 1
            }
            return loss(&copy)
        }
        if let m = GradientCheck.firstMismatch(analytic: grad, numeric: numeric, rtol: rtol, atol: atol) {
            failures.append("\(name)[\(m.index)]: analytic \(m.analytic) vs numeric \(m.numeric)")
        }
        if requireNonZero && !grad.data.contains(where: { $0 != 0 }) { failures.append("\(name): gradient is all zero") }
    }
    if entries.isEmpty { failures.append("layer visited no parameters") }
    return failures
}

/// Whether rows `r` of `t` (viewed as rows of `width`) are exactly zero wherever `mask[r] = 0`
/// and not all zero wherever `mask[r] = 1`.
func rowsFollowMask(_ t: Tensor<Double>, _ mask: Tensor<Double>, width: Int) -> Bool {
    for r in 0..<mask.count {
        let row = t.data[r * width..<(r + 1) * width]
        if mask.data[r] == 0 { if row.contains(where: { $0 != 0 }) { return false } }
        else if !row.contains(where: { $0 != 0 }) { return false }
    }
    return true
}
