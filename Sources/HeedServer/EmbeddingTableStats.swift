/// Counters and memory figures of one embedding table, summed over its stripes.
public struct EmbeddingTableStats: Hashable, Sendable {
    /// Live rows.
    public var rows: Int = 0
    /// Bytes of memory the table has touched (row chunks in use, key index, sketch): what
    /// the process has resident for it, give or take the partly used last page of a chunk.
    public var residentBytes: Int = 0
    /// Address space mapped, including untouched chunk tails.
    public var mappedBytes: Int = 0
    /// Rows created by pulls since the table was made (restored rows not included).
    public var created: Int = 0
    /// Rows removed by `evict(currentStep:)`.
    public var evicted: Int = 0
    /// Pulled keys read as zeros because they were not admitted yet.
    public var unadmittedReads: Int = 0
    /// Pulled keys read as zeros because the table was at `maxRows`.
    public var rejectedFull: Int = 0
    /// Pushed gradients dropped because their key had no row (never admitted, or evicted).
    public var droppedGradients: Int = 0
    /// Row updates applied.
    public var updates: Int = 0

    /// An all-zero record.
    public init() {}
}
