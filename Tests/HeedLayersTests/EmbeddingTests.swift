import Testing
import HeedCore
@testable import HeedLayers

@Suite struct EmbeddingTests {
    typealias D = Tensor<Double>

    @Test func bagsRejectMalformedLayouts() {
        #expect(throws: HeedError.self) { try EmbeddingBags(offsets: [1, 2], indices: [0, 1], uniqueRows: 2) }
        #expect(throws: HeedError.self) { try EmbeddingBags(offsets: [0, 3], indices: [0, 1], uniqueRows: 2) }
        #expect(throws: HeedError.self) { try EmbeddingBags(offsets: [0, 2, 1, 2], indices: [0, 1], uniqueRows: 2) }
        #expect(throws: HeedError.self) { try EmbeddingBags(bags: [[0], [2]], uniqueRows: 2) }
        #expect(throws: HeedError.self) { try EmbeddingBags(bags: [[-1]], uniqueRows: 2) }
        #expect(throws: HeedError.self) { try EmbeddingBags(offsets: [], indices: [], uniqueRows: 2) }
        let ok = try? EmbeddingBags(bags: [[1, 0], [], [1]], uniqueRows: 2)
        #expect(ok?.offsets == [0, 2, 2, 3] && ok?.indices == [1, 0, 1] && ok?.count == 3)
    }

    @Test func poolingMatchesHandComputedValues() throws {
        let rows = D(shape: [3, 2], data: [1, 2, 10, 20, 100, 200])
        let bags = try EmbeddingBags(bags: [[0, 2], [], [1, 1, 0]], uniqueRows: 3)
        var out = D.empty
        embeddingBagForward(&out, rows, bags, mode: .sum)
        #expect(out.shape == [3, 2])
        #expect(out.data == [101, 202, 0, 0, 21, 42])
        embeddingBagForward(&out, rows, bags, mode: .mean)
        #expect(zip(out.data, [50.5, 101, 0, 0, 7, 14]).allSatisfy { abs($0 - $1) < 1e-12 })
        let w = D(shape: [5], data: [2, 0.5, 1, -1, 3])
        embeddingBagForward(&out, rows, bags, weights: w, mode: .sum)
        #expect(out.data == [52, 104, 0, 0, 3, 6])
        embeddingBagForward(&out, rows, bags, weights: w, mode: .mean)
        #expect(zip(out.data, [26, 52, 0, 0, 1, 2]).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test(arguments: PoolingMode.allCases, [false, true])
    func bagGradientsMatchCentralDifferences(mode: PoolingMode, weighted: Bool) throws {
        // Row 3 is pulled but unused: its gradient must stay exactly zero. Bag 1 is empty,
        // row 1 repeats inside bag 2 and across bags.
        let bags = try EmbeddingBags(bags: [[0, 1], [], [1, 2, 1], [4], [2, 0, 1, 4]], uniqueRows: 5)
        let unused = 3
        let rows = GradientCheck.random([5, 3], seed: 1)
        let weights = weighted ? GradientCheck.random([bags.indices.count], seed: 2) : .empty
        let probe = GradientCheck.random([5, 3], seed: 3)
        func loss(_ r: D, _ w: D) -> Double {
            var out = D.empty
            embeddingBagForward(&out, r, bags, weights: w, mode: mode)
            return GradientCheck.weightedSum(out, probe)
        }
        var dRows = D(zeros: rows.shape)
        var dWeights = weighted ? D(zeros: weights.shape) : .empty
        embeddingBagBackward(&dRows, &dWeights, probe, rows, bags, weights: weights, mode: mode)
        #expect(dRows.shape == [5, 3])
        #expect(GradientCheck.firstMismatch(analytic: dRows, numeric: GradientCheck.numeric(at: rows) { loss($0, weights) }) == nil)
        for j in 0..<3 { #expect(dRows.data[unused * 3 + j] == 0) }
        if weighted {
            #expect(GradientCheck.firstMismatch(analytic: dWeights, numeric: GradientCheck.numeric(at: weights) { loss(rows, $0) }) == nil)
        }
    }

    @Test func bagBackwardAccumulates() throws {
        let bags = try EmbeddingBags(bags: [[0, 1], [1]], uniqueRows: 2)
        let rows = GradientCheck.random([2, 2], seed: 4), dout = GradientCheck.random([2, 2], seed: 5)
        var dRows = D(shape: [2, 2], data: [1, 1, 1, 1]), none = D.empty
        embeddingBagBackward(&dRows, &none, dout, rows, bags, mode: .sum)
        #expect(dRows.data == [1 + dout.data[0], 1 + dout.data[1], 1 + dout.data[0] + dout.data[2], 1 + dout.data[1] + dout.data[3]])
    }

    @Test func gatherCopiesRowsAndZeroesPadding() {
        let rows = D(shape: [3, 2], data: [1, 2, 3, 4, 5, 6])
        var out = D.empty
        embeddingGatherForward(&out, rows, indices: [2, 0, -1, 1, 1, -1], shape: [2, 3])
        #expect(out.shape == [2, 3, 2])
        #expect(out.data == [5, 6, 1, 2, 0, 0, 3, 4, 3, 4, 0, 0])
        let mask: D = paddingMask(indices: [2, 0, -1, 1, 1, -1], shape: [2, 3])
        #expect(mask.shape == [2, 3] && mask.data == [1, 1, 0, 1, 1, 0])
    }

    @Test func gatherGradientMatchesCentralDifferencesAndSkipsPadding() {
        // Padding index 0 is also a real row number: if padding were not skipped, row 0 would
        // receive the padded positions' gradient.
        let indices = [2, 0, 1, 1, 3, 0, 0, 2]
        let rows = GradientCheck.random([4, 3], seed: 6)
        let probe = GradientCheck.random([2, 4, 3], seed: 7)
        func loss(_ r: D) -> Double {
            var out = D.empty
            embeddingGatherForward(&out, r, indices: indices, shape: [2, 4], paddingIndex: 0)
            return GradientCheck.weightedSum(out, probe)
        }
        var dRows = D(zeros: rows.shape)
        embeddingGatherBackward(&dRows, probe, indices: indices, paddingIndex: 0)
        #expect(GradientCheck.firstMismatch(analytic: dRows, numeric: GradientCheck.numeric(at: rows, loss)) == nil)
        #expect(dRows.data[0..<3].allSatisfy { $0 == 0 })
        // Row 1 is used twice (positions 2 and 3).
        #expect(abs(dRows.data[3] - (probe.data[6] + probe.data[9])) < 1e-15)
    }
}
