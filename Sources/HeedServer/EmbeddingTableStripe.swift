import Synchronization

/// One lock's worth of an embedding table: the rows whose key hash selects this stripe.
///
/// Every field except `lock` is guarded by `lock`; `EmbeddingTable` takes it around each
/// batch group, sweep or export. A stripe owns complete structures (index, arena,
/// sketch), so no structure is ever shared between two locks.
final class EmbeddingTableStripe: @unchecked Sendable {
    /// Guards everything below.
    let lock = Mutex<Void>(())
    /// Key → row address.
    let index: KeyIndex
    /// Row memory.
    let arena: RowArena
    /// Sighting counts of keys without rows; nil when the table admits every key.
    var sketch: AdmissionSketch?
    /// Event counters (rows, bytes are derived from index and arena).
    var stats = EmbeddingTableStats()
    /// A cache line of nothing after the fields: stripes are separate heap objects that
    /// malloc places back to back, and without it the counters one thread writes under
    /// this lock would share a line with the next stripe's lock word and reference count,
    /// which another thread touches at the same time. Never read.
    private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// An empty stripe for rows of `stride` bytes.
    init(stride: Int, hugePages: Bool, sketchWidth: Int?) {
        index = KeyIndex(hugePages: hugePages)
        arena = RowArena(stride: stride, hugePages: hugePages)
        sketch = sketchWidth.map { AdmissionSketch(width: $0) }
    }

    /// Counters plus memory figures; call with `lock` held.
    var snapshot: EmbeddingTableStats {
        var s = stats
        s.rows = index.count
        s.residentBytes = arena.touchedBytes + index.bytes + (sketch?.bytes ?? 0)
        s.mappedBytes = arena.mappedBytes + index.bytes + (sketch?.bytes ?? 0)
        return s
    }
}
