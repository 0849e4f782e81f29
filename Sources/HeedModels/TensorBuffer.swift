import HeedLayers

extension Tensor {
    /// Gives the tensor `shape`, keeping its allocation (contents are then stale: callers
    /// overwrite or `zero()` them).
    @inlinable
    mutating func resize(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if data.count == n { shape = newShape } else { resizeKeepingCapacity(newShape) }
    }

    /// `resize` followed by zero-filling.
    @inlinable
    mutating func resizeZeroed(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if data.count != n { resizeKeepingCapacity(newShape) }
        shape = newShape
        zero()
    }
}
