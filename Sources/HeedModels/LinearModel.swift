import HeedCore
import HeedLayers

/// Logistic regression over mean-pooled embeddings: the simplest baseline (`lr`).
///
/// For sample b: x_b = Σ_fields mean_{j: mask=1} e(key_bj)   (D)
///               logit_b = w · x_b + c,  p_b = σ(logit_b),  loss = mean BCE.
/// Dense parameters (flat): [w (D) | c (1)]. Every field whose keys fall in a table the
/// model reads contributes; fields are visited in name order so results are reproducible.
public struct LinearModel: RecommenderModel {
    public let name = "lr"
    public let tableDims: [UInt8: Int]
    public let dim: Int
    /// [w (D) | c].
    private var parameters: [Float]

    /// A model reading `tables` (feature groups) with rows of `dim`; w starts at small
    /// seeded values, c at 0.
    public init(tables: [UInt8], dim: Int, seed: UInt64) {
        self.dim = dim
        self.tableDims = Dictionary(uniqueKeysWithValues: tables.map { ($0, dim) })
        var rng = SeededGenerator(seed: seed)
        parameters = (0..<dim).map { _ in Float(rng.nextGaussian() * 0.1) } + [0]
    }

    public var denseParameterCount: Int { dim + 1 }
    public func denseParameters() -> [Float] { parameters }
    public mutating func loadDenseParameters(_ flat: [Float]) {
        precondition(flat.count == dim + 1, "lr: \(flat.count) dense values, expected \(dim + 1)")
        parameters = flat
    }

    public mutating func trainStep(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let r = Self.forwardBackward(batch: batch, tables: rows.tables.mapValues { ($0.keys, $0.values) },
                                     parameters: parameters, dim: dim, training: true)
        return StepOutput(loss: Double(r.loss), predictions: r.predictions, denseGradient: r.denseGradient, rowGradients: r.rowGradients)
    }

    public mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        Self.forwardBackward(batch: batch, tables: rows.tables.mapValues { ($0.keys, $0.values) },
                             parameters: parameters, dim: dim, training: false).predictions
    }

    /// The whole model in any precision (Double for gradient checks).
    /// - Parameter tables: per table, sorted unique keys (U) and (U × D) row values.
    static func forwardBackward<T: Real>(batch: ModelBatch, tables: [UInt8: (keys: [UInt64], values: [T])],
                                         parameters: [T], dim: Int, training: Bool) -> GenericStep<T> {
        let b = batch.size
        var x = [T](repeating: 0, count: b * dim)
        // Each pooled position, kept for the backward pass.
        var contributions: [(sample: Int, table: UInt8, row: Int, weight: T)] = []
        for name in batch.fields.keys.sorted() {
            let field = batch.fields[name]!
            let l = field.length
            for s in 0..<b {
                let positions = (0..<l).filter { field.mask[s * l + $0] != 0 }
                guard !positions.isEmpty else { continue }
                let weight = 1 / T(positions.count)
                for j in positions {
                    let key = field.keys[s * l + j]
                    let table = UInt8(truncatingIfNeeded: key >> 56)
                    guard let rows = tables[table], let row = sortedIndex(of: key, in: rows.keys) else { continue }
                    contributions.append((s, table, row, weight))
                    for d in 0..<dim { x[s * dim + d] += weight * rows.values[row * dim + d] }
                }
            }
        }
        var predictions = [T](repeating: 0, count: b)
        var loss: T = 0
        var dLogit = [T](repeating: 0, count: b)
        for s in 0..<b {
            var z = parameters[dim]
            for d in 0..<dim { z += parameters[d] * x[s * dim + d] }
            let y = T(batch.labels[s])
            // Stable BCE with logits: max(z, 0) − z·y + log(1 + e^{−|z|}).
            loss += max(z, 0) - z * y + T.log1p(T.exp(-abs(z)))
            let p = 1 / (1 + T.exp(-z))
            predictions[s] = p
            dLogit[s] = (p - y) / T(b)
        }
        var denseGrad = [T](repeating: 0, count: dim + 1)
        var rowGrads: [UInt8: [T]] = [:]
        if training {
            for (t, rows) in tables { rowGrads[t] = [T](repeating: 0, count: rows.values.count) }
            for s in 0..<b {
                for d in 0..<dim { denseGrad[d] += dLogit[s] * x[s * dim + d] }
                denseGrad[dim] += dLogit[s]
            }
            for c in contributions {
                for d in 0..<dim { rowGrads[c.table]![c.row * dim + d] += dLogit[c.sample] * c.weight * parameters[d] }
            }
        }
        return GenericStep(loss: loss / T(b), predictions: predictions, denseGradient: denseGrad, rowGradients: rowGrads)
    }
}

/// `StepOutput` in any precision.
struct GenericStep<T: Real> {
    var loss: T
    var predictions: [T]
    var denseGradient: [T]
    var rowGradients: [UInt8: [T]]
}

/// Index of `key` in ascending `keys`, or nil.
func sortedIndex(of key: UInt64, in keys: [UInt64]) -> Int? {
    var lo = 0, hi = keys.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if keys[mid] < key { lo = mid + 1 } else { hi = mid }
    }
    return lo < keys.count && keys[lo] == key ? lo : nil
}
