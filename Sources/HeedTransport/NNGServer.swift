import CNNG
import HeedCore

/// A REP listener with `concurrency` contexts, each an aio receive → handle → reply loop.
///
/// The handler runs on nng's threads. A message that fails to decode or authenticate is
/// answered with an `.error` reply and counted; the loop keeps serving.
public final class NNGServer: RequestServer, @unchecked Sendable {
    // @unchecked: socket and contexts are set once in init; mutable state is Locked.
    public let address: String
    private let core: ServerCore
    private let socket: nng_socket
    private let contexts: [NNGServerContext]
    private let closed = Locked(false)

    /// Listens on `address` (`tcp://host:port`, port 0 picks a free one; `ipc://path`).
    public init(address: String, options: ServerOptions = ServerOptions(), handler: @escaping RequestHandler) throws {
        try NNG.validate(address)
        precondition(options.concurrency >= 1, "a server needs at least one context")
        core = try ServerCore(options: options, handler: handler)
        var sock = nng_socket()
        try NNG.check(nng_rep0_open(&sock), "nng_rep0_open for \(address)")
        socket = sock
        var built: [NNGServerContext] = []
        do {
            try NNG.configure(sock, maxMessageSize: options.maxMessageSize, address: address)
            var listener = nng_listener()
            try NNG.check(nng_listen(sock, address, &listener, 0), "nng_listen \(address)")
            self.address = try Self.boundAddress(address, listener)
            for _ in 0..<options.concurrency {
                built.append(try NNGServerContext(socket: sock, core: core, address: address))
            }
        } catch {
            for c in built { c.stop() }
            nng_close(sock)
            throw error
        }
        contexts = built
        for c in built { c.receive() }
    }

    deinit { close() }

    public var counters: ServerCounters { contexts.reduce(ServerCounters()) { $0 + $1.counters } }

    public func close() {
        guard closed.withLock({ c in defer { c = true }; return !c }) else { return }
        for c in contexts { c.stop() }
        NNG.close(socket)
    }

    /// `address` with a `tcp://…:0` port replaced by the port the listener bound.
    private static func boundAddress(_ address: String, _ listener: nng_listener) throws -> String {
        guard address.hasPrefix("tcp://"), address.hasSuffix(":0") else { return address }
        var port: Int32 = 0
        try NNG.check(nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port), "bound port of \(address)")
        return String(address.dropLast(1)) + String(port)
    }
}

/// One REP context: receive, hand to the core, send the reply (possibly later), repeat.
final class NNGServerContext: @unchecked Sendable {
    // @unchecked: `ctx`/`aio` are set once in init; the phase is Locked.
    private enum Phase { case idle, receiving, handling, sending, stopped }

    private struct State {
        var phase = Phase.idle
        /// The last pipe seen and its address: pipes are long-lived, so this saves
        /// asking nng (and taking its locks) for every request.
        var pipeID: UInt32 = 0
        var pipeAddress = ""
    }

    private let ctx: nng_ctx
    private var aio: OpaquePointer?
    private let core: ServerCore
    private let address: String
    private let state = Locked(State())
    /// This context's share of the server counters.
    let tally = Locked(ServerCounters())

    /// This context's counters.
    var counters: ServerCounters { tally.withLock { $0 } }

    init(socket: nng_socket, core: ServerCore, address: String) throws {
        self.core = core
        self.address = address
        var c = nng_ctx()
        try NNG.check(nng_ctx_open(&c, socket), "nng_ctx_open for \(address)")
        ctx = c
        var a: OpaquePointer?
        let rc = nng_aio_alloc(&a, nngServerCallback, Unmanaged.passUnretained(self).toOpaque())
        if rc != 0 {
            nng_ctx_close(c)
            throw NNG.error(rc, "nng_aio_alloc for \(address)")
        }
        aio = a
    }

    deinit {
        if let aio { nng_aio_free(aio) }
    }

    /// Starts receiving the next request.
    func receive() {
        state.withLock { s in
            guard s.phase != .stopped else { return }
            s.phase = .receiving
            nng_ctx_recv(ctx, aio)
        }
    }

    /// Called by nng when a receive or a send finished.
    fileprivate func completed() {
        let rc = nng_aio_result(aio)
        let current = state.withLock { $0.phase }
        switch current {
        case .receiving:
            guard rc == 0 else {
                // Closed or stopped: the context is done. Anything else is transient.
                if rc == Int32(NNG_ECLOSED.rawValue) || rc == Int32(NNG_ECANCELED.rawValue) { return }
                receive()
                return
            }
            let msg = NNGMessage(pointer: nng_aio_get_msg(aio)!)
            // The message is ours now: clear the aio's pointer so no later path (a stop
            // while the next receive is pending) frees it a second time.
            nng_aio_set_msg(aio, nil)
            let pipe = nng_msg_get_pipe(msg.pointer).id
            let cached = state.withLock { s -> String? in
                if s.phase == .receiving { s.phase = .handling }
                return s.pipeID == pipe ? s.pipeAddress : nil
            }
            let peer = cached ?? NNG.remoteAddress(of: msg.pointer)
            if cached == nil { state.withLock { $0.pipeID = pipe; $0.pipeAddress = peer } }
            core.handle(msg.body, peerAddress: peer, tally: tally) { [self] head, payloadSize, write in
                self.reply(head, payloadSize: payloadSize, write: write)
            }
            msg.free()
        case .sending:
            if rc != 0 {
                if let m = nng_aio_get_msg(aio) { nng_msg_free(m) }
                tally.withLock { $0.sendFailures += 1 }
            }
            receive()
        case .stopped:
            // The aio was aborted mid-operation; a message still attached is ours to free.
            if let m = nng_aio_get_msg(aio) {
                nng_aio_set_msg(aio, nil)
                nng_msg_free(m)
            }
        case .idle, .handling:
            return
        }
    }

    /// Sends the reply to the request this context holds (from any thread, once), encoded
    /// by `write` straight into a message of exactly the right size.
    private func reply(_ head: ReplyHead, payloadSize: Int, write: (inout WireWriter) -> Void) {
        let codec = core.codec
        let size = codec.encodedSize(payloadSize: payloadSize)
        let msg: NNGMessage
        do {
            msg = try NNGMessage.allocate(size, for: "\(head.kind) reply on \(address)")
            do {
                // Safe: the body is exactly `size` bytes, which is codec.encodedSize(payloadSize:).
                try codec.encode(kind: head.kind, senderID: head.senderID, requestID: head.requestID, payloadSize: payloadSize,
                                 into: UnsafeMutableRawBufferPointer(start: nng_msg_body(msg.pointer), count: size), writePayload: write)
            } catch {
                msg.free()
                throw error
            }
        } catch {
            // Only allocation can fail here (ServerCore checked the size); drop the
            // request so the client times out and retries, and serve the next one.
            tally.withLock { $0.sendFailures += 1 }
            receive()
            return
        }
        let started = state.withLock { s -> Bool in
            guard s.phase != .stopped else { return false }
            s.phase = .sending
            nng_aio_set_msg(aio, msg.pointer)
            nng_ctx_send(ctx, aio)
            return true
        }
        if started {
            tally.withLock { $0.replied += 1; $0.bytesSent += size }
        } else {
            msg.free()
        }
    }

    /// Stops the aio and closes the context.
    func stop() {
        state.withLock { $0.phase = .stopped }
        nng_aio_stop(aio)
        nng_ctx_close(ctx)
    }
}

private let nngServerCallback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    guard let arg else { return }
    Unmanaged<NNGServerContext>.fromOpaque(arg).takeUnretainedValue().completed()
}
