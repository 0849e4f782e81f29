import CKernels
import HeedCore
import HeedOptim
import Synchronization

/// One embedding table of a parameter server: 64-bit keys to rows created lazily on first
/// pull, updated in place by the table's optimizer as pushes arrive.
///
/// Storage: each row is one contiguous record
/// `[key u64 | step u32 | lastTouched u32 | w (dim) | optimizer state ((stateWidth−1)·dim)]`
/// (Float32; Adam's state is `m | v`), so an update touches one region of memory. Rows
/// live in chunked arenas that never move; a linear-probing `KeyIndex` maps keys to row
/// addresses.
///
/// Concurrency: the table is split into `options.stripes` stripes by the top bits of the
/// key hash; each stripe owns its own index, arena and admission sketch behind one lock,
/// so stripes share nothing. A batch is bucketed by stripe and each stripe's group runs
/// under one lock acquisition, with prefetching a few keys ahead. Busy stripes are
/// skipped and revisited, so two threads pushing overlapping batches mostly work on
/// different stripes. Every row update happens entirely under its stripe's lock, so
/// concurrent pushes are serialisable: each row sees the updates one at a time, in
/// some order, and its step count equals the number of updates applied.
///
/// Growth: a stripe's key index doubles when 70% full, rehashing only that stripe's keys
/// (1/stripes of the table) under its lock; rows themselves never move or get copied.
///
/// Determinism: a row's initial weights depend only on its key and `config.seed`
/// (`RowInitializer`), so the same key starts equal on any server and in any run.
///
/// Buffer sizes passed to `pull`/`push`/`restore` are preconditions: the server checks
/// message sizes against `dim` when it decodes a request, before calling in.
public final class EmbeddingTable: @unchecked Sendable {
    /// The table's settings.
    public let config: EmbeddingTableConfig
    /// Memory layout and tuning.
    public let options: EmbeddingTableOptions
    /// Embedding dimension.
    public let dim: Int
    /// Floats per row: `w` then the optimizer state (`optimizer.width`).
    public let width: Int
    /// The optimizer applied to rows.
    public let optimizer: RowOptimizer

    /// The independently locked parts; a key lives in `stripes[stripeIndex(hash)]`.
    let stripes: [EmbeddingTableStripe]
    /// Row record size in bytes: header plus floats, rounded up to 64 when that costs at
    /// most an eighth more (so records start on cache lines; see `recordStride`), else to 16.
    let stride: Int
    private let stripeShift: UInt64
    /// Live rows over all stripes, kept exact so `maxRows` holds under concurrency.
    let liveRows = Atomic<Int>(0)

    /// Bytes before a row's floats: key, step, last-touched step.
    static let headerBytes = 16
    /// `lastTouched` value that marks a released row; callers' steps are clamped below it.
    static let freeMark = UInt32.max

    /// A new, empty table. Throws `.config` when `config` or `options` are out of range.
    public init(config: EmbeddingTableConfig, options: EmbeddingTableOptions = EmbeddingTableOptions()) throws {
        try config.validate()
        guard options.stripes >= 1, options.stripes <= 1024, options.stripes.nonzeroBitCount == 1 else {
            throw HeedError(.config, "table \(config.name): stripes must be a power of two in 1...1024, got \(options.stripes)")
        }
        guard options.slotPrefetchDistance >= 0, options.rowPrefetchDistance >= 0 else {
            throw HeedError(.config, "table \(config.name): prefetch distances must be >= 0")
        }
        self.config = config
        self.options = options
        self.dim = config.dim
        let optimizer = RowOptimizer(config: config.optimizer, dim: config.dim)
        let stride = Self.recordStride(floats: optimizer.width)
        self.optimizer = optimizer
        self.width = optimizer.width
        self.stride = stride
        self.stripeShift = UInt64(64 - options.stripes.trailingZeroBitCount)
        let sketchWidth = config.admissionMinCount > 1 ? max(64, options.admissionSketchWidth / options.stripes) : nil
        self.stripes = (0..<options.stripes).map { _ in
            EmbeddingTableStripe(stride: stride, hugePages: options.hugePages, sketchWidth: sketchWidth)
        }
    }

    /// Bytes per row record of `floats` floats. A record that starts on a cache line spans
    /// ⌈bytes/64⌉ lines; packed at 16 bytes it straddles one more line on most rows (a
    /// 784-byte dim-64 Adam record touches 13.25 lines on average instead of 13), and each
    /// line is a random DRAM access on push. Small records keep the 16-byte packing, where
    /// rounding to 64 would cost more memory than the line it saves.
    static func recordStride(floats: Int) -> Int {
        let bytes = headerBytes + 4 * floats
        let packed = (bytes + 15) / 16 * 16, aligned = (bytes + 63) / 64 * 64
        return aligned * 8 <= packed * 9 ? aligned : packed
    }

    // MARK: - Batched pull and push

    /// Reads the weights of `keys`, creating admitted rows that do not exist yet.
    ///
    /// A key that is not admitted (seen fewer than `admissionMinCount` times, counting this
    /// pull) or that would exceed `maxRows` reads as zeros and gets no row. Pulled rows
    /// record `step` as their last-touched step (never moving it backwards).
    /// - Parameters:
    ///   - keys: (n) feature keys; duplicates are allowed.
    ///   - values: (n × dim), row-major; `values[i*dim ..< (i+1)*dim]` receives `w` of `keys[i]`.
    ///   - step: the caller's training step, for eviction.
    public func pull(keys: UnsafeBufferPointer<UInt64>, into values: UnsafeMutableBufferPointer<Float>, step: UInt32) {
        precondition(values.count == keys.count * dim, "pull: values hold \(values.count) floats, expected keys.count × dim = \(keys.count * dim)")
        guard let out = values.baseAddress else { return }
        let touch = min(step, Self.freeMark - 1)
        forEachStripeGroup(keys) { stripe, order, m, hashes, rows in
            pullGroup(stripe, keys: keys.baseAddress!, hashes: hashes, order: order, count: m, rows: rows, out: out, touch: touch)
        }
    }

    /// Applies one gradient per key with the table's optimizer (sparse lazy Adam by default).
    ///
    /// Keys without a row (never admitted, or evicted since they were pulled) are skipped
    /// and counted in `stats().droppedGradients`. A key given twice is updated twice, in order.
    /// - Parameters:
    ///   - keys: (n) feature keys.
    ///   - grads: (n × dim), row-major; `grads[i*dim ..< (i+1)*dim]` belongs to `keys[i]`.
    ///   - step: the caller's training step, recorded as last-touched.
    public func push(keys: UnsafeBufferPointer<UInt64>, grads: UnsafeBufferPointer<Float>, step: UInt32) {
        precondition(grads.count == keys.count * dim, "push: grads hold \(grads.count) floats, expected keys.count × dim = \(keys.count * dim)")
        guard let g = grads.baseAddress else { return }
        let touch = min(step, Self.freeMark - 1)
        forEachStripeGroup(keys, rotate: true) { stripe, order, m, hashes, rows in
            pushGroup(stripe, keys: keys.baseAddress!, hashes: hashes, order: order, count: m, rows: rows, grads: g, touch: touch)
        }
    }

    /// Array form of `pull(keys:into:step:)`; returns (keys.count × dim) floats.
    public func pull(_ keys: [UInt64], step: UInt32) -> [Float] {
        let n = keys.count * dim
        // Not zero-filled first: pull writes every element (zeros for keys without a row).
        return [Float](unsafeUninitializedCapacity: n) { storage, initialized in
            keys.withUnsafeBufferPointer { k in pull(keys: k, into: UnsafeMutableBufferPointer(rebasing: storage[0..<n]), step: step) }
            initialized = n
        }
    }

    /// Array form of `push(keys:grads:step:)`; `grads` is (keys.count × dim).
    public func push(_ keys: [UInt64], grads: [Float], step: UInt32) {
        keys.withUnsafeBufferPointer { k in grads.withUnsafeBufferPointer { push(keys: k, grads: $0, step: step) } }
    }

    // MARK: - Eviction and figures

    /// Removes rows whose last-touched step is at least `evictionTTL` steps before
    /// `currentStep`; returns how many. Does nothing when the table has no TTL.
    /// Freed rows are reused by later creations.
    @discardableResult
    public func evict(currentStep: UInt32) -> Int {
        guard let ttl = config.evictionTTL else { return 0 }
        var removed = 0
        for s in stripes {
            s.lock.withLock { _ in
                var n = 0
                s.arena.forEachCarvedRow { row in
                    let touched = row.load(fromByteOffset: 12, as: UInt32.self)
                    guard touched != Self.freeMark, currentStep > touched, currentStep - touched >= ttl else { return }
                    let key = row.load(as: UInt64.self)
                    s.index.remove(key, hash: KeyIndex.hash(key))
                    row.storeBytes(of: Self.freeMark, toByteOffset: 12, as: UInt32.self)
                    s.arena.release(row)
                    n += 1
                }
                s.stats.evicted += n
                removed += n
            }
        }
        liveRows.subtract(removed, ordering: .relaxed)
        return removed
    }

    /// Counters and memory, summed over stripes (each read under its lock).
    public func stats() -> EmbeddingTableStats {
        var total = EmbeddingTableStats()
        for s in stripes {
            let x = s.lock.withLock { _ in s.snapshot }
            total.rows += x.rows
            total.residentBytes += x.residentBytes
            total.mappedBytes += x.mappedBytes
            total.created += x.created
            total.evicted += x.evicted
            total.unadmittedReads += x.unadmittedReads
            total.rejectedFull += x.rejectedFull
            total.droppedGradients += x.droppedGradients
            total.updates += x.updates
        }
        return total
    }

    /// Live rows.
    public var rowCount: Int { stats().rows }

    /// Bytes of memory the table has touched (see `EmbeddingTableStats.residentBytes`).
    public var residentBytes: Int { stats().residentBytes }

    /// Bytes a row needs at least: key (8), `w` and optimizer state (4·width), step (4).
    public var rawBytesPerRow: Int { 8 + 4 * width + 4 }

    /// A copy of `key`'s row without creating it or touching it; nil when it has no row.
    public func row(for key: UInt64) -> EmbeddingRowSnapshot? {
        let h = KeyIndex.hash(key)
        let s = stripes[stripeIndex(h)]
        return s.lock.withLock { _ in
            let v = s.index.find(key, hash: h)
            guard let row = UnsafeMutableRawPointer(bitPattern: UInt(v)) else { return nil }
            return EmbeddingRowSnapshot(row: row, dim: dim, width: width)
        }
    }

    // MARK: - Internals

    /// The stripe of a key hash: its top bits (the key index uses the low bits).
    @inline(__always)
    func stripeIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> stripeShift) }

    /// The floats of a row record.
    @inline(__always)
    static func floats(_ row: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (row + headerBytes).assumingMemoryBound(to: Float.self)
    }

    /// Records `step` as the row's last-touched step unless a later one is already there.
    @inline(__always)
    static func touch(_ row: UnsafeMutableRawPointer, _ step: UInt32) {
        if row.load(fromByteOffset: 12, as: UInt32.self) < step {
            row.storeBytes(of: step, toByteOffset: 12, as: UInt32.self)
        }
    }

    /// Buckets `keys` by stripe and calls `body(stripe, order, count, hashes, rowScratch)`
    /// once per non-empty stripe with that stripe's lock held. `order[0..<count]` are
    /// positions in `keys` (ascending), `hashes` is indexed by position, `rowScratch` has
    /// room for `count` row addresses. Busy stripes are deferred to a second, blocking pass.
    ///
    /// With `rotate`, stripes are visited starting at the first key's stripe instead of
    /// stripe 0, so concurrent batches start at different places and rarely meet; without
    /// it the order is fixed, which pull needs so that which keys `maxRows` turns away
    /// depends only on the batch. Push results do not depend on the order of stripes.
    func forEachStripeGroup(
        _ keys: UnsafeBufferPointer<UInt64>, rotate: Bool = false,
        _ body: (EmbeddingTableStripe, UnsafePointer<Int32>, Int, UnsafePointer<UInt64>, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Void
    ) {
        let n = keys.count
        guard n > 0, let k = keys.baseAddress else { return }
        precondition(n < Int(Int32.max), "batch of \(n) keys is too large")
        let stripeCount = stripes.count
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { hashes in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: n) { order in
        withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: n) { rows in
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * stripeCount + 1) { starts in
            // Safe: all temporary buffers were sized above; positions are < n and stripe
            // indices < stripeCount by construction of stripeShift.
            let h = hashes.baseAddress!, o = order.baseAddress!, st = starts.baseAddress!
            for i in 0..<n { h[i] = KeyIndex.hash(k[i]) }
            if stripeCount == 1 {
                for i in 0..<n { o[i] = Int32(truncatingIfNeeded: i) }
                st[0] = 0
                st[1] = n
            } else {
                // Counting sort by stripe; st[stripeCount+1 ...] is the fill cursor.
                let cursor = st + stripeCount + 1
                for s in 0...stripeCount { st[s] = 0 }
                for i in 0..<n { st[stripeIndex(h[i]) + 1] += 1 }
                for s in 0..<stripeCount { st[s + 1] += st[s] }
                for s in 0..<stripeCount { cursor[s] = st[s] }
                for i in 0..<n {
                    let s = stripeIndex(h[i])
                    o[cursor[s]] = Int32(truncatingIfNeeded: i)
                    cursor[s] += 1
                }
            }
            // Reuse the cursor space as the list of stripes found busy.
            let busy = st + stripeCount + 1
            var busyCount = 0
            // stripeCount is a power of two, so masking wraps the rotated visit order.
            let first = rotate ? stripeIndex(h[0]) : 0
            for r in 0..<stripeCount {
                let s = (first + r) & (stripeCount - 1)
                guard st[s + 1] > st[s] else { continue }
                let stripe = stripes[s]
                let done = stripe.lock.withLockIfAvailable { _ in
                    body(stripe, o + st[s], st[s + 1] - st[s], h, rows.baseAddress!)
                    return true
                }
                if done == nil {
                    busy[busyCount] = s
                    busyCount += 1
                }
            }
            for b in 0..<busyCount {
                let s = busy[b], stripe = stripes[s]
                stripe.lock.withLock { _ in body(stripe, o + st[s], st[s + 1] - st[s], h, rows.baseAddress!) }
            }
        }}}}
    }

    /// The row for a pulled key, created if the key is admitted; nil reads as zeros.
    /// Runs with the stripe's lock held.
    @inline(__always)
    private func rowForPull(_ s: EmbeddingTableStripe, key: UInt64, hash: UInt64) -> UnsafeMutableRawPointer? {
        let v = s.index.find(key, hash: hash)
        if let row = UnsafeMutableRawPointer(bitPattern: UInt(v)) { return row }
        return createRow(s, key: key, hash: hash)
    }

    private func createRow(_ s: EmbeddingTableStripe, key: UInt64, hash: UInt64) -> UnsafeMutableRawPointer? {
        if s.sketch != nil, s.sketch!.increment(hash: hash) < config.admissionMinCount {
            s.stats.unadmittedReads += 1
            return nil
        }
        if let limit = config.maxRows {
            let now = liveRows.wrappingAdd(1, ordering: .relaxed).newValue
            if now > limit {
                liveRows.subtract(1, ordering: .relaxed)
                s.stats.rejectedFull += 1
                return nil
            }
        } else {
            liveRows.add(1, ordering: .relaxed)
        }
        let row = s.arena.allocate()
        row.storeBytes(of: key, as: UInt64.self)
        row.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
        row.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        let w = (row + Self.headerBytes).bindMemory(to: Float.self, capacity: width)
        config.initializer.fill(w, dim: dim, key: key, tableSeed: config.seed)
        optimizer.initializeState(w)
        s.index.insert(key, hash: hash, value: UInt64(UInt(bitPattern: row)))
        s.stats.created += 1
        return row
    }

    /// Pull over one stripe's group in two passes per block, as `pushGroup` does: find the
    /// existing rows (index slots prefetched ahead, each found row's header and weights
    /// sent towards L2), then copy weights out in order, prefetching rows `d2` ahead into
    /// L1, and create the missing (admitted) rows as they come. Missing keys go through
    /// `rowForPull` in position order, so admission counts and row creation happen in the
    /// same order as a one-pass lookup would do them.
    private func pullGroup(_ s: EmbeddingTableStripe, keys: UnsafePointer<UInt64>, hashes: UnsafePointer<UInt64>,
                           order: UnsafePointer<Int32>, count m: Int, rows: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                           out: UnsafeMutablePointer<Float>, touch: UInt32) {
        let d1 = options.slotPrefetchDistance, d2 = options.rowPrefetchDistance, dim = dim
        let readBytes = Self.headerBytes + 4 * dim
        Self.forEachBlock(count: m, order: order, rows: rows) { o, r, count in
            // Safe: order holds positions < n and out holds n × dim floats (checked by the caller).
            _ = s.index.findRows(keys: keys, hashes: hashes, order: o, count: count, into: r,
                                 slotAhead: d1, rowPrefetchBytes: readBytes)
            for q in 0..<count {
                if q + d2 < count, let ahead = r[q + d2] { heed_prefetch_range(ahead, Int64(readBytes)) }
                let p = Int(o[q])
                let dst = out + p * dim
                let row = r[q] ?? rowForPull(s, key: keys[p], hash: hashes[p])
                if let row {
                    Self.touch(row, touch)
                    dst.update(from: Self.floats(row), count: dim)
                } else {
                    dst.update(repeating: 0, count: dim)
                }
            }
        }
    }

    /// Push over one stripe's group in two passes: find every row (prefetching index slots
    /// ahead, and each found row towards L2), then update the rows in order with the row's
    /// own step count, prefetching records and gradients ahead. Splitting the passes keeps
    /// more misses in flight than one interleaved pipeline: the finds never wait for an
    /// Adam row, and the Adam pass starts on rows already on their way.
    private func pushGroup(_ s: EmbeddingTableStripe, keys: UnsafePointer<UInt64>, hashes: UnsafePointer<UInt64>,
                           order: UnsafePointer<Int32>, count m: Int, rows: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                           grads: UnsafePointer<Float>, touch: UInt32) {
        Self.forEachBlock(count: m, order: order, rows: rows) { o, r, count in
            pushBlock(s, keys: keys, hashes: hashes, order: o, count: count, rows: r, grads: grads, touch: touch)
        }
    }

    /// Rows per find-then-use block of a pull or push: their records (≈ 200 KiB at dim 64)
    /// stay in a Zen-class L2 (≥ 512 KiB) between the passes, with room for the gradients.
    static let blockRows = 256

    /// Cuts a group's `m` positions into blocks of at most `blockRows` and calls
    /// `body(order, rows, count)` with each block's slices of `order` and `rows`.
    @inline(__always)
    private static func forEachBlock(count m: Int, order: UnsafePointer<Int32>, rows: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                                     _ body: (UnsafePointer<Int32>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Void) {
        var lo = 0
        while lo < m {
            let count = min(blockRows, m - lo)
            // Safe: [lo, lo + count) lies inside the group's order and rows.
            body(order + lo, rows + lo, count)
            lo += count
        }
    }

    /// One block of `pushGroup`: `m` ≤ `blockRows` positions.
    private func pushBlock(_ s: EmbeddingTableStripe, keys: UnsafePointer<UInt64>, hashes: UnsafePointer<UInt64>,
                           order: UnsafePointer<Int32>, count m: Int, rows: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                           grads: UnsafePointer<Float>, touch: UInt32) {
        let d1 = options.slotPrefetchDistance, d2 = options.rowPrefetchDistance, dim = dim
        let recordBytes = Self.headerBytes + 4 * width
        // Safe: order[0..<m] are positions < n; keys and hashes hold n entries; rows has room for m.
        let found = s.index.findRows(keys: keys, hashes: hashes, order: order, count: m, into: rows,
                                     slotAhead: d1, rowPrefetchBytes: recordBytes)
        s.stats.updates += found
        s.stats.droppedGradients += m - found
        let optimizer = optimizer
        if case .adam(let a) = optimizer.config {
            optimizer.adamCoefficients.withUnsafeBufferPointer { coefs in
                var q = 0
                while q < m {
                    // Safe: rows[0..<m] were filled above; grads holds n × dim floats (checked by
                    // the caller) and every order[q] < n; coefs holds 3 floats per tabulated step.
                    q = Int(heed_adam_rows(rows, grads, order, Int64(m), Int64(q), Int64(dim), Int64(Self.headerBytes),
                                           a.beta1, a.beta2, coefs.baseAddress, Int64(coefs.count / 3),
                                           optimizer.adamStepsAreFinal ? 1 : 0, touch, Int64(d2)))
                    guard q < m else { break }
                    // A row past a table that has not settled: its coefficients are computed here.
                    Self.update(rows[q]!, optimizer: optimizer, grad: grads + Int(order[q]) * dim, touch: touch)
                    q += 1
                }
            }
        } else {
            for q in 0..<m {
                // Safe: as above.
                if q + d2 < m, let ahead = rows[q + d2] { heed_prefetch_range(ahead, Int64(recordBytes)) }
                guard let row = rows[q] else { continue }
                Self.update(row, optimizer: optimizer, grad: grads + Int(order[q]) * dim, touch: touch)
            }
        }
    }

    /// One optimizer step on a row record: step count up by one (saturating), last-touched
    /// step, then the optimizer with that step. Runs with the stripe's lock held.
    @inline(__always)
    private static func update(_ row: UnsafeMutableRawPointer, optimizer: RowOptimizer, grad: UnsafePointer<Float>, touch: UInt32) {
        let old = row.load(fromByteOffset: 8, as: UInt32.self)
        let t = old == UInt32.max ? old : old + 1
        row.storeBytes(of: t, toByteOffset: 8, as: UInt32.self)
        Self.touch(row, touch)
        optimizer.update(row: floats(row), grad: grad, step: t)
    }
}

/// A copy of one row, for tests, evaluation and debugging.
public struct EmbeddingRowSnapshot: Hashable, Sendable {
    /// The row's key.
    public var key: UInt64
    /// Updates the row has received (Adam's t).
    public var step: UInt32
    /// Last step at which the row was pulled or pushed.
    public var lastTouched: UInt32
    /// (width) floats: `w` (dim) then the optimizer state.
    public var values: [Float]
    /// The weights, first `dim` of `values`.
    public var weights: ArraySlice<Float>

    /// Copies the record at `row` (caller holds the stripe lock).
    init(row: UnsafeMutableRawPointer, dim: Int, width: Int) {
        key = row.load(as: UInt64.self)
        step = row.load(fromByteOffset: 8, as: UInt32.self)
        lastTouched = row.load(fromByteOffset: 12, as: UInt32.self)
        values = Array(UnsafeBufferPointer(start: EmbeddingTable.floats(row), count: width))
        weights = values[0..<dim]
    }
}
