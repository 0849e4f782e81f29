import HeedCore

/// Applies each mutating request once per (sender id, request id) and answers
/// duplicates and retries with the first reply.
///
/// Per sender it keeps the last `capacityPerSender` replies. Evicting an id raises the
/// sender's watermark; an unknown id at or below the watermark is too old to tell
/// apart from an applied one and is refused with `.protocolViolation` rather than
/// applied twice. A duplicate that arrives while the first copy is still being applied
/// is parked and answered when it finishes (the handler returns `nil` for it).
/// Senders beyond `maxSenders` are forgotten least-recently-used first. Use it for
/// pushes and other mutations only; reads are idempotent and need no cache.
public final class DedupCache: Sendable {
    /// What the cache has done so far.
    public struct Statistics: Sendable, Equatable {
        /// Requests applied (first copies).
        public var applied = 0
        /// Duplicates answered from the cache.
        public var duplicates = 0
        /// Duplicates parked until the first copy finished.
        public var parked = 0
        /// Requests refused as older than the window.
        public var stale = 0
        /// Senders currently tracked.
        public var senders = 0
        /// Requests acknowledged on receipt whose `apply` then failed (the sender already
        /// had its ack, so the failure is counted here and the ack stays the cached reply).
        public var failedAfterAcknowledging = 0
    }

    private enum Decision { case apply, answer(Message), park }

    private enum Entry {
        case inProgress([Responder])
        case done(Message)
    }

    private struct Window {
        var entries: [UInt64: Entry] = [:]
        /// Completed ids in completion order; `head` skips evicted ones.
        var order: [UInt64] = []
        var head = 0
        var watermark: UInt64 = 0
        var hasWatermark = false
        var lastUse: UInt64 = 0

        /// A window with room for `capacity` completed entries (plus the in-flight few)
        /// allocated at once, so a server's memory grows when a sender first appears and
        /// not in doubling steps for minutes afterwards (`heed bench soak`).
        init(reserving capacity: Int) {
            entries.reserveCapacity(capacity + 64)
            order.reserveCapacity(2 * capacity + 1)
        }
    }

    private struct State {
        var windows: [UInt64: Window] = [:]
        var tick: UInt64 = 0
        var stats = Statistics()
    }

    /// Replies remembered per sender.
    public let capacityPerSender: Int
    /// Senders remembered.
    public let maxSenders: Int
    private let state = Locked(State())

    /// Creates a cache; `capacityPerSender` should far exceed a client's requests in flight.
    public init(capacityPerSender: Int = 4096, maxSenders: Int = 1024) {
        precondition(capacityPerSender >= 1 && maxSenders >= 1, "DedupCache needs room for one entry")
        self.capacityPerSender = capacityPerSender
        self.maxSenders = maxSenders
    }

    /// Counters so far.
    public var statistics: Statistics { state.withLock { s in var st = s.stats; st.senders = s.windows.count; return st } }

    /// Entry-table and order-list capacities of `sender`'s window (nil when unknown): lets
    /// tests check that a window is allocated once, when its sender first appears.
    func windowCapacities(sender: UInt64) -> (entries: Int, order: Int)? {
        state.withLock { s in s.windows[sender].map { ($0.entries.capacity, $0.order.capacity) } }
    }

    /// Runs `apply` for the first copy of `request` and returns its reply; returns the
    /// cached reply for a duplicate, or `nil` after parking a duplicate whose first copy
    /// is still running (its responder is answered later). An error thrown by `apply`
    /// becomes the cached `.error` reply, so retries see the same outcome.
    public func handle(_ request: Request, apply: () throws -> Message) -> Message? {
        handle(sender: request.envelope.senderID, requestID: request.envelope.requestID, responder: request.responder, apply: apply)
    }

    /// `handle(_:apply:)` with the ids and responder given separately.
    ///
    /// With `acknowledgeFirst`, the first copy is answered with that message before `apply`
    /// runs (the handler then returns nil: the reply is already sent), so the sender does
    /// not wait for the work; duplicates arriving meanwhile are parked and get the same
    /// message once `apply` finished. An error thrown by `apply` then cannot reach the
    /// sender and is counted in `failedAfterAcknowledging`; callers validate first.
    public func handle(sender: UInt64, requestID: UInt64, responder: Responder, acknowledgeFirst early: Message? = nil,
                       apply: () throws -> Message) -> Message? {
        let decision = state.withLock { s -> Decision in
            s.tick &+= 1
            if s.windows[sender] == nil {
                makeRoom(&s)
                s.windows[sender] = Window(reserving: capacityPerSender)
            }
            // Mutated in place through the dictionary's `default:` accessor: copying the
            // window out and back would copy its entry table (thousands of entries) twice
            // per push, which used to cost more than applying the push itself.
            return Self.decide(&s.windows[sender, default: Window(reserving: 0)], stats: &s.stats, tick: s.tick,
                               requestID: requestID, responder: responder) { [capacityPerSender] in
                .error(ErrorReply(code: .protocolViolation, message: "request \(requestID) from sender \(sender) is older than the deduplication window (\(capacityPerSender) requests); not applied"))
            }
        }
        switch decision {
        case .answer(let reply): return reply
        case .park: return nil
        case .apply: break
        }
        if let early { responder.reply(early) }
        let reply: Message
        var failedLate = false
        do { reply = try apply() } catch {
            failedLate = early != nil
            reply = .error(ErrorReply(error))
        }
        let recorded = early ?? reply
        let parked = state.withLock { s -> [Responder] in
            s.stats.applied += 1
            if failedLate { s.stats.failedAfterAcknowledging += 1 }
            guard s.windows[sender] != nil else { return [] }  // sender evicted meanwhile
            return complete(&s.windows[sender, default: Window(reserving: 0)], requestID: requestID, reply: recorded)
        }
        for r in parked { r.reply(recorded) }
        return early == nil ? reply : nil
    }

    /// What to do with `requestID` given the sender's window `w` (mutated in place).
    private static func decide(_ w: inout Window, stats: inout Statistics, tick: UInt64, requestID: UInt64,
                               responder: Responder, stale: () -> Message) -> Decision {
        w.lastUse = tick
        switch w.entries[requestID] {
        case .done(let reply):
            stats.duplicates += 1
            return .answer(reply)
        case .inProgress(var parked):
            // Drop the entry's reference first so appending does not copy the array.
            w.entries[requestID] = .inProgress([])
            parked.append(responder)
            w.entries[requestID] = .inProgress(parked)
            stats.parked += 1
            return .park
        case nil:
            if w.hasWatermark && requestID <= w.watermark {
                stats.stale += 1
                return .answer(stale())
            }
            w.entries[requestID] = .inProgress([])
            return .apply
        }
    }

    /// Records `reply` for `requestID` in `w`, evicts beyond capacity, and returns the
    /// duplicates parked meanwhile.
    private func complete(_ w: inout Window, requestID: UInt64, reply: Message) -> [Responder] {
        var waiting: [Responder] = []
        if case .inProgress(let p) = w.entries[requestID] { waiting = p }
        w.entries[requestID] = .done(reply)
        w.order.append(requestID)
        evict(&w)
        return waiting
    }

    /// Drops the oldest completed entries beyond capacity, raising the watermark.
    private func evict(_ w: inout Window) {
        while w.order.count - w.head > capacityPerSender {
            let id = w.order[w.head]
            w.head += 1
            w.entries[id] = nil
            if !w.hasWatermark || id > w.watermark { w.watermark = id; w.hasWatermark = true }
        }
        if w.head > capacityPerSender {
            w.order.removeFirst(w.head)
            w.head = 0
        }
    }

    /// Forgets the least recently used sender if the table is full.
    private func makeRoom(_ s: inout State) {
        guard s.windows.count >= maxSenders,
              let oldest = s.windows.min(by: { $0.value.lastUse < $1.value.lastUse })?.key else { return }
        s.windows[oldest] = nil
    }
}
