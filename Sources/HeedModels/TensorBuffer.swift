import HeedLayers

extension Tensor {
    /// Gives the tensor `shape`, keeping its allocation when the element count is unchanged
    /// (contents are then stale: callers overwrite or `zero()` them); reallocates zeros otherwise.
    @inlinable
    mutating func resize(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if data.count == n { shape = newShape } else { self = Tensor(zeros: newShape) }
    }

    /// `resize` followed by zero-filling.
    @inlinable
    mutating func resizeZeroed(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if data.count == n { shape = newShape; zero() } else { self = Tensor(zeros: newShape) }
    }
}
