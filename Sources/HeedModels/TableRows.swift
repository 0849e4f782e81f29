import HeedLayers

/// One table's pulled rows in a model's scalar type: sorted unique keys and their (U × D)
/// values. `BatchRows.Table` is the Float form the cluster moves; this generic form lets the
/// same network run in Double for gradient checks.
struct TableRows<T: Real>: Sendable {
    /// (U) sorted unique keys.
    var keys: [UInt64]
    /// (U × D) rows, `keys[i]`'s row at row i.
    var values: Tensor<T>

    /// Rows for `keys`; `values` must be (keys.count × D).
    init(keys: [UInt64], values: Tensor<T>) {
        precondition(values.rows == keys.count, "table rows: \(values.shape) values for \(keys.count) keys")
        self.keys = keys
        self.values = values
    }

    /// Row index of `key` (binary search over the sorted keys), or nil.
    @inlinable
    func index(of key: UInt64) -> Int? {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo < keys.count && keys[lo] == key ? lo : nil
    }
}
