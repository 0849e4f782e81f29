import Testing
import HeedCore
import HeedLayers
@testable import HeedModels

@Suite struct LinearModelTests {
    /// Two samples: an item field and a padded history (the last position is padding and
    /// carries a key that must get no gradient).
    func batch() -> ModelBatch {
        let a = FeatureKey(group: 2, id: 1).rawValue, b = FeatureKey(group: 2, id: 2).rawValue
        let c = FeatureKey(group: 3, id: 7).rawValue, pad = FeatureKey(group: 2, id: 99).rawValue
        return ModelBatch(size: 2, labels: [1, 0], users: [1, 2], fields: [
            "item": SparseField(length: 1, keys: [a, b], mask: [1, 1]),
            "hist": SparseField(length: 3, keys: [b, c, pad, a, 0, 0], mask: [1, 1, 0, 1, 0, 0]),
        ])
    }

    @Test func gradientsMatchCentralDifferences() {
        let batch = batch()
        let keys2 = [FeatureKey(group: 2, id: 1).rawValue, FeatureKey(group: 2, id: 2).rawValue, FeatureKey(group: 2, id: 99).rawValue].sorted()
        let keys3 = [FeatureKey(group: 3, id: 7).rawValue]
        let dim = 3
        let rows2 = GradientCheck.random([keys2.count, dim], seed: 1), rows3 = GradientCheck.random([1, dim], seed: 2)
        let params = GradientCheck.random([dim + 1], seed: 3)
        func run(_ r2: Tensor<Double>, _ r3: Tensor<Double>, _ p: Tensor<Double>) -> GenericStep<Double> {
            LinearModel.forwardBackward(batch: batch, tables: [2: (keys2, r2.data), 3: (keys3, r3.data)], parameters: p.data, dim: dim, training: true)
        }
        let out = run(rows2, rows3, params)
        let dParams = Tensor(shape: [dim + 1], data: out.denseGradient)
        #expect(GradientCheck.firstMismatch(analytic: dParams, numeric: GradientCheck.numeric(at: params) { run(rows2, rows3, $0).loss }) == nil)
        let d2 = Tensor(shape: rows2.shape, data: out.rowGradients[2]!)
        #expect(GradientCheck.firstMismatch(analytic: d2, numeric: GradientCheck.numeric(at: rows2) { run($0, rows3, params).loss }) == nil)
        let d3 = Tensor(shape: rows3.shape, data: out.rowGradients[3]!)
        #expect(GradientCheck.firstMismatch(analytic: d3, numeric: GradientCheck.numeric(at: rows3) { run(rows2, $0, params).loss }) == nil)
        // The padded key's row gets exactly zero gradient.
        let padRow = keys2.firstIndex(of: FeatureKey(group: 2, id: 99).rawValue)!
        #expect(out.rowGradients[2]![(padRow * dim)..<((padRow + 1) * dim)].allSatisfy { $0 == 0 })
    }
}
