import Testing
@testable import HeedLayers

@Suite struct DenseTests {
    @Test func forwardMatchesHandComputedAffineMap() {
        let x = Tensor<Double>(shape: [2, 3], data: [1, 2, 3, -1, 0, 1])
        let w = Tensor<Double>(shape: [3, 2], data: [1, 0, 0, 1, 1, -1])
        let b = Tensor<Double>(shape: [2], data: [0.5, -0.5])
        var out = Tensor<Double>.empty
        denseForward(&out, x, w, b)
        // row 0: [1+3, 2-3] + b; row 1: [-1+1, 0-1] + b
        #expect(out.shape == [2, 2])
        #expect(out.data == [4.5, -1.5, 0.5, -1.5])
    }

    @Test(arguments: [(1, 3, 2), (5, 4, 7), (8, 16, 3)])
    func gradientsMatchCentralDifferences(shape: (Int, Int, Int)) {
        let (batch, inDim, outDim) = shape
        let x = GradientCheck.random([batch, inDim], seed: 1)
        let w = GradientCheck.random([inDim, outDim], seed: 2)
        let b = GradientCheck.random([outDim], seed: 3)
        let probe = GradientCheck.random([batch, outDim], seed: 4)
        func loss(_ x: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>) -> Double {
            var out = Tensor<Double>.empty
            denseForward(&out, x, w, b)
            return GradientCheck.weightedSum(out, probe)
        }
        var dx = Tensor<Double>(zeros: x.shape), dw = Tensor<Double>(zeros: w.shape), db = Tensor<Double>(zeros: b.shape)
        denseBackward(&dx, &dw, &db, probe, x, w)
        #expect(GradientCheck.firstMismatch(analytic: dx, numeric: GradientCheck.numeric(at: x) { loss($0, w, b) }) == nil)
        #expect(GradientCheck.firstMismatch(analytic: dw, numeric: GradientCheck.numeric(at: w) { loss(x, $0, b) }) == nil)
        #expect(GradientCheck.firstMismatch(analytic: db, numeric: GradientCheck.numeric(at: b) { loss(x, w, $0) }) == nil)
    }

    @Test func backwardAccumulatesIntoExistingGradients() {
        let x = GradientCheck.random([3, 4], seed: 5), w = GradientCheck.random([4, 2], seed: 6)
        let dout = GradientCheck.random([3, 2], seed: 7)
        var dx1 = Tensor<Double>(zeros: x.shape), dw1 = Tensor<Double>(zeros: w.shape), db1 = Tensor<Double>(zeros: [2])
        denseBackward(&dx1, &dw1, &db1, dout, x, w)
        var dx2 = dx1, dw2 = dw1, db2 = db1
        denseBackward(&dx2, &dw2, &db2, dout, x, w)
        for i in 0..<dw1.count { #expect(abs(dw2.data[i] - 2 * dw1.data[i]) < 1e-12) }
        for i in 0..<dx1.count { #expect(abs(dx2.data[i] - 2 * dx1.data[i]) < 1e-12) }
    }
}
