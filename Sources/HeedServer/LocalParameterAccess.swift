import HeedCore

/// Parameters held in this process: the reference that distributed runs are compared
/// with (`heed train --in-process`). One shard owns every slot and the whole dense vector.
public final class LocalParameterAccess: ParameterAccess, @unchecked Sendable {
    /// The single shard.
    public let shard: ParameterShard

    /// Wraps a shard built for rank 0 of 1 server.
    public init(shard: ParameterShard) {
        precondition(shard.serverCount == 1, "in-process parameters need a single shard")
        self.shard = shard
    }

    public func pullRows(table: UInt8, keys: [UInt64]) async throws -> [Float] {
        try shard.pullRows(table: table, keys: keys)
    }

    public func pushRowGradients(table: UInt8, keys: [UInt64], gradients: [Float], clock: Int) async throws {
        try shard.pushRows(table: table, keys: keys, grads: gradients, clock: UInt64(clock))
    }

    public func pullDense() async throws -> [Float] { shard.pullDense() }

    public func pushDenseGradients(_ gradients: [Float], clock: Int) async throws {
        try shard.pushDense(gradients)
    }
}
