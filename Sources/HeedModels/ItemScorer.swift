import HeedCore
import HeedLayers

/// Every catalogue item's embedding row in one (C × D) matrix, scored against a block of
/// user vectors with one `cblas_sgemm`: `S = U · Eᵀ`, (B × D)·(D × C) → (B × C). This is how
/// full-ranking evaluation and `heed recommend` rank the whole catalogue (no loop per item).
public struct ItemScorer: Sendable {
    /// (C) sorted item keys; row i of `rows` is `keys[i]`'s.
    public let keys: [UInt64]
    /// D.
    public let dim: Int
    /// (C × D) item rows, row-major.
    public let rows: [Float]

    /// A scorer over `keys` (sorted) and their (C × D) rows.
    public init(keys: [UInt64], dim: Int, rows: [Float]) {
        precondition(rows.count == keys.count * dim, "item scorer: \(rows.count) values for \(keys.count) items × \(dim)")
        precondition(zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 }, "item scorer: keys must be sorted and distinct")
        self.keys = keys
        self.dim = dim
        self.rows = rows
    }

    /// Pulls every catalogue row of `table` from `params`, in blocks of `block` keys.
    public static func pull(_ keys: [UInt64], table: UInt8, dim: Int, from params: any ParameterAccess,
                            block: Int = 8192) async throws -> ItemScorer {
        let sorted = keys.sorted()
        var rows: [Float] = []
        rows.reserveCapacity(sorted.count * dim)
        var start = 0
        while start < sorted.count {
            let end = min(start + block, sorted.count)
            rows += try await params.pullRows(table: table, keys: Array(sorted[start..<end]))
            start = end
        }
        return ItemScorer(keys: sorted, dim: dim, rows: rows)
    }

    /// Every catalogue item's vector for `model`: its own computed vectors
    /// (`ComputedItemVectors`, e.g. hybrid) or the rows of its item table (sasrec).
    public static func catalog(of model: any NextItemModel, params: any ParameterAccess) async throws -> ItemScorer {
        if let computed = model as? any ComputedItemVectors { return try await computed.catalogScorer(params: params) }
        return try await pull(model.batcher.catalog, table: model.itemTable, dim: model.embeddingDim, from: params)
    }

    /// The rows an inference batch of `model` reads: every key of its fields in the model's tables.
    public static func pullInputRows(of model: any NextItemModel, batch: ModelBatch, params: any ParameterAccess) async throws -> BatchRows {
        var tables: [UInt8: BatchRows.Table] = [:]
        for (t, keys) in batch.uniqueKeysByTable() {
            guard let dim = model.tableDims[t] else { continue }
            tables[t] = BatchRows.Table(keys: keys, dim: dim, values: try await params.pullRows(table: t, keys: keys))
        }
        return BatchRows(tables: tables)
    }

    /// C, the number of candidates.
    public var count: Int { keys.count }

    /// Index of `key` among the candidates, or nil.
    public func index(of key: UInt64) -> Int? {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo < keys.count && keys[lo] == key ? lo : nil
    }

    /// (B × C) scores of `b` users against every item: one sgemm.
    /// - Parameter users: (B × D) user vectors, row-major.
    public func scores(users: [Float], count b: Int) -> [Float] {
        precondition(users.count == b * dim, "item scorer: \(users.count) user values for \(b) × \(dim)")
        var out = [Float](repeating: 0, count: b * keys.count)
        guard b > 0, !keys.isEmpty else { return out }
        users.withUnsafeBufferPointer { pu in
            rows.withUnsafeBufferPointer { pr in
                out.withUnsafeMutableBufferPointer { po in
                    // Safe: (B × D)·(C × D)ᵀ into (B × C); counts checked above.
                    Float.gemm(transA: false, transB: true, m: b, n: keys.count, k: dim, alpha: 1,
                               a: pu.baseAddress!, lda: dim, b: pr.baseAddress!, ldb: dim,
                               beta: 0, c: po.baseAddress!, ldc: keys.count)
                }
            }
        }
        return out
    }

    /// Indices of the `k` highest scores, best first (ties: lower index first), skipping
    /// −∞ (excluded) entries. One pass with a sorted buffer of k: O(C·k) worst, O(C) typical.
    public static func topK(_ scores: ArraySlice<Float>, k: Int) -> [Int] {
        Array(scores).withUnsafeBufferPointer { topK($0, k: k) }
    }

    /// `topK` over a buffer.
    public static func topK(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [Int] {
        guard k > 0 else { return [] }
        var best: [(score: Float, index: Int)] = []
        best.reserveCapacity(k + 1)
        var floor = -Float.infinity
        for j in 0..<scores.count {
            let s = scores[j]
            // Below the current k-th best (or excluded): the common case, one comparison.
            guard s > floor || (best.count < k && s > -Float.infinity) else { continue }
            var at = best.count
            while at > 0 && best[at - 1].score < s { at -= 1 }
            best.insert((s, j), at: at)
            if best.count > k { best.removeLast() }
            if best.count == k { floor = best[k - 1].score }
        }
        return best.map(\.index)
    }
}
