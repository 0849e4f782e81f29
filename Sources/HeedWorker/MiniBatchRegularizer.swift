import HeedCore
import HeedData
import HeedModels

/// DIN's mini-batch aware regularisation (Zhou et al., KDD 2018, §4.3, eq. 4).
///
/// Plain L2 on embedding tables would touch every row at every step; with millions of
/// rows that is unaffordable and, for sparse features, wrong. The paper regularises only
/// the rows a batch uses, each scaled by how often its feature occurs:
///
///     w_j ← w_j − η · ( (1/|B|) Σ_{(x,y)∈B} ∂L/∂w_j  +  λ · α_j / n_j · w_j )
///
/// with α_j = 1 when batch B contains feature j and n_j the number of occurrences of j in
/// the training samples. A feature in many batches gets a small penalty each time, a rare
/// one a large penalty the few times it appears, so every row is pulled towards zero about
/// equally per epoch. Here the gradient term is added to the row gradient before the push,
/// so the servers' optimizer (Adam by default) applies it like any other gradient.
///
/// n_j is counted over the samples this worker trains on (its shards), so the same data
/// gives the same counts in-process and in a cluster with one worker; with W workers each
/// worker regularises its own shards' features by its own counts.
public struct MiniBatchRegularizer: Sendable {
    /// λ, the regularisation strength.
    public let lambda: Float
    /// Occurrences per feature key (the key's top 8 bits name its table).
    public let counts: [UInt64: UInt32]

    public init(lambda: Float, counts: [UInt64: UInt32]) {
        self.lambda = lambda
        self.counts = counts
    }

    /// Counts every real (unmasked) key of the tables in `tables` over all batches of `plan`.
    /// - Parameters:
    ///   - plan: the worker's training batches; one unshuffled pass is read.
    ///   - tables: the embedding tables to regularise (the model's tables).
    ///   - makeBatch: the loop's SampleBatch → ModelBatch conversion, so the keys counted are
    ///     exactly the keys the model pulls.
    public static func counting(lambda: Float, plan: BatchPlan, tables: Set<UInt8>,
                                makeBatch: (SampleBatch) -> ModelBatch) -> MiniBatchRegularizer {
        var counts: [UInt64: UInt32] = [:]
        for b in plan.batches(epoch: 0, seed: 0, shuffle: false) {
            let batch = makeBatch(plan.gather(b))
            for field in batch.fields.values {
                for (k, m) in zip(field.keys, field.mask) where m != 0 && tables.contains(UInt8(truncatingIfNeeded: k >> 56)) {
                    counts[k, default: 0] &+= 1
                }
            }
        }
        return MiniBatchRegularizer(lambda: lambda, counts: counts)
    }

    /// Adds λ / n_j · w_j to the gradient of every row the batch pulled.
    /// - Parameters:
    ///   - rows: the batch's pulled rows: per table (U) keys and (U × D) values.
    ///   - gradients: per table, (U × D) row gradients aligned with `rows`; a table without
    ///     gradients gets the regulariser's term alone.
    public func addGradients(rows: BatchRows, to gradients: inout [UInt8: [Float]]) {
        guard lambda != 0 else { return }
        for (t, table) in rows.tables {
            let d = table.dim
            precondition(gradients[t].map { $0.count == table.values.count } ?? true,
                         "regulariser: table \(t) has \(gradients[t]!.count) gradient floats for \(table.values.count) values")
            // Updated in place through the dictionary (no copy of the gradient block).
            gradients[t, default: [Float](repeating: 0, count: table.values.count)].withUnsafeMutableBufferPointer { g in
                for (i, key) in table.keys.enumerated() {
                    // A key missing from the counts was not in this worker's training data
                    // (evaluation batches never come here); it gets no penalty.
                    guard let n = counts[key], n > 0 else { continue }
                    let scale = lambda / Float(n)
                    for j in i * d..<(i + 1) * d { g[j] += scale * table.values[j] }
                }
            }
        }
    }

    /// The penalty the gradients above differentiate: Σ_j λ / (2 n_j) · ‖w_j‖² over the
    /// batch's rows (for gradient checks and logs; the loss the loop reports excludes it).
    public func penalty(rows: BatchRows) -> Double {
        var total = 0.0
        for table in rows.tables.values {
            for (i, key) in table.keys.enumerated() {
                guard let n = counts[key], n > 0 else { continue }
                var squares = 0.0
                for j in i * table.dim..<(i + 1) * table.dim { squares += Double(table.values[j]) * Double(table.values[j]) }
                total += Double(lambda) / (2 * Double(n)) * squares
            }
        }
        return total
    }
}
