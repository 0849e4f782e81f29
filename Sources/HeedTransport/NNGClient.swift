import CNNG
import Dispatch
import HeedCore

/// A request/reply client to one peer over an nng REQ socket.
///
/// Keeps up to `maxInFlight` requests in flight, one nng context + aio each. The aio
/// callbacks resume Swift continuations, so no cooperative-pool thread ever blocks on
/// the network. nng's own resend timer is off: retries are ours (`RetryPolicy`), with
/// the same request id, so the server can deduplicate them.
public final class NNGClient: RequestClient, @unchecked Sendable {
    // @unchecked: the socket id is immutable and slots/pool/state are Locked.
    public let senderID: UInt64
    public let peerAddress: String
    public let retryPolicy: RetryPolicy
    private let codec: WireCodec
    private let socket: nng_socket
    private let slots: [NNGClientSlot]
    private let pool: SlotPool<NNGClientSlot>
    private let nextRequestID = Locked<UInt64>(1)
    private let closed = Locked(false)

    /// Opens a REQ socket dialing `address` in the background (reconnecting as needed).
    public init(address: String, options: ClientOptions = ClientOptions()) throws {
        try NNG.validate(address)
        precondition(options.maxInFlight >= 1, "maxInFlight must be at least 1")
        codec = try WireCodec(secret: options.secret, maxMessageSize: options.maxMessageSize)
        senderID = options.senderID
        peerAddress = address
        retryPolicy = options.retry

        var sock = nng_socket()
        try NNG.check(nng_req0_open(&sock), "nng_req0_open for \(address)")
        socket = sock
        var built: [NNGClientSlot] = []
        do {
            try NNG.configure(sock, maxMessageSize: options.maxMessageSize, address: address)
            // Contexts copy the resend time when opened, so set it first.
            try NNG.check(nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, nng_duration(-1)), "disable nng resend for \(address)")
            try NNG.check(nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, NNG.milliseconds(options.reconnectMin)), "reconnect-time-min for \(address)")
            try NNG.check(nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, NNG.milliseconds(options.reconnectMax)), "reconnect-time-max for \(address)")
            for _ in 0..<options.maxInFlight {
                built.append(try NNGClientSlot(socket: sock, peer: address))
            }
            try NNG.check(nng_dial(sock, address, nil, Int32(NNG_FLAG_NONBLOCK)), "nng_dial \(address)")
        } catch {
            for slot in built { slot.stop() }
            nng_close(sock)
            throw error
        }
        slots = built
        pool = SlotPool(built)
    }

    deinit { close() }

    public func makeRequestID() -> UInt64 {
        nextRequestID.withLock { id in defer { id &+= 1 }; return id }
    }

    public func send(_ envelope: Envelope, timeout: Duration) async throws -> Envelope {
        let reply = try await exchange(envelope, timeout: timeout)
        defer { reply.free() }
        do {
            return try codec.decode(reply.body)
        } catch let e as HeedError {
            throw HeedError(e.code, "reply to \(label(envelope)): \(e.message)")
        }
    }

    /// Reads the rows straight from the reply message: the values are bound in place
    /// (the body is 4-aligned), so the only copy is whatever `body` makes.
    public func withPulledRows<R>(_ pull: PullRows, timeout: Duration, _ body: (PulledRows) throws -> R) async throws -> R {
        let envelope = Envelope(senderID: senderID, requestID: makeRequestID(), message: .pullRows(pull))
        let reply = try await retrying(retryPolicy) {
            let reply = try await exchange(envelope, timeout: timeout)
            if let stale = staleRefusal(reply, answering: envelope) {
                reply.free()
                throw stale
            }
            return reply
        }
        defer { reply.free() }
        let header: WireHeader
        var rows: (tableID: UInt32, dim: UInt32, rows: Int, values: UnsafeRawBufferPointer)?
        let payload: UnsafeRawBufferPointer
        do {
            (header, payload) = try codec.open(reply.body)
            if header.kind == .rowsReply {
                var r = WireReader(payload, what: MessageKind.rowsReply.description)
                rows = try Message.readRowsReplyFields(&r)
                try r.expectEnd()
            }
        } catch let e as HeedError {
            throw HeedError(e.code, "reply to \(label(envelope)): \(e.message)")
        }
        try checkIDs(of: header.senderID, header.requestID, answering: envelope)
        switch header.kind {
        case .rowsReply:
            // Safe to unwrap: set above for every rowsReply.
            let f = rows!
            try check(rows: f.rows, of: f.tableID, answering: pull)
            return try WireReader.withFloats(f.values) { values in
                Result { try body(PulledRows(tableID: f.tableID, dim: Int(f.dim), values: values)) }
            }.get()
        case .error:
            let decoded = try WireCodec.decodePayload(header, payload)
            guard case .error(let e) = decoded.message else { throw HeedError(.internalError, "error reply decoded as \(decoded.message.kind)") }
            throw refusal(e, of: envelope)
        default:
            throw HeedError(.protocolViolation, "\(peerAddress) answered a pullRows request with \(header.kind)")
        }
    }

    /// One attempt: encodes `envelope`, sends it on a free slot and returns the reply
    /// message (the caller frees it).
    private func exchange(_ envelope: Envelope, timeout: Duration) async throws -> NNGMessage {
        let label = label(envelope)
        let size = codec.encodedSize(envelope)
        let slot = try await pool.acquire(for: label.description)
        defer { pool.release(slot) }
        let request = try NNGMessage.encoding(envelope, with: codec, size: size, for: label.description)
        return try await slot.exchange(request, deadline: .now + timeout, timeout: timeout, label: label)
    }

    /// The error to retry with if `reply` is an authenticated `stale` refusal (the server's
    /// replay window found the attempt too old); nil for every other reply. Reads the kind
    /// from the header first, so ordinary replies are not authenticated twice.
    private func staleRefusal(_ reply: NNGMessage, answering envelope: Envelope) -> HeedError? {
        let body = reply.body
        guard body.count >= WireCodec.headerSize,
              UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) == MessageKind.error.rawValue,
              let opened = try? codec.open(body),
              case .error(let e)? = try? WireCodec.decodePayload(opened.0, opened.payload).message,
              e.code == .stale else { return nil }
        return refusal(e, of: envelope)
    }

    private func label(_ envelope: Envelope) -> RequestLabel {
        RequestLabel(kind: envelope.message.kind.description, requestID: envelope.requestID, peer: peerAddress)
    }

    /// Sends raw bytes and returns the raw reply, bypassing the codec (tests send
    /// malformed input with it).
    func exchangeRaw(_ bytes: [UInt8], timeout: Duration) async throws -> [UInt8] {
        let label = RequestLabel(kind: "raw", requestID: 0, peer: peerAddress)
        let slot = try await pool.acquire(for: label.description)
        defer { pool.release(slot) }
        let request = try NNGMessage.allocate(bytes.count, for: label.description)
        bytes.withUnsafeBytes { src in
            // Safe: the body was allocated with exactly bytes.count bytes.
            if let from = src.baseAddress { nng_msg_body(request.pointer).copyMemory(from: from, byteCount: src.count) }
        }
        let reply = try await slot.exchange(request, deadline: .now + timeout, timeout: timeout, label: label)
        defer { reply.free() }
        return Array(reply.body)
    }

    /// Tasks that prefer this executor continue on the nng thread that completed their
    /// request (see `NNGCompletionExecutor`).
    @available(macOS 15.0, *)
    public var completionExecutor: (any TaskExecutor)? { NNGCompletionExecutor.shared }

    public func close() {
        guard closed.withLock({ c in defer { c = true }; return !c }) else { return }
        pool.close(reason: "client for \(peerAddress) closed")
        let slots = slots, socketID = socket.id
        let finish: @Sendable () -> Void = {
            for slot in slots { slot.stop() }
            NNG.close(nng_socket(id: socketID))
        }
        // On an nng callback thread (a task continuing there via NNGCompletionExecutor),
        // nng_aio_stop would wait for the very callback it runs in: stop from elsewhere.
        if CallbackThread.isActive { DispatchQueue.global().async(execute: finish) } else { finish() }
    }
}

/// One nng context + aio: a single request at a time, driven by aio callbacks.
final class NNGClientSlot: @unchecked Sendable {
    // @unchecked: `ctx` and `aio` are set once in init; everything else is in `state`.
    private enum Phase { case idle, sending, receiving }

    private struct State {
        var phase = Phase.idle
        var operation: UInt64 = 0
        var cancelledOperation: UInt64 = 0
        var stopped = false
        var continuation: UnsafeContinuation<NNGMessage, any Error>?
        var deadline = ContinuousClock.now
        var label = RequestLabel(kind: "", requestID: 0, peer: "")
        var timeout = Duration.zero
    }

    private let ctx: nng_ctx
    private var aio: OpaquePointer?
    private let state = Locked(State())

    /// Opens a context on `socket` and its aio.
    init(socket: nng_socket, peer: String) throws {
        var c = nng_ctx()
        try NNG.check(nng_ctx_open(&c, socket), "nng_ctx_open for \(peer)")
        ctx = c
        var a: OpaquePointer?
        let rc = nng_aio_alloc(&a, nngClientCallback, Unmanaged.passUnretained(self).toOpaque())
        if rc != 0 {
            nng_ctx_close(c)
            throw NNG.error(rc, "nng_aio_alloc for \(peer)")
        }
        aio = a
    }

    deinit {
        if let aio { nng_aio_free(aio) }
    }

    /// Sends `request` (ownership passes to the slot) and awaits the reply message.
    func exchange(_ request: NNGMessage, deadline: ContinuousClock.Instant, timeout: Duration, label: RequestLabel) async throws -> NNGMessage {
        let op = state.withLock { s -> UInt64 in s.operation &+= 1; return s.operation }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<NNGMessage, any Error>) in
                state.withLock { s in
                    if s.stopped || s.cancelledOperation == op || Task.isCancelled {
                        request.free()
                        c.resume(throwing: HeedError(.cancelled, "\(label) cancelled"))
                        return
                    }
                    s.phase = .sending
                    s.continuation = c
                    s.deadline = deadline
                    s.label = label
                    s.timeout = timeout
                    // The lock is held across the start so a cancel cannot slip in between;
                    // nng completes aios on its own threads, never inside these calls.
                    nng_aio_set_msg(aio, request.pointer)
                    nng_aio_set_timeout(aio, NNG.milliseconds(ContinuousClock.now.duration(to: deadline)))
                    nng_ctx_send(ctx, aio)
                }
            }
        } onCancel: {
            state.withLock { s in
                guard s.operation == op else { return }
                s.cancelledOperation = op
                if s.phase != .idle { nng_aio_cancel(aio) }
            }
        }
    }

    /// Called by nng when the current send or receive finished.
    fileprivate func completed() {
        var finished: (UnsafeContinuation<NNGMessage, any Error>, Result<NNGMessage, any Error>)?
        state.withLock { s in
            let rc = nng_aio_result(aio)
            switch s.phase {
            case .idle:
                return
            case .sending:
                if rc != 0 {
                    // A failed send hands the message back to us.
                    if let msg = nng_aio_get_msg(aio) { nng_msg_free(msg) }
                    finished = (s.continuation!, .failure(failure(rc, s)))
                } else {
                    let left = ContinuousClock.now.duration(to: s.deadline)
                    if left <= .zero {
                        finished = (s.continuation!, .failure(HeedError(.timeout, "\(s.label) timed out after \(s.timeout)")))
                    } else {
                        s.phase = .receiving
                        nng_aio_set_timeout(aio, NNG.milliseconds(left))
                        nng_ctx_recv(ctx, aio)
                        return
                    }
                }
            case .receiving:
                if rc != 0 {
                    finished = (s.continuation!, .failure(failure(rc, s)))
                } else {
                    finished = (s.continuation!, .success(NNGMessage(pointer: nng_aio_get_msg(aio)!)))
                }
            }
            s.phase = .idle
            s.continuation = nil
        }
        if let (c, result) = finished { CallbackThread.resumeCapturing { c.resume(with: result) } }
    }

    private func failure(_ rc: Int32, _ s: State) -> HeedError {
        if rc == Int32(NNG_ETIMEDOUT.rawValue) {
            return HeedError(.timeout, "\(s.label) timed out after \(s.timeout)")
        }
        if rc == Int32(NNG_ECANCELED.rawValue) && s.cancelledOperation == s.operation {
            return HeedError(.cancelled, "\(s.label) cancelled")
        }
        return NNG.error(rc, s.label.description)
    }

    /// Stops the aio (failing a request in flight with `.cancelled`) and closes the context.
    func stop() {
        state.withLock { $0.stopped = true }
        // nng_aio_stop waits for a running callback, so it is called without the lock.
        nng_aio_stop(aio)
        nng_ctx_close(ctx)
    }
}

/// The aio callback: a plain C function, the slot comes back through the `void*`.
private let nngClientCallback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    guard let arg else { return }
    Unmanaged<NNGClientSlot>.fromOpaque(arg).takeUnretainedValue().completed()
}

/// Names a request in error messages; formatted only when an error is raised.
struct RequestLabel: CustomStringConvertible, Sendable {
    let kind: String
    let requestID: UInt64
    let peer: String

    var description: String { "\(kind) request \(requestID) to \(peer)" }
}
