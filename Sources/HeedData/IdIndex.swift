import HeedCore

/// Maps 64-bit raw ids to dense indices 0, 1, 2, … in order of first insertion.
///
/// Open addressing with linear probing (PLATFORM.md: ~10x faster than `Dictionary`
/// for large id sets); `rawIDs[i]` is the raw id of index `i`. A slot is 8 bytes (a 32-bit
/// fingerprint of the id's hash and the index), the table at most three quarters full: 11-21
/// bytes per id plus its raw id, a fifth of a half-full (key, index) table's, which matters at
/// tens of millions of items (`--memory-budget`). A fingerprint match is confirmed against
/// `rawIDs`. Once loading is done `releaseLookup()` frees the table and keeps the raw ids.
package struct IdIndex {
    private struct Slot {
        /// High half of the id's hash.
        var fingerprint: UInt32
        /// Dense index, -1 for an empty slot.
        var index: Int32
    }
    private var slots: [Slot]
    private var mask: Int
    /// Raw id of each dense index.
    package private(set) var rawIDs: [UInt64] = []

    /// An empty index sized for about `capacity` ids.
    init(capacity: Int = 1024) {
        var n = 16
        while n * 3 < capacity * 4 { n <<= 1 }
        slots = [Slot](repeating: Slot(fingerprint: 0, index: -1), count: n)
        mask = n - 1
    }

    /// Number of ids.
    var count: Int { rawIDs.count }

    /// Bytes held: the slot table and the raw ids (their capacities).
    var bytes: Int { slots.capacity * MemoryLayout<Slot>.stride + rawIDs.capacity * 8 }

    /// The index of `id`, inserting it if new.
    @inline(__always)
    mutating func index(of id: UInt64) -> Int {
        precondition(mask >= 0, "IdIndex.index(of:) after releaseLookup")
        let hash = KeyHash.mix64(id)
        let fingerprint = UInt32(truncatingIfNeeded: hash >> 32)
        var h = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = slots[h]
            if s.index < 0 {
                let idx = rawIDs.count
                slots[h] = Slot(fingerprint: fingerprint, index: Int32(idx))
                rawIDs.append(id)
                if rawIDs.count * 4 > slots.count * 3 { rehash() }
                return idx
            }
            if s.fingerprint == fingerprint && rawIDs[Int(s.index)] == id { return Int(s.index) }
            h = (h + 1) & mask
        }
    }

    /// Frees the lookup table (`index(of:)` and `find` must not be called after); keeps `rawIDs`.
    mutating func releaseLookup() {
        slots = []
        mask = -1
    }

    /// The index of `id` if present.
    @inline(__always)
    func find(_ id: UInt64) -> Int? {
        precondition(mask >= 0, "IdIndex.find after releaseLookup")
        let hash = KeyHash.mix64(id)
        let fingerprint = UInt32(truncatingIfNeeded: hash >> 32)
        var h = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = slots[h]
            if s.index < 0 { return nil }
            if s.fingerprint == fingerprint && rawIDs[Int(s.index)] == id { return Int(s.index) }
            h = (h + 1) & mask
        }
    }

    private mutating func rehash() {
        let n = slots.count * 2
        slots = []
        slots = [Slot](repeating: Slot(fingerprint: 0, index: -1), count: n)
        mask = n - 1
        for (i, id) in rawIDs.enumerated() {
            let hash = KeyHash.mix64(id)
            var h = Int(truncatingIfNeeded: hash) & mask
            while slots[h].index >= 0 { h = (h + 1) & mask }
            slots[h] = Slot(fingerprint: UInt32(truncatingIfNeeded: hash >> 32), index: Int32(i))
        }
    }
}

/// A list of variable-length lists stored flat: `values[offsets[i]..<offsets[i+1]]` is list `i`.
struct Ragged<T> {
    /// Start of each list, plus one final end offset.
    private(set) var offsets: [Int] = [0]
    /// All lists' elements, back to back.
    private(set) var values: [T] = []

    /// Number of lists.
    var count: Int { offsets.count - 1 }

    /// Appends one list.
    mutating func append<S: Sequence>(_ list: S) where S.Element == T {
        values.append(contentsOf: list)
        offsets.append(values.count)
    }

    /// Appends empty lists until there are `n` lists.
    mutating func pad(to n: Int) {
        while count < n { offsets.append(values.count) }
    }

    /// The elements of list `i` (empty past the end).
    subscript(i: Int) -> ArraySlice<T> {
        guard i < count else { return values[values.count..<values.count] }
        return values[offsets[i]..<offsets[i + 1]]
    }
}
