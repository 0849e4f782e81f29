import HeedCore

/// One row handed to a checkpoint writer by `EmbeddingTable.forEachRow(plan:_:)`.
///
/// `values` points into the table and is valid only during the callback; copy what you keep.
public struct EmbeddingRowView {
    /// The key's virtual slot in the plan given to `forEachRow`.
    public var slot: Int
    /// The row's key.
    public var key: UInt64
    /// Updates the row has received (Adam's per-row t).
    public var step: UInt32
    /// Last step at which the row was pulled or pushed.
    public var lastTouched: UInt32
    /// (width) floats: `w` (dim), then the optimizer state (Adam: `m` (dim), `v` (dim)).
    public var values: UnsafeBufferPointer<Float>
}

extension EmbeddingTable {
    /// Calls `body` for every row, in ascending (slot, key) order, so the same table state
    /// always produces the same byte stream whatever order rows were created in.
    ///
    /// Holds every stripe's lock for the whole walk: the rows form one consistent snapshot,
    /// and pulls and pushes wait until it ends (stop them first, e.g. at the coordinator's
    /// checkpoint barrier, to keep training from stalling on it). `body` must not call
    /// back into this table. Temporary memory: 16 bytes per row.
    /// `begin` is called first, under the same locks, with the number of rows `body` will
    /// see, so a writer can record the count even while pulls create rows concurrently.
    public func forEachRow(plan: ShardingPlan, begin: (Int) throws -> Void = { _ in },
                           _ body: (EmbeddingRowView) throws -> Void) throws {
        try withAllStripesLocked {
            let total = stripes.reduce(0) { $0 + $1.index.count }
            try begin(total)
            var starts = [Int](repeating: 0, count: plan.slotCount + 1)
            for s in stripes { s.index.forEach { key, _ in starts[plan.slot(of: key) + 1] += 1 } }
            for i in 0..<plan.slotCount { starts[i + 1] += starts[i] }
            var cursor = starts
            var entries = [(key: UInt64, row: UInt64)](repeating: (0, 0), count: total)
            for s in stripes {
                s.index.forEach { key, row in
                    let slot = plan.slot(of: key)
                    entries[cursor[slot]] = (key, row)
                    cursor[slot] += 1
                }
            }
            for slot in 0..<plan.slotCount where starts[slot + 1] > starts[slot] {
                entries[starts[slot]..<starts[slot + 1]].sort { $0.key < $1.key }
                for e in entries[starts[slot]..<starts[slot + 1]] {
                    // Safe: index values are addresses of live rows in this table's arenas.
                    let row = UnsafeMutableRawPointer(bitPattern: UInt(e.row))!
                    try body(EmbeddingRowView(
                        slot: slot, key: e.key,
                        step: row.load(fromByteOffset: 8, as: UInt32.self),
                        lastTouched: row.load(fromByteOffset: 12, as: UInt32.self),
                        values: UnsafeBufferPointer(start: Self.floats(row), count: width)))
                }
            }
        }
    }

    /// Number of rows per virtual slot of `plan` (for manifests and re-sharding).
    public func rowCounts(plan: ShardingPlan) -> [Int] {
        var counts = [Int](repeating: 0, count: plan.slotCount)
        for s in stripes {
            s.lock.withLock { _ in s.index.forEach { key, _ in counts[plan.slot(of: key)] += 1 } }
        }
        return counts
    }

    /// Bulk insert for restore: writes each key's full row, creating it or overwriting an
    /// existing one, without admission checks or the `maxRows` bound (a checkpoint is
    /// trusted to fit the table it came from).
    /// - Parameters:
    ///   - keys: (n) feature keys.
    ///   - values: (n × width), row-major `[w | optimizer state]` per key.
    ///   - steps: (n) per-row update counts.
    ///   - lastTouched: last-touched step given to every restored row.
    public func restore(keys: UnsafeBufferPointer<UInt64>, values: UnsafeBufferPointer<Float>,
                        steps: UnsafeBufferPointer<UInt32>, lastTouched: UInt32) {
        precondition(values.count == keys.count * width && steps.count == keys.count,
                     "restore: expected keys.count × width values and keys.count steps")
        guard keys.count > 0, let src = values.baseAddress else { return }
        let touch = min(lastTouched, Self.freeMark - 1)
        forEachStripeGroup(keys) { s, order, m, hashes, _ in
            for j in 0..<m {
                // Safe: order holds positions < n; values holds n × width floats (checked above).
                let p = Int(order[j]), key = keys[p], h = hashes[p]
                var row = UnsafeMutableRawPointer(bitPattern: UInt(s.index.find(key, hash: h)))
                if row == nil {
                    let r = s.arena.allocate()
                    r.storeBytes(of: key, as: UInt64.self)
                    (r + Self.headerBytes).bindMemory(to: Float.self, capacity: width)
                    s.index.insert(key, hash: h, value: UInt64(UInt(bitPattern: r)))
                    liveRows.add(1, ordering: .relaxed)
                    row = r
                }
                row!.storeBytes(of: steps[p], toByteOffset: 8, as: UInt32.self)
                row!.storeBytes(of: touch, toByteOffset: 12, as: UInt32.self)
                Self.floats(row!).update(from: src + p * width, count: width)
            }
        }
    }

    /// Array form of `restore(keys:values:steps:lastTouched:)`.
    public func restore(_ keys: [UInt64], values: [Float], steps: [UInt32], lastTouched: UInt32) {
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                steps.withUnsafeBufferPointer { restore(keys: k, values: v, steps: $0, lastTouched: lastTouched) }
            }
        }
    }

    /// Runs `body` with every stripe locked, taking the locks in stripe order (other code
    /// holds at most one stripe lock at a time, so this cannot deadlock).
    private func withAllStripesLocked<R>(from i: Int = 0, _ body: () throws -> R) throws -> R {
        if i == stripes.count { return try body() }
        return try stripes[i].lock.withLock { _ in try withAllStripesLocked(from: i + 1, body) }
    }
}
