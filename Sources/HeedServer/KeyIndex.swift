import CKernels
import HeedCore

/// A collision-free open-addressing hash map from 64-bit keys to non-zero 64-bit values.
///
/// Linear probing over a power-of-two array of 16-byte `{key, value}` slots (four per
/// cache line), kept at most 70% full; value 0 marks an empty slot, so any key is
/// allowed. Deletion shifts later entries of the probe run back (Knuth 6.4 Algorithm R),
/// so there are no tombstones and lookups never slow down after evictions. Keys are
/// compared in full: two keys never share an entry. Not thread-safe; `EmbeddingTable`
/// guards each index with its stripe's lock.
///
/// Why not `Dictionary`: ~350 ns per lookup at 10M keys against ~30 ns here (PLATFORM.md).
final class KeyIndex {
    /// One entry; `value == 0` means empty.
    struct Slot {
        /// The full key (compared on every probe, so no two keys share an entry).
        var key: UInt64
        /// The stored value; 0 marks the slot empty.
        var value: UInt64
    }

    /// Slot array, `capacity` entries, zero-filled when mapped.
    private var slots: UnsafeMutablePointer<Slot>
    /// Number of slots, a power of two.
    private(set) var capacity: Int
    /// Live entries.
    private(set) var count: Int = 0
    private var mask: Int
    private var growAt: Int
    private let hugePages: Bool

    /// Most entries per slot before the array doubles (numerator over 10).
    static let maxLoadTenths = 7

    /// An empty index with room for `capacity` slots (rounded up to a power of two ≥ 16).
    init(capacity: Int = 16, hugePages: Bool = false) {
        let cap = max(16, capacity).nextPowerOfTwo
        self.capacity = cap
        self.mask = cap - 1
        self.growAt = cap * Self.maxLoadTenths / 10
        self.hugePages = hugePages
        self.slots = Self.allocate(cap, hugePages: hugePages)
    }

    deinit { Self.free(slots, capacity, hugePages: hugePages) }

    /// The hash every caller uses for `key`; also picks the table stripe from its top bits.
    @inline(__always)
    static func hash(_ key: UInt64) -> UInt64 { KeyHash.mix64(key) }

    /// Bytes of the slot array.
    var bytes: Int { PageMemory.mappedSize(capacity * MemoryLayout<Slot>.stride, hugePages: useHugePages(capacity)) }

    /// Brings the home slot of `hash` towards the cache ahead of a lookup.
    @inline(__always)
    func prefetch(hash: UInt64) {
        // Safe: the index is masked into 0..<capacity.
        heed_prefetch(slots + (Int(truncatingIfNeeded: hash) & mask))
    }

    /// The value stored for `key`, or 0 when absent. `hash` must be `KeyIndex.hash(key)`.
    @inline(__always)
    func find(_ key: UInt64, hash: UInt64) -> UInt64 {
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            // Safe: i is masked into 0..<capacity; the load factor bound guarantees an empty slot.
            let s = slots[i]
            if s.value == 0 { return 0 }
            if s.key == key { return s.value }
            i = (i &+ 1) & mask
        }
    }

    /// Batched `find` for values that are row addresses: for j in 0..<m, with p = order[j],
    /// `rows[j]` = the row of `keys[p]` (nil when absent). Prefetches home slots `slotAhead`
    /// keys early and the first `rowPrefetchBytes` of each found row towards L2, so a
    /// following pass over `rows` finds them near. Returns how many were found.
    /// - Parameters:
    ///   - keys, hashes: indexed by position; `hashes[p] == KeyIndex.hash(keys[p])`.
    ///   - order: (m) positions.
    ///   - rows: (m) outputs.
    func findRows(keys: UnsafePointer<UInt64>, hashes: UnsafePointer<UInt64>, order: UnsafePointer<Int32>, count m: Int,
                  into rows: UnsafeMutablePointer<UnsafeMutableRawPointer?>, slotAhead: Int, rowPrefetchBytes: Int) -> Int {
        // Safe: the kernel reads slots only at masked indices (a Slot is two UInt64s, key
        // then value, as the kernel expects), positions order[0..<m] and rows[0..<m].
        let raw = UnsafeRawPointer(slots).assumingMemoryBound(to: UInt64.self)
        return Int(heed_index_find_rows(raw, UInt64(mask), keys, hashes, order, Int64(m), rows,
                                        Int64(slotAhead), Int64(rowPrefetchBytes)))
    }

    /// Stores `value` (non-zero) for `key`, replacing and returning any previous value (else 0).
    @discardableResult
    func insert(_ key: UInt64, hash: UInt64, value: UInt64) -> UInt64 {
        precondition(value != 0, "KeyIndex: value 0 is reserved for empty slots")
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            // Safe: masked index, and at least one empty slot exists.
            let s = slots[i]
            if s.value == 0 { break }
            if s.key == key {
                slots[i].value = value
                return s.value
            }
            i = (i &+ 1) & mask
        }
        slots[i] = Slot(key: key, value: value)
        count += 1
        if count > growAt { resize(capacity * 2) }
        return 0
    }

    /// Removes `key` and returns its value (0 if it was absent), shifting the rest of its
    /// probe run back so no tombstone is left.
    @discardableResult
    func remove(_ key: UInt64, hash: UInt64) -> UInt64 {
        var hole = Int(truncatingIfNeeded: hash) & mask
        while true {
            // Safe: masked index, and at least one empty slot exists.
            let s = slots[hole]
            if s.value == 0 { return 0 }
            if s.key == key { break }
            hole = (hole &+ 1) & mask
        }
        let old = slots[hole].value
        var j = (hole &+ 1) & mask
        while slots[j].value != 0 {
            let home = Int(truncatingIfNeeded: Self.hash(slots[j].key)) & mask
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j]:
            // moving it before its home would make it unreachable.
            if (j &- home) & mask >= (j &- hole) & mask {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j &+ 1) & mask
        }
        slots[hole] = Slot(key: 0, value: 0)
        count -= 1
        return old
    }

    /// Grows the slot array so `n` entries fit under the load bound (used before bulk inserts).
    func reserve(_ n: Int) {
        var cap = capacity
        while n > cap * Self.maxLoadTenths / 10 { cap *= 2 }
        if cap > capacity { resize(cap) }
    }

    /// Calls `body(key, value)` for every entry, in slot order.
    func forEach(_ body: (UInt64, UInt64) throws -> Void) rethrows {
        for i in 0..<capacity {
            // Safe: i < capacity.
            let s = slots[i]
            if s.value != 0 { try body(s.key, s.value) }
        }
    }

    private func resize(_ newCapacity: Int) {
        let old = slots, oldCapacity = capacity
        slots = Self.allocate(newCapacity, hugePages: hugePages)
        capacity = newCapacity
        mask = newCapacity - 1
        growAt = newCapacity * Self.maxLoadTenths / 10
        for i in 0..<oldCapacity {
            // Safe: i < oldCapacity, the old array is still mapped.
            let s = old[i]
            guard s.value != 0 else { continue }
            var j = Int(truncatingIfNeeded: Self.hash(s.key)) & mask
            while slots[j].value != 0 { j = (j &+ 1) & mask }
            slots[j] = s
        }
        Self.free(old, oldCapacity, hugePages: hugePages)
    }

    /// Huge pages from one huge page's worth of slots up: the array size is a power of two,
    /// so it is then a whole number of them and nothing is wasted; below that, rounding up
    /// to 2 MiB would cost more memory than the TLB misses cost time.
    private func useHugePages(_ cap: Int) -> Bool { Self.useHugePages(cap, hugePages) }

    private static func useHugePages(_ cap: Int, _ hugePages: Bool) -> Bool {
        hugePages && cap * MemoryLayout<Slot>.stride >= PageMemory.hugePageSize
    }

    private static func allocate(_ cap: Int, hugePages: Bool) -> UnsafeMutablePointer<Slot> {
        let raw = PageMemory.map(bytes: cap * MemoryLayout<Slot>.stride, hugePages: useHugePages(cap, hugePages))
        return raw.bindMemory(to: Slot.self, capacity: cap)
    }

    private static func free(_ p: UnsafeMutablePointer<Slot>, _ cap: Int, hugePages: Bool) {
        PageMemory.unmap(UnsafeMutableRawPointer(p), bytes: cap * MemoryLayout<Slot>.stride, hugePages: useHugePages(cap, hugePages))
    }
}

extension Int {
    /// The smallest power of two ≥ self (self ≥ 1).
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}
