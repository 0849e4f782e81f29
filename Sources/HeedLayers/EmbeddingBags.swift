import HeedCore

// Embedding lookup with pooling over variable-length bags.
//
// The worker pulls the unique embedding rows a batch needs from the parameter servers as a
// (U × D) tensor; each sample's bag is a list of indices into those rows (CSR: offsets +
// indices), optionally weighted. Pooling writes (B × D); the backward pass writes a gradient
// for the U pulled rows only — the sparse gradient the worker pushes back with the same keys —
// never a dense table-sized one.

/// How a bag's rows are combined.
public enum PoolingMode: String, CaseIterable, Sendable {
    /// `Σ wᵢ·rowᵢ`.
    case sum
    /// `Σ wᵢ·rowᵢ / n` for a bag of n indices (weights act as multipliers, the divisor is the
    /// count); an empty bag pools to zeros.
    case mean
}

/// Variable-length bags of indices into a batch's unique embedding rows, in CSR form.
///
/// Bag `b` holds `indices[offsets[b] ..< offsets[b + 1]]`; every index is in `0 ..< uniqueRows`.
public struct EmbeddingBags: Equatable, Sendable {
    /// (B + 1) non-decreasing, `offsets[0] == 0`, `offsets[B] == indices.count`.
    public let offsets: [Int]
    /// (nnz) row indices into the (U × D) unique rows.
    public let indices: [Int]
    /// U, the number of unique rows the indices refer to.
    public let uniqueRows: Int

    /// Number of bags B.
    public var count: Int { offsets.count - 1 }

    /// Validates a CSR layout; throws `HeedError.invalidInput` naming the first bad entry.
    public init(offsets: [Int], indices: [Int], uniqueRows: Int) throws {
        guard let first = offsets.first, first == 0 else {
            throw HeedError(.invalidInput, "embedding bags: offsets must start with 0 (got \(offsets.prefix(1)))")
        }
        guard offsets.last == indices.count else {
            throw HeedError(.invalidInput, "embedding bags: last offset \(offsets.last ?? 0) != \(indices.count) indices")
        }
        for b in 0..<(offsets.count - 1) where offsets[b + 1] < offsets[b] {
            throw HeedError(.invalidInput, "embedding bags: offsets decrease at bag \(b) (\(offsets[b]) > \(offsets[b + 1]))")
        }
        for (k, i) in indices.enumerated() where i < 0 || i >= uniqueRows {
            throw HeedError(.invalidInput, "embedding bags: index \(i) at position \(k) is outside 0..<\(uniqueRows)")
        }
        self.offsets = offsets
        self.indices = indices
        self.uniqueRows = uniqueRows
    }

    /// Builds the CSR layout from one index list per bag.
    public init(bags: [[Int]], uniqueRows: Int) throws {
        var offsets = [0]
        offsets.reserveCapacity(bags.count + 1)
        for bag in bags { offsets.append(offsets[offsets.count - 1] + bag.count) }
        try self.init(offsets: offsets, indices: bags.flatMap { $0 }, uniqueRows: uniqueRows)
    }
}

/// Pools each bag's rows.
///
/// - Parameters:
///   - out: (B × D), overwritten; an empty bag gives a zero row in both modes.
///   - rows: (U × D) unique embedding rows.
///   - bags: B bags of indices into `rows`.
///   - weights: (nnz) per-index weights aligned with `bags.indices`, or `.empty` for all ones.
///   - mode: sum or mean.
@inlinable
public func embeddingBagForward<T: Real>(_ out: inout Tensor<T>, _ rows: Tensor<T>, _ bags: EmbeddingBags,
                                         weights: Tensor<T> = .empty, mode: PoolingMode) {
    let d = rows.lastDim, b = bags.count
    precondition(rows.rows == bags.uniqueRows, "embedding bags: \(rows.rows) rows given, bags refer to \(bags.uniqueRows)")
    precondition(weights.count == 0 || weights.count == bags.indices.count, "embedding bags: \(weights.count) weights for \(bags.indices.count) indices")
    prepareOutput(&out, like: [b, d])
    let weighted = weights.count > 0
    out.data.withUnsafeMutableBufferPointer { po in
        rows.data.withUnsafeBufferPointer { pr in
            weights.data.withUnsafeBufferPointer { pw in
                bags.offsets.withUnsafeBufferPointer { off in
                    bags.indices.withUnsafeBufferPointer { idx in
                        // Safe: EmbeddingBags guarantees offsets within indices and indices < U;
                        // rows holds U·d, out b·d, weights nnz when non-empty.
                        for bag in 0..<b {
                            let dst = po.baseAddress! + bag * d
                            dst.update(repeating: 0, count: d)
                            let start = off[bag], end = off[bag + 1]
                            guard end > start else { continue }
                            let scale: T = mode == .mean ? 1 / T(end - start) : 1
                            for k in start..<end {
                                let src = pr.baseAddress! + idx[k] * d
                                let w = (weighted ? pw[k] : 1) * scale
                                for j in 0..<d { dst[j] += w * src[j] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Backward of `embeddingBagForward`: the sparse row gradient (and the weight gradient).
///
/// - Parameters:
///   - dRows: (U × D), `+= Σ over uses of row u of w·scale·dout[bag]`, aligned with the pulled
///     rows (push it back with their keys).
///   - dWeights: (nnz), `+= scale·⟨dout[bag], rows[index]⟩`; pass `.empty` to skip.
///   - dout: (B × D).
///   - rows: (U × D), the forward rows (only read when `dWeights` is wanted).
///   - bags, weights, mode: as in the forward pass.
@inlinable
public func embeddingBagBackward<T: Real>(_ dRows: inout Tensor<T>, _ dWeights: inout Tensor<T>, _ dout: Tensor<T>,
                                          _ rows: Tensor<T>, _ bags: EmbeddingBags,
                                          weights: Tensor<T> = .empty, mode: PoolingMode) {
    let d = rows.lastDim, b = bags.count
    precondition(dRows.count == rows.count && dout.count == b * d, "embedding bags: dRows \(dRows.shape) / dout \(dout.shape) do not fit rows \(rows.shape) and \(b) bags")
    precondition(weights.count == 0 || weights.count == bags.indices.count, "embedding bags: \(weights.count) weights for \(bags.indices.count) indices")
    precondition(dWeights.count == 0 || dWeights.count == bags.indices.count, "embedding bags: dWeights \(dWeights.shape) for \(bags.indices.count) indices")
    let weighted = weights.count > 0, wantWeights = dWeights.count > 0
    dRows.data.withUnsafeMutableBufferPointer { pdr in
        dWeights.data.withUnsafeMutableBufferPointer { pdw in
            dout.data.withUnsafeBufferPointer { pd in
                rows.data.withUnsafeBufferPointer { pr in
                    weights.data.withUnsafeBufferPointer { pw in
                        bags.offsets.withUnsafeBufferPointer { off in
                            bags.indices.withUnsafeBufferPointer { idx in
                                // Safe: as in the forward pass; dRows matches rows, dout b·d.
                                for bag in 0..<b {
                                    let start = off[bag], end = off[bag + 1]
                                    guard end > start else { continue }
                                    let g = pd.baseAddress! + bag * d
                                    let scale: T = mode == .mean ? 1 / T(end - start) : 1
                                    for k in start..<end {
                                        let dst = pdr.baseAddress! + idx[k] * d
                                        let w = (weighted ? pw[k] : 1) * scale
                                        for j in 0..<d { dst[j] += w * g[j] }
                                        if wantWeights {
                                            let src = pr.baseAddress! + idx[k] * d
                                            var dot: T = 0
                                            for j in 0..<d { dot += g[j] * src[j] }
                                            pdw[k] += scale * dot
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
