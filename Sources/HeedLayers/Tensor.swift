import HeedCore

/// A dense row-major array with a shape: the buffer type every layer reads and writes.
///
/// Kept deliberately plain (a shape and a flat `[T]`) so kernels can take its storage
/// with `withUnsafe…` and hand it to CBLAS. Shapes are documented at each use as
/// `(B × D)` etc.; the last dimension is contiguous.
public struct Tensor<T: Real>: Equatable, Sendable {
    /// Sizes per dimension, outermost first.
    public var shape: [Int]
    /// Elements in row-major order; `data.count == shape.reduce(1, *)`.
    public var data: [T]

    /// A zero-filled tensor of `shape`.
    @inlinable
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [T](repeating: 0, count: shape.reduce(1, *))
    }

    /// Wraps `data` with `shape`; the counts must agree.
    @inlinable
    public init(shape: [Int], data: [T]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    /// A tensor filled by `N(0, std²)` samples from a seeded generator.
    public init(gaussian shape: [Int], std: Double, generator: inout SeededGenerator) {
        self.shape = shape
        let n = shape.reduce(1, *)
        var d = [T](); d.reserveCapacity(n)
        for _ in 0..<n { d.append(T(generator.nextGaussian() * std)) }
        self.data = d
    }

    /// A tensor with no elements: passed as a gradient buffer to mean "not needed".
    @inlinable public static var empty: Tensor { Tensor(zeros: [0]) }

    /// Number of elements.
    @inlinable public var count: Int { data.count }

    /// Size of the last dimension (row length).
    @inlinable public var lastDim: Int { shape.last ?? 1 }

    /// Number of rows when viewed as (count / lastDim × lastDim).
    @inlinable public var rows: Int { lastDim == 0 ? 0 : data.count / lastDim }

    /// Sets every element to zero, keeping the allocation.
    @inlinable
    public mutating func zero() {
        data.withUnsafeMutableBufferPointer { p in p.update(repeating: 0) }
    }

    /// Gives the tensor `newShape` without giving back its allocation: shrinking drops the
    /// tail, growing appends zeros. Other contents are stale. Layers whose row count changes
    /// every step (DIN's attention over a batch's real behaviours) thus stop reallocating and
    /// zero-filling their buffers each step.
    @inlinable
    public mutating func resizeKeepingCapacity(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if n < data.count {
            data.removeLast(data.count - n)
        } else if n > data.count {
            data.append(contentsOf: repeatElement(0, count: n - data.count))
        }
        shape = newShape
    }

    /// Reshapes without moving data; the element count must stay the same.
    @inlinable
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Converts element type (e.g. Float parameters to Double for a gradient check).
    @inlinable
    public func converted<U: Real>(to: U.Type = U.self) -> Tensor<U> {
        Tensor<U>(shape: shape, data: data.map { U($0) })
    }
}

