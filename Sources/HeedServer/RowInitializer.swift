#if canImport(Glibc)
import Glibc
#endif
import HeedCore

/// How a new embedding row's weights are drawn, deterministically from its key.
///
/// The generator is `SeededGenerator(seed: key ^ tableSeed)`, so a key gets the same
/// initial row on any server, in any run and in any order of first pulls: this is what
/// makes a sharded table equal the unsharded one.
public struct RowInitializer: Codable, Hashable, Sendable {
    /// The distribution.
    public enum Kind: String, Codable, Sendable {
        /// All zeros.
        case zeros
        /// Uniform on [−scale, scale).
        case uniform
        /// Normal with mean 0 and standard deviation `scale` (Box–Muller).
        case normal
        /// Normal with standard deviation `scale`, redrawn beyond two deviations.
        case truncatedNormal
    }

    /// The distribution.
    public var kind: Kind
    /// Its scale (half-width or standard deviation).
    public var scale: Float

    /// An initializer of the given kind and scale.
    public init(kind: Kind, scale: Float) {
        self.kind = kind
        self.scale = scale
    }

    /// Uniform on [−scale, scale).
    public static func uniform(scale: Float) -> RowInitializer { RowInitializer(kind: .uniform, scale: scale) }
    /// Normal(0, scale²).
    public static func normal(scale: Float) -> RowInitializer { RowInitializer(kind: .normal, scale: scale) }
    /// All zeros.
    public static let zeros = RowInitializer(kind: .zeros, scale: 0)

    /// Throws `.config` for a negative or non-finite scale.
    public func validate() throws {
        guard scale.isFinite, scale >= 0 else { throw HeedError(.config, "initializer: scale must be >= 0, got \(scale)") }
    }

    /// Writes the initial weights of `key`'s row.
    /// - Parameters:
    ///   - w: (dim) floats, overwritten.
    ///   - key: the row's feature key.
    ///   - tableSeed: the table's seed, xor-ed into the key.
    public func fill(_ w: UnsafeMutablePointer<Float>, dim: Int, key: UInt64, tableSeed: UInt64) {
        var rng = SeededGenerator(seed: key ^ tableSeed)
        switch kind {
        case .zeros:
            w.update(repeating: 0, count: dim)
        case .uniform:
            for i in 0..<dim { w[i] = (2 * rng.nextUnitFloat() - 1) * scale }
        case .normal, .truncatedNormal:
            let truncate = kind == .truncatedNormal
            var i = 0
            func put(_ z: Double) {
                guard i < dim, !(truncate && abs(z) > 2) else { return }
                w[i] = Float(z) * scale
                i += 1
            }
            while i < dim {
                // Box–Muller gives two independent normals per pair of uniforms; use both.
                let u1 = max(rng.nextUnitDouble(), 1e-300), u2 = rng.nextUnitDouble()
                let r = (-2 * log(u1)).squareRoot(), theta = 2 * Double.pi * u2
                put(r * cos(theta))
                put(r * sin(theta))
            }
        }
    }
}
