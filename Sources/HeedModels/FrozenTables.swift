/// A model some of whose embedding tables are read but never trained (the `text-tower`
/// with `freeze_text`): trainers pull those tables and push no row gradients for them,
/// on every step and every worker alike, so synchronous mode stays consistent.
public protocol FrozenTables {
    /// Table ids whose rows keep their initial values.
    var frozenTables: Set<UInt8> { get }
}
