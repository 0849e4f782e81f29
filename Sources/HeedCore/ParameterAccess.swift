/// Access to a model's parameters wherever they live: in this process (the reference
/// run) or on parameter servers over the network. The worker's training loop is written
/// once against this protocol, which is what lets tests compare the two exactly.
///
/// Tables are feature groups (a key's top 8 bits). Dense parameters are one flat vector.
public protocol ParameterAccess: AnyObject, Sendable {
    /// Rows for `keys` (sorted, unique, all of `table`), (keys.count × dim) row-major;
    /// rows are created on first pull.
    func pullRows(table: UInt8, keys: [UInt64]) async throws -> [Float]
    /// Applies (keys.count × dim) gradients to the rows of `keys` with the table's optimizer.
    /// `clock` is the worker's step, used for idempotence and consistency.
    func pushRowGradients(table: UInt8, keys: [UInt64], gradients: [Float], clock: Int) async throws
    /// The whole flat dense parameter vector.
    func pullDense() async throws -> [Float]
    /// Applies a gradient for the whole flat dense vector.
    func pushDenseGradients(_ gradients: [Float], clock: Int) async throws
}
