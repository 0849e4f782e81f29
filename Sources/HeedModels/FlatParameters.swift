import HeedLayers

/// A network whose dense parameters travel as one flat vector: the dense tensor the
/// servers hold, the gradient a worker pushes, what a checkpoint or saved model stores.
/// Visit order defines the layout; the flat methods come from this extension, once.
protocol FlatParameterNetwork {
    associatedtype Scalar: Real
    /// Name used in messages ("behaviour network: …").
    static var networkName: String { get }
    /// Number of dense parameters.
    var parameterCount: Int { get }
    /// Visits every dense parameter and its gradient, in layout order.
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<Scalar>, _ grad: inout Tensor<Scalar>) -> Void)
}

extension FlatParameterNetwork {
    /// (parameterCount) every dense parameter, flattened in visit order.
    func flatParameters() -> [Scalar] {
        var copy = self
        var out: [Scalar] = []
        out.reserveCapacity(parameterCount)
        copy.visitParameters { _, value, _ in out.append(contentsOf: value.data) }
        return out
    }

    /// (parameterCount) every dense gradient, flattened in visit order.
    func flatGradients() -> [Scalar] {
        var copy = self
        var out: [Scalar] = []
        out.reserveCapacity(parameterCount)
        copy.visitParameters { _, _, grad in out.append(contentsOf: grad.data) }
        return out
    }

    /// Replaces every dense parameter from a flat vector in visit order.
    mutating func loadFlatParameters(_ flat: [Scalar]) {
        precondition(flat.count == parameterCount, "\(Self.networkName): \(flat.count) dense values for \(parameterCount) parameters")
        var offset = 0
        visitParameters { _, value, _ in
            let n = value.count
            value.data.replaceSubrange(0..<n, with: flat[offset..<(offset + n)])
            offset += n
        }
    }
}

/// A flat-parameter network that also keeps running statistics (Dice's), which are state
/// saved with the model but not trained.
protocol FlatStatisticsNetwork: FlatParameterNetwork {
    /// Visits every running statistic, in layout order.
    mutating func visitStatistics(_ body: (_ name: String, _ value: inout Tensor<Scalar>) -> Void)
}

extension FlatStatisticsNetwork {
    /// Running statistics, flattened in visit order (empty without Dice).
    func flatStatistics() -> [Scalar] {
        var copy = self
        var out: [Scalar] = []
        copy.visitStatistics { _, value in out.append(contentsOf: value.data) }
        return out
    }

    /// Replaces the running statistics from `flatStatistics()` output.
    mutating func loadFlatStatistics(_ flat: [Scalar]) {
        var offset = 0
        visitStatistics { _, value in
            let n = value.count
            precondition(offset + n <= flat.count, "\(Self.networkName): \(flat.count) statistics values are too few")
            value.data.replaceSubrange(0..<n, with: flat[offset..<(offset + n)])
            offset += n
        }
        precondition(offset == flat.count, "\(Self.networkName): \(flat.count) statistics values for \(offset)")
    }
}
