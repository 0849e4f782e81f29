/// How an `EmbeddingTable` is laid out in memory; tuning, not model configuration.
public struct EmbeddingTableOptions: Hashable, Sendable {
    /// Number of independently locked stripes (a power of two, 1...1024). Each owns a key
    /// index, row arena and admission sketch for the keys whose hash selects it.
    public var stripes: Int
    /// Advise transparent huge pages for large arrays.
    public var hugePages: Bool
    /// Total admission-sketch counters per hash row across stripes (only allocated when
    /// `admissionMinCount > 1`); memory is 4 bytes per unit.
    public var admissionSketchWidth: Int
    /// How many keys ahead the batched loops prefetch key-index slots.
    public var slotPrefetchDistance: Int
    /// How many keys ahead the batched loops prefetch rows into L1 (after finding them;
    /// push has already sent a block's rows towards L2 while finding them).
    public var rowPrefetchDistance: Int

    /// Defaults tuned with `heed bench storage` on a 2-core Zen 4 machine: push's find
    /// pass is a short loop, so its slot prefetch needs 16 keys to cover a DRAM miss.
    public init(stripes: Int = 32, hugePages: Bool = true, admissionSketchWidth: Int = 1 << 20,
                slotPrefetchDistance: Int = 16, rowPrefetchDistance: Int = 4) {
        self.stripes = stripes
        self.hugePages = hugePages
        self.admissionSketchWidth = admissionSketchWidth
        self.slotPrefetchDistance = slotPrefetchDistance
        self.rowPrefetchDistance = rowPrefetchDistance
    }
}
