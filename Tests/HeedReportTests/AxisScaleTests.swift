import Testing
@testable import HeedReport

@Suite struct AxisScaleTests {
    /// Ranges worked by hand: the step is the first of 1, 2, 5 × 10ⁿ at least range / (ticks − 1),
    /// and the ends are the multiples of it just outside the data.
    @Test(arguments: [
        // low, high, fromZero, lower, upper, step, labels
        (0.52, 0.71, false, 0.5, 0.75, 0.05, ["0.50", "0.55", "0.60", "0.65", "0.70", "0.75"]),
        (1200.0, 28_400.0, true, 0.0, 30_000.0, 10_000.0, ["0", "10k", "20k", "30k"]),
        (3.0, 41.0, true, 0.0, 50.0, 10.0, ["0", "10", "20", "30", "40", "50"]),
        (0.693, 0.693, false, 0.6, 0.8, 0.05, ["0.60", "0.65", "0.70", "0.75", "0.80"]),
        (0.0, 0.0, true, 0.0, 1.0, 0.2, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
    ] as [(Double, Double, Bool, Double, Double, Double, [String])])
    func ticksAreRoundNumbersAroundTheData(low: Double, high: Double, fromZero: Bool,
                                           lower: Double, upper: Double, step: Double, labels: [String]) {
        let a = AxisScale(low: low, high: high, ticks: 6, fromZero: fromZero)
        #expect(abs(a.lower - lower) < 1e-9 && abs(a.upper - upper) < 1e-9 && abs(a.step - step) < 1e-12, "\(a)")
        #expect(a.ticks.map(a.label) == labels)
        #expect(a.lower <= low && a.upper >= high)
    }

    /// Epoch axes tick on whole numbers even when one epoch is all there is.
    @Test func integerAxesTickOnWholeNumbers() {
        let one = AxisScale(low: 1, high: 1, ticks: 8, integers: true)
        #expect(one.step == 1 && one.ticks.allSatisfy { $0 == $0.rounded() } && one.lower <= 1 && one.upper >= 1)
        let three = AxisScale(low: 1, high: 3, ticks: 8, integers: true)
        #expect(three.ticks == [1, 2, 3])
    }
}
