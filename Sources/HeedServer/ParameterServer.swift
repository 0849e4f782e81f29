import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// Serves one `ParameterShard` over a transport: pulls are answered directly, pushes go
/// through a `DedupCache` so a retried push is applied once, anything else is refused
/// with an error reply (the transport counts malformed and unauthenticated messages
/// before they reach this handler).
///
/// Row pushes are acknowledged after they are applied, or, with `.onReceipt` (the
/// asynchronous mode), as soon as they are validated and known to be new: the worker's
/// push round trip then no longer includes the server's Adam, and the context that
/// received the push applies it while nng sends the ack. A `flush` control request (the
/// workers' last call before the end-of-training barrier) and `save-model` wait until
/// every acknowledged push has been applied, so evaluation and saved models see them all.
public final class ParameterServer: @unchecked Sendable {
    /// The parameters served; nil until `attach(_:)` (requests before that are refused).
    public var shard: ParameterShard? { lock.withLock { _shard } }
    /// The transport server.
    public private(set) var listener: (any RequestServer)!
    /// Where clients connect.
    public var address: String { listener.address }
    /// Pushes answered from the dedup cache, applied, parked.
    public var dedupStatistics: DedupCache.Statistics { dedup.statistics }

    private var _shard: ParameterShard?
    private var saveTarget: SaveTarget?
    private var acknowledgement = PushAcknowledgement.afterApplying
    private let lock = NSLock()
    /// Row pushes acknowledged but not yet applied, and flushes waiting on them; guarded by `applying`.
    private var unapplied = UnappliedPushes()
    private let applying = NSCondition()
    private let dedup = DedupCache()
    private var shutdownRequested = false
    /// Saves (checkpoint or model files) being written; guarded by `saving`.
    private var savesRunning = 0
    private let saving = NSCondition()

    /// Starts listening at `address`; the shard may be attached later (after registration
    /// has told this server its rank).
    public init(transport: any Transport, address: String, options: ServerOptions, shard: ParameterShard? = nil,
                pushAcknowledgement: PushAcknowledgement = .afterApplying) throws {
        _shard = shard
        acknowledgement = pushAcknowledgement
        var options = options
        // Pulls and pushes are served from and into the transport's buffers; the Message
        // path below handles everything else (and the same requests in tests that call it).
        options.rowHandlers = RowRequestHandlers(
            pull: { [weak self] tableID, keys in
                guard let self else { throw HeedError(.cancelled, "server is shutting down") }
                return try self.rowReader(tableID, keys: keys)
            },
            push: { [weak self] push, senderID, requestID, responder in
                guard let self else { throw HeedError(.cancelled, "server is shutting down") }
                return try self.push(push, senderID: senderID, requestID: requestID, responder: responder)
            })
        listener = try transport.listen(on: address, options: options) { [weak self] request in
            guard let self else { throw HeedError(.cancelled, "server is shutting down") }
            return try self.handle(request)
        }
    }

    /// The row width of table `tableID` and a function reading its rows into a reply
    /// buffer; throws if `keys` name a key another server owns.
    private func rowReader(_ tableID: UInt32, keys: UnsafeBufferPointer<UInt64>) throws
        -> (dim: Int, read: (UnsafeBufferPointer<UInt64>, UnsafeMutableBufferPointer<Float>) -> Void) {
        guard let shard else { throw HeedError(.unsupported, "server is starting: parameters not loaded yet") }
        let id = try Self.tableID(tableID)
        let table = try shard.table(id)
        try shard.checkOwnership(keys, table: id, request: "pull")
        return (table.dim, { keys, values in table.pull(keys: keys, into: values, step: shard.pullStep) })
    }

    /// Applies a push read in place from the request, once per (sender, request id).
    private func push(_ push: PushRowsView, senderID: UInt64, requestID: UInt64, responder: Responder) throws -> Message? {
        let (shard, acknowledgement) = lock.withLock { (_shard, self.acknowledgement) }
        guard let shard else { throw HeedError(.unsupported, "server is starting: parameters not loaded yet") }
        let table = try Self.tableID(push.tableID)
        let ack = Message.ack(Ack(value: UInt64(push.keys.count)))
        let apply = {
            try shard.pushRows(table: table, keys: push.keys, grads: push.grads, clock: push.workerClock ?? 0)
            return ack
        }
        guard acknowledgement == .onReceipt else {
            return dedup.handle(sender: senderID, requestID: requestID, responder: responder, apply: apply)
        }
        // Everything pushRows could refuse is refused here, before the ack goes out.
        try shard.validatePush(table: table, keys: push.keys, gradientCount: push.grads.count)
        // Counted before the ack leaves, so a flush the sender sends after seeing the ack
        // finds the push still pending or already applied.
        applying.withLock { unapplied.begin(senderID) }
        defer {
            let waitingFlushes = applying.withLock { () -> [Responder] in
                let waiting = unapplied.end(senderID)
                if unapplied.total == 0 { applying.broadcast() }
                return waiting
            }
            for r in waitingFlushes { r.reply(Self.flushed) }
        }
        return dedup.handle(sender: senderID, requestID: requestID, responder: responder, acknowledgeFirst: ack, apply: apply)
    }

    /// The answer to a `flush`.
    private static let flushed = Message.controlReply(Control(name: "flushed"))

    /// Answers a `flush` from `sender` once every push acknowledged to it has been
    /// applied: now, or (returning nil) from the thread that applies the last one, so a
    /// waiting flush holds no thread. Other senders' pushes are not waited for.
    private func flush(sender: UInt64, responder: Responder) -> Message? {
        let done = applying.withLock { unapplied.park(flushOf: sender, responder) }
        return done ? Self.flushed : nil
    }

    /// Waits until every acknowledged row push, from any sender, has been applied; throws
    /// `.timeout` after `limit`. For saving, when the workers have finished.
    public func waitForAcknowledgedPushes(limit: Duration = .seconds(60)) throws {
        let deadline = Date(timeIntervalSinceNow: limit.seconds)
        try applying.withLock {
            while unapplied.total > 0 {
                guard applying.wait(until: deadline) || unapplied.total == 0 else {
                    throw HeedError(.timeout, "\(unapplied.total) acknowledged pushes still unapplied after \(limit)")
                }
            }
        }
    }

    /// Where `save-model` requests write: fixed by the run config, so a peer can ask a
    /// server to save but never choose the path.
    public struct SaveTarget: Sendable {
        /// The final model's directory ("" = the run saves no model).
        public var directory: String
        public var slotCount: Int
        /// The run's checkpoint directory ("" = no checkpoints); a `checkpoint-save` for
        /// step N writes `<checkpointDirectory>/step-<N>/shard-<rank>.bin`.
        public var checkpointDirectory: String
        public init(directory: String, slotCount: Int, checkpointDirectory: String = "") {
            self.directory = directory
            self.slotCount = slotCount
            self.checkpointDirectory = checkpointDirectory
        }
    }

    /// When a row push is acknowledged.
    public enum PushAcknowledgement: Sendable, Equatable {
        /// After it has been applied (synchronous and bounded modes: the next pull sees it).
        case afterApplying
        /// Once validated and known not to be a duplicate; applied right after
        /// (asynchronous mode, where a worker's next pull need not see its own push).
        case onReceipt
    }

    /// Makes `shard` the parameters served; `saveTo` enables `save-model` requests.
    public func attach(_ shard: ParameterShard, saveTo: SaveTarget? = nil, pushAcknowledgement: PushAcknowledgement = .afterApplying) {
        lock.withLock { _shard = shard; saveTarget = saveTo; acknowledgement = pushAcknowledgement }
    }

    /// True once a peer sent `shutdown`.
    public var isShutdownRequested: Bool { lock.withLock { shutdownRequested } }

    /// Stops listening.
    public func close() { listener.close() }

    private func handle(_ request: Request) throws -> Message? {
        if case .shutdown = request.message {
            lock.withLock { shutdownRequested = true }
            return .ack(Ack())
        }
        guard let shard else { throw HeedError(.unsupported, "server is starting: parameters not loaded yet") }
        switch request.message {
        case .pullRows(let pull):
            let id = try Self.tableID(pull.tableID)
            let values = try shard.pullRows(table: id, keys: pull.keys)
            // Safe to unwrap: pullRows threw if the table did not exist.
            return .rowsReply(RowsReply(tableID: pull.tableID, dim: UInt32(shard.tables[id]!.dim), values: values))
        case .pushRows(let push):
            return dedup.handle(request) {
                try shard.pushRows(table: try Self.tableID(push.tableID), keys: push.keys, grads: push.grads, clock: push.workerClock ?? 0)
                return .ack(Ack(value: UInt64(push.keys.count)))
            }
        case .pullDense(let pull):
            guard pull.tensorIDs == [0] else { throw HeedError(.invalidInput, "dense tensors are served as one chunk, id 0; asked for \(pull.tensorIDs)") }
            let chunk = shard.pullDense()
            return .denseReply(DenseReply(tensors: [DenseTensor(id: 0, shape: [UInt32(chunk.count)], values: chunk)]))
        case .pushDense(let push):
            guard push.tensors.count == 1, push.tensors[0].id == 0 else {
                throw HeedError(.invalidInput, "dense gradients are pushed as one chunk, id 0")
            }
            return dedup.handle(request) {
                try shard.pushDense(push.tensors[0].values)
                return .ack(Ack(value: UInt64(push.tensors[0].values.count)))
            }
        case .control(let c) where c.name == "flush":
            return flush(sender: request.envelope.senderID, responder: request.responder)
        case .control(let c) where c.name == "checkpoint-save":
            // Body: the checkpoint's global step, decimal. Only the number comes from the peer.
            guard let target = lock.withLock({ saveTarget }), !target.checkpointDirectory.isEmpty else {
                throw HeedError(.unsupported, "this run takes no checkpoints ([checkpoint] dir is not set)")
            }
            guard let step = Int(String(decoding: c.body, as: UTF8.self)), step >= 0 else {
                throw HeedError(.invalidInput, "checkpoint-save needs a step number")
            }
            // The coordinator has paused every worker at its checkpoint barrier; pushes
            // acknowledged before the pause must land before the snapshot.
            try waitForAcknowledgedPushes()
            let directory = CheckpointStore(directory: target.checkpointDirectory).path(step: step)
            let written = try whileSaving { try shard.save(directory: directory, slotCount: target.slotCount) }
            return .controlReply(Control(name: "saved", body: Array(try JSONEncoder().encode(written))))
        case .control(let c) where c.name == "save-model":
            guard let target = lock.withLock({ saveTarget }), !target.directory.isEmpty else {
                throw HeedError(.unsupported, "this run saves no model (output.model / --save-model is not set)")
            }
            try waitForAcknowledgedPushes()
            let written = try whileSaving { try shard.save(directory: target.directory, slotCount: target.slotCount) }
            return .controlReply(Control(name: "saved", body: Array(try JSONEncoder().encode(written))))
        case .control(let c) where c.name == "stats":
            let stats = shard.tableStats().map { "\"\($0.key)\":{\"rows\":\($0.value.rows),\"residentBytes\":\($0.value.residentBytes)}" }
            return .controlReply(Control(name: "stats", body: Array("{\((stats + ["\"foreignKeyRejections\":\(shard.foreignKeyRejections)"]).joined(separator: ","))}".utf8)))
        default:
            throw HeedError(.unsupported, "a parameter server does not handle \(request.message.kind) requests")
        }
    }

    /// Runs a save, counted so that a shutdown can wait for it (`waitForSaves`).
    private func whileSaving<T>(_ body: () throws -> T) rethrows -> T {
        saving.withLock { savesRunning += 1 }
        defer { saving.withLock { savesRunning -= 1; saving.broadcast() } }
        return try body()
    }

    /// Waits up to `limit` for saves in progress to finish, so a server that stops never
    /// leaves a file half-written (each is written under a temporary name and renamed).
    /// - Returns: false if one was still running at the deadline.
    public func waitForSaves(limit: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(limit.components.seconds) + Double(limit.components.attoseconds) * 1e-18)
        return saving.withLock {
            while savesRunning > 0 { if !saving.wait(until: deadline) { return savesRunning == 0 } }
            return true
        }
    }

    private static func tableID(_ id: UInt32) throws -> UInt8 {
        guard id <= 255 else { throw HeedError(.invalidInput, "table id \(id) is out of range (feature groups are 0...255)") }
        return UInt8(id)
    }
}

/// Per sender, the row pushes acknowledged on receipt and not yet applied, and the
/// flushes waiting for that count to reach zero.
///
/// Nothing bounds the count per sender but the transport: each pending push is running
/// on one of nng's callback threads, holding the message it arrived in.
struct UnappliedPushes {
    private var counts: [UInt64: Int] = [:]
    private var flushes: [UInt64: [Responder]] = [:]
    /// Unapplied pushes over all senders.
    private(set) var total = 0

    mutating func begin(_ sender: UInt64) {
        counts[sender, default: 0] += 1
        total += 1
    }

    /// Marks one of `sender`'s pushes applied; returns the flushes to answer now.
    mutating func end(_ sender: UInt64) -> [Responder] {
        total -= 1
        let left = counts[sender, default: 1] - 1
        guard left == 0 else {
            counts[sender] = left
            return []
        }
        counts[sender] = nil
        return flushes.removeValue(forKey: sender) ?? []
    }

    /// True if `sender` has nothing unapplied (answer the flush now); otherwise keeps
    /// `responder` until its last push is applied.
    mutating func park(flushOf sender: UInt64, _ responder: Responder) -> Bool {
        guard counts[sender] != nil else { return true }
        flushes[sender, default: []].append(responder)
        return false
    }
}
