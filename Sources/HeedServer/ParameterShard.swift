import Foundation
import HeedCore
import HeedOptim
import Synchronization

/// The parameters one server owns: the rows of its slots in every embedding table and a
/// contiguous chunk of the flat dense vector, each with its optimizer state.
///
/// Requests from many workers arrive concurrently on transport threads: tables lock
/// per stripe; the dense chunk and the synchronous-mode accumulators have one lock each.
///
/// In synchronous mode (`syncWorkers` W > 1) a step's pushes are summed and applied once,
/// averaged over W, when the W-th arrives (each worker pushes to every server and table
/// every step, empty pushes included). With W ≤ 1 every push is applied on arrival,
/// which is also the asynchronous and bounded-staleness behaviour.
///
/// Row requests are checked against the sharding plan: a pull or push naming a key of
/// another server's slot is refused whole before it touches any row (see `checkOwnership`).
public final class ParameterShard: @unchecked Sendable {
    /// This server's rank and the number of servers.
    public let rank: Int
    public let serverCount: Int
    /// Key → slot → server: the round-robin plan over `serverCount` servers and the run's
    /// slot count that the coordinator hands the workers, so both sides agree on owners.
    public let plan: ShardingPlan
    /// Embedding tables by id (feature group).
    public let tables: [UInt8: EmbeddingTable]
    /// The part of the flat dense vector this server owns.
    public let denseRange: Range<Int>
    /// Length of the model's whole flat dense vector (all servers' chunks).
    public let denseTotal: Int
    /// Pushes per step to wait for in synchronous mode (≤ 1: apply on arrival).
    public let syncWorkers: Int

    private var dense: [Float]
    private var denseOptimizer: DenseOptimizer
    private let denseLock = NSLock()
    private var pendingRows: [UInt8: PendingRows] = [:]
    private var pendingDense: PendingDense
    private let syncLock = NSLock()
    private var latestClock: UInt64 = 0
    private let clockLock = NSLock()
    private let rejections = Atomic<Int>(0)

    /// Builds the shard for server `rank` of `serverCount`.
    /// - Parameters:
    ///   - slotCount: the plan's virtual slots (`cluster.slots`); which keys are this
    ///     server's depends on it whenever there is more than one server.
    ///   - tableConfigs: one config per table id.
    ///   - initialDense: the model's whole initial dense vector; this shard keeps its chunk.
    ///   - denseOptimizer: optimizer settings for dense weights.
    public init(rank: Int, serverCount: Int, slotCount: Int = 4096, tableConfigs: [UInt8: EmbeddingTableConfig],
                initialDense: [Float], denseOptimizer: OptimizerSettings, syncWorkers: Int = 0,
                tableOptions: EmbeddingTableOptions = EmbeddingTableOptions()) throws {
        guard serverCount >= 1, rank >= 0, rank < serverCount else {
            throw HeedError(.config, "server rank \(rank) is outside 0..<\(serverCount)")
        }
        guard slotCount >= serverCount else {
            throw HeedError(.config, "\(slotCount) slots cannot be spread over \(serverCount) servers (cluster.slots must be >= the server count)")
        }
        self.rank = rank
        self.serverCount = serverCount
        self.plan = ShardingPlan(serverCount: serverCount, slotCount: slotCount)
        self.syncWorkers = syncWorkers
        var tables: [UInt8: EmbeddingTable] = [:]
        for (id, config) in tableConfigs { tables[id] = try EmbeddingTable(config: config, options: tableOptions) }
        self.tables = tables
        let range = ShardingPlan.denseRange(rank: rank, serverCount: serverCount, count: initialDense.count)
        self.denseRange = range
        self.denseTotal = initialDense.count
        self.dense = Array(initialDense[range])
        try denseOptimizer.validate()
        self.denseOptimizer = DenseOptimizer(config: denseOptimizer, count: range.count)
        self.pendingDense = PendingDense(sums: [Float](repeating: 0, count: range.count))
    }

    /// Table `id`; throws `.invalidInput` if this server holds no such table.
    func table(_ id: UInt8) throws -> EmbeddingTable {
        guard let t = tables[id] else {
            throw HeedError(.invalidInput, "server \(rank) has no table \(id) (tables: \(tables.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        return t
    }

    // MARK: - Rows

    /// Rows for `keys` of table `id`, (keys.count × dim), created lazily. Pulls carry no
    /// clock; rows read are marked touched at the latest clock any push carried.
    public func pullRows(table id: UInt8, keys: [UInt64]) throws -> [Float] {
        let t = try table(id)
        try keys.withUnsafeBufferPointer { try checkOwnership($0, table: id, request: "pull") }
        return t.pull(keys, step: pullStep)
    }

    /// Pointer form of `pullRows(table:keys:)`, writing into the caller's buffer.
    /// - Parameter values: (keys.count × dim), row-major; every element is written.
    public func pullRows(table id: UInt8, keys: UnsafeBufferPointer<UInt64>, into values: UnsafeMutableBufferPointer<Float>) throws {
        let t = try table(id)
        guard values.count == keys.count * t.dim else {
            throw HeedError(.invalidInput, "pull from table \(id): room for \(values.count) values for \(keys.count) keys × dim \(t.dim)")
        }
        try checkOwnership(keys, table: id, request: "pull")
        t.pull(keys: keys, into: values, step: pullStep)
    }

    /// Row requests refused because they named a key of another server's slot.
    public var foreignKeyRejections: Int { rejections.load(ordering: .relaxed) }

    /// Throws `.invalidInput` if a key of `keys` is not this server's under `plan`, naming
    /// the first such key, its slot and its owner, and counts the refusal. Callers run it
    /// before the request touches any row, so a refused request changes nothing. One
    /// hash and one table lookup per key; skipped with one server (it owns every slot).
    func checkOwnership(_ keys: UnsafeBufferPointer<UInt64>, table id: UInt8, request: String) throws {
        guard serverCount > 1 else { return }
        for key in keys where plan.server(of: key) != rank {
            rejections.add(1, ordering: .relaxed)
            throw HeedError(.invalidInput, "\(request) of table \(id) refused by server \(rank): key \(key) is in slot \(plan.slot(of: key)), "
                            + "which server \(plan.server(of: key)) owns (\(serverCount) servers, \(plan.slotCount) slots)")
        }
    }

    /// The step pulled rows are marked touched at: the latest clock any push carried.
    var pullStep: UInt32 { UInt32(clamping: clockLock.withLock { latestClock }) }

    /// Applies (keys.count × dim) gradients, or accumulates them in synchronous mode.
    /// - Returns: true if the gradients were applied by this call (false while a
    ///   synchronous step still waits for other workers).
    @discardableResult
    public func pushRows(table id: UInt8, keys: [UInt64], grads: [Float], clock: UInt64) throws -> Bool {
        try keys.withUnsafeBufferPointer { k in
            try grads.withUnsafeBufferPointer { try pushRows(table: id, keys: k, grads: $0, clock: clock) }
        }
    }

    /// Throws exactly the errors `pushRows` would for this table, these keys and sizes (no
    /// such table, gradients not keys × dim, a key of another server); after it passes,
    /// `pushRows` cannot fail.
    @discardableResult
    public func validatePush(table id: UInt8, keys: UnsafeBufferPointer<UInt64>, gradientCount: Int) throws -> EmbeddingTable {
        let t = try table(id)
        guard gradientCount == keys.count * t.dim else {
            throw HeedError(.invalidInput, "push to table \(id): \(gradientCount) gradient values for \(keys.count) keys × dim \(t.dim)")
        }
        try checkOwnership(keys, table: id, request: "push")
        return t
    }

    /// Pointer form of `pushRows(table:keys:grads:clock:)`, reading the caller's buffers
    /// (e.g. a received message) in place.
    /// - Parameters:
    ///   - keys: (n) keys.
    ///   - grads: (n × dim), row-major; `grads[i*dim ..< (i+1)*dim]` belongs to `keys[i]`.
    @discardableResult
    public func pushRows(table id: UInt8, keys: UnsafeBufferPointer<UInt64>, grads: UnsafeBufferPointer<Float>, clock: UInt64) throws -> Bool {
        let t = try validatePush(table: id, keys: keys, gradientCount: grads.count)
        let step = UInt32(clamping: clock)
        clockLock.withLock { latestClock = max(latestClock, clock) }
        guard syncWorkers > 1 else {
            t.push(keys: keys, grads: grads, step: step)
            return true
        }
        let ready: (keys: [UInt64], grads: [Float])? = syncLock.withLock {
            var pending = pendingRows[id] ?? PendingRows(dim: t.dim)
            pendingRows[id] = nil  // so `pending` is uniquely referenced and grows in place
            pending.add(keys: keys, grads: grads)
            guard pending.arrivals == syncWorkers else {
                pendingRows[id] = pending
                return nil
            }
            return pending.averaged(over: syncWorkers)
        }
        guard let ready else { return false }
        t.push(ready.keys, grads: ready.grads, step: step)
        return true
    }

    // MARK: - Dense

    /// This server's dense chunk, (denseRange.count).
    public func pullDense() -> [Float] {
        denseLock.withLock { dense }
    }

    /// Applies a gradient for this server's dense chunk (or accumulates it in synchronous mode).
    @discardableResult
    public func pushDense(_ grads: [Float]) throws -> Bool {
        guard grads.count == denseRange.count else {
            throw HeedError(.invalidInput, "dense push to server \(rank): \(grads.count) values, its chunk holds \(denseRange.count)")
        }
        var toApply = grads
        if syncWorkers > 1 {
            let ready: [Float]? = syncLock.withLock {
                pendingDense.add(grads)
                guard pendingDense.arrivals == syncWorkers else { return nil }
                defer { pendingDense = PendingDense(sums: [Float](repeating: 0, count: denseRange.count)) }
                return pendingDense.averaged(over: syncWorkers)
            }
            guard let ready else { return false }
            toApply = ready
        }
        denseLock.withLock { denseOptimizer.update(&dense, grads: toApply) }
        return true
    }

    /// This server's dense chunk and its optimizer state, read together under one lock.
    /// - Returns: weights (denseRange.count); state blockwise, ((stateWidth − 1) × count), and t.
    func denseSnapshot() -> (weights: [Float], state: [Float], step: UInt32) {
        denseLock.withLock { (dense, denseOptimizer.state, denseOptimizer.step) }
    }

    /// Replaces the dense chunk and its optimizer state (restore from a checkpoint).
    /// - Parameters:
    ///   - weights: (denseRange.count) floats.
    ///   - state: ((stateWidth − 1) × denseRange.count) floats, or nil to keep fresh state.
    func restoreDense(weights: [Float], state: [Float]?, step: UInt32) throws {
        try denseLock.withLock {
            guard weights.count == dense.count, state == nil || state!.count == denseOptimizer.state.count else {
                throw HeedError(.corrupt, "server \(rank): restored dense chunk has \(weights.count) weights and \(state?.count ?? 0) state values; this shard holds \(dense.count) and \(denseOptimizer.state.count)")
            }
            dense = weights
            if let state {
                denseOptimizer.state = state
                denseOptimizer.step = step
            }
        }
    }

    /// Row counts and resident bytes per table, for heartbeats and reports.
    public func tableStats() -> [UInt8: EmbeddingTableStats] {
        tables.mapValues { $0.stats() }
    }
}

/// Row gradients of one table summed over a synchronous step's pushes.
private struct PendingRows {
    let dim: Int
    var index: [UInt64: Int] = [:]
    var keys: [UInt64] = []
    var sums: [Float] = []
    var arrivals = 0

    init(dim: Int) { self.dim = dim }

    /// Adds (newKeys.count × dim) gradients.
    mutating func add(keys newKeys: UnsafeBufferPointer<UInt64>, grads: UnsafeBufferPointer<Float>) {
        arrivals += 1
        for (i, k) in newKeys.enumerated() {
            let row: Int
            if let r = index[k] { row = r } else {
                row = keys.count
                index[k] = row
                keys.append(k)
                sums.append(contentsOf: repeatElement(0, count: dim))
            }
            for j in 0..<dim { sums[row * dim + j] += grads[i * dim + j] }
        }
    }

    /// Keys sorted ascending with their mean gradients.
    func averaged(over workers: Int) -> (keys: [UInt64], grads: [Float]) {
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        let scale = 1 / Float(workers)
        var out = [Float](); out.reserveCapacity(sums.count)
        for r in order { for j in 0..<dim { out.append(sums[r * dim + j] * scale) } }
        return (order.map { keys[$0] }, out)
    }
}

/// Dense gradients summed over a synchronous step's pushes.
private struct PendingDense {
    var sums: [Float]
    var arrivals = 0

    mutating func add(_ grads: [Float]) {
        arrivals += 1
        for i in sums.indices { sums[i] += grads[i] }
    }

    func averaged(over workers: Int) -> [Float] {
        let scale = 1 / Float(workers)
        return sums.map { $0 * scale }
    }
}
