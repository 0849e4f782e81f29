import Testing
@testable import HeedLayers

@Suite struct LossesTests {
    typealias D = Tensor<Double>

    func close(_ a: Double, _ b: Double, _ tol: Double = 1e-12) -> Bool { abs(a - b) <= tol }

    // MARK: binary cross-entropy

    @Test func bceMatchesHandComputedValues() {
        var none = D.empty
        // Logit 0: −log(1/2) = ln 2 whatever the label.
        #expect(close(binaryCrossEntropyWithLogits(&none, D(shape: [2], data: [0, 0]), D(shape: [2], data: [1, 0])), Double.log(2)))
        // z = 2, y = 1: log(1 + e^−2); z = −1, y = 0.25: 0.25·log(1 + e) + 0.75·log(1 + e^−1).
        let l = binaryCrossEntropyWithLogits(&none, D(shape: [2, 1], data: [2, -1]), D(shape: [2, 1], data: [1, 0.25]))
        let e = Double.exp(1)
        let expected = (Double.log(1 + 1 / (e * e)) + 0.25 * Double.log(1 + e) + 0.75 * Double.log(1 + 1 / e)) / 2
        #expect(close(l, expected))
        // Weights scale each sample; the divisor stays the batch size.
        let lw = binaryCrossEntropyWithLogits(&none, D(shape: [2], data: [0, 0]), D(shape: [2], data: [1, 0]), weights: D(shape: [2], data: [3, 0]))
        #expect(close(lw, 1.5 * Double.log(2)))
        // Gradient at logit 0, label 1, batch 2: (1/2 − 1)/2.
        var g = D(zeros: [2])
        binaryCrossEntropyWithLogits(&g, D(shape: [2], data: [0, 0]), D(shape: [2], data: [1, 0]))
        #expect(g.data == [-0.25, 0.25])
    }

    @Test(arguments: [false, true])
    func bceGradientMatchesCentralDifferences(weighted: Bool) {
        let z = GradientCheck.random([6], seed: 1, scale: 5)
        let y = D(shape: [6], data: [1, 0, 1, 0.3, 0, 1])
        let w = weighted ? D(shape: [6], data: [1, 2, 0.5, 0, 3, 1]) : .empty
        var g = D(zeros: [6])
        binaryCrossEntropyWithLogits(&g, z, y, weights: w)
        var none = D.empty
        let numeric = GradientCheck.numeric(at: z) { binaryCrossEntropyWithLogits(&none, $0, y, weights: w) }
        #expect(GradientCheck.firstMismatch(analytic: g, numeric: numeric) == nil)
    }

    @Test func bceIsStableAtLargeLogits() {
        let z = Tensor<Float>(shape: [4], data: [100, -100, 100, -100])
        var g = Tensor<Float>(zeros: [4]), none = Tensor<Float>.empty
        // Wrong-side logits cost |z| each, right-side ones ~0.
        let lossWrong = binaryCrossEntropyWithLogits(&g, z, Tensor(shape: [4], data: [0, 1, 0, 1]))
        #expect(abs(lossWrong - 100) < 1e-3)
        #expect(g.data.allSatisfy { $0.isFinite })
        #expect(g.data == [0.25, -0.25, 0.25, -0.25])
        let lossRight = binaryCrossEntropyWithLogits(&none, z, Tensor(shape: [4], data: [1, 0, 1, 0]))
        #expect(lossRight.isFinite && lossRight >= 0 && lossRight < 1e-6)
        let huge = binaryCrossEntropyWithLogits(&none, Tensor<Float>(shape: [1], data: [-1e4]), Tensor(shape: [1], data: [1]))
        #expect(huge == 1e4)
    }

    @Test func bceAccumulatesIntoGradient() {
        var g = D(shape: [2], data: [1, 1])
        binaryCrossEntropyWithLogits(&g, D(shape: [2], data: [0, 0]), D(shape: [2], data: [1, 0]))
        #expect(g.data == [0.75, 1.25])
    }

    // MARK: softmax cross-entropy

    @Test func softmaxCrossEntropyMatchesHandComputedValues() {
        var none = D.empty
        // Uniform logits over C candidates: ln C.
        #expect(close(softmaxCrossEntropy(&none, D(zeros: [3, 5])), Double.log(5)))
        // Row [2, 0, 1], positive in column 0: log(e² + 1 + e) − 2.
        let e = Double.exp(1)
        let expected = Double.log(e * e + 1 + e) - 2
        #expect(close(softmaxCrossEntropy(&none, D(shape: [1, 3], data: [2, 0, 1])), expected))
        // Same row with target column 2: log(e² + 1 + e) − 1.
        #expect(close(softmaxCrossEntropy(&none, D(shape: [1, 3], data: [2, 0, 1]), targets: [2]), expected + 1))
        // Masking column 1 out: log(e² + e) − 2.
        let m = D(shape: [1, 3], data: [1, 0, 1])
        #expect(close(softmaxCrossEntropy(&none, D(shape: [1, 3], data: [2, 0, 1]), candidateMask: m), Double.log(e * e + e) - 2))
    }

    @Test(arguments: [false, true], [false, true])
    func softmaxCrossEntropyGradientMatchesCentralDifferences(explicitTargets: Bool, masked: Bool) {
        let z = GradientCheck.random([4, 5], seed: 2, scale: 3)
        let targets: [Int]? = explicitTargets ? [0, 3, 4, 1] : nil
        let w = D(shape: [4], data: [1, 0.5, 2, 1])
        var mask = D.empty
        if masked {
            mask = D(shape: [4, 5], data: [1, 1, 0, 1, 0,  1, 0, 1, 1, 1,  1, 1, 1, 0, 1,  1, 1, 1, 1, 1])
        }
        var g = D(zeros: [4, 5])
        softmaxCrossEntropy(&g, z, targets: targets, weights: w, candidateMask: mask)
        var none = D.empty
        let numeric = GradientCheck.numeric(at: z) { softmaxCrossEntropy(&none, $0, targets: targets, weights: w, candidateMask: mask) }
        #expect(GradientCheck.firstMismatch(analytic: g, numeric: numeric) == nil)
        if masked {
            for i in 0..<mask.count where mask.data[i] == 0 { #expect(g.data[i] == 0 && numeric.data[i] == 0) }
        }
    }

    @Test func softmaxCrossEntropyIsStableAtLargeLogits() {
        let z = Tensor<Float>(shape: [2, 3], data: [100, -100, 0, -100, 100, 0])
        var g = Tensor<Float>(zeros: [2, 3])
        let l = softmaxCrossEntropy(&g, z)
        // Row 0 is right (~0), row 1 is wrong by 200.
        #expect(abs(l - 100) < 1e-3)
        #expect(g.data.allSatisfy { $0.isFinite })
        #expect(abs(g.data[3] + 0.5) < 1e-6 && abs(g.data[4] - 0.5) < 1e-6)
        var none = Tensor<Float>.empty
        let big = softmaxCrossEntropy(&none, Tensor<Float>(shape: [1, 2], data: [1e4, -1e4]))
        #expect(big == 0)
    }

    // MARK: mean squared error

    @Test func meanSquaredErrorMatchesHandComputedValuesAndGradient() {
        let p = D(shape: [2, 2], data: [1, 2, 3, 4]), y = D(shape: [2, 2], data: [0, 2, 5, 4])
        var g = D(zeros: [2, 2])
        #expect(close(meanSquaredError(&g, p, y), 5.0 / 4))
        #expect(g.data == [0.5, 0, -1, 0])
        let pr = GradientCheck.random([3, 2], seed: 3), yr = GradientCheck.random([3, 2], seed: 4)
        var gr = D(zeros: [3, 2]), none = D.empty
        meanSquaredError(&gr, pr, yr)
        #expect(GradientCheck.firstMismatch(analytic: gr, numeric: GradientCheck.numeric(at: pr) { meanSquaredError(&none, $0, yr) }) == nil)
    }
}
