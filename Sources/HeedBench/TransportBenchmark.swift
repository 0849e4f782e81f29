import CNNG
import HeedCore
import HeedTransport

/// Messages per second and bytes per second of a request/reply loop.
public struct ThroughputSample: Sendable, Equatable {
    /// Replies received in the measured window.
    public var requests: Int
    /// Length of the measured window.
    public var seconds: Double
    /// Bytes of one request on the wire.
    public var requestBytes: Int
    /// Bytes of one reply on the wire.
    public var replyBytes: Int

    /// Completed requests per second.
    public var messagesPerSecond: Double { Double(requests) / seconds }
    /// Reply bytes per second (the direction rows travel in a pull).
    public var replyBytesPerSecond: Double { messagesPerSecond * Double(replyBytes) }
}

/// Pull- or push-rows goodput through the Heed client/server: useful row bytes, after
/// encoding, transfer, authentication (if on) and decoding.
public struct GoodputSample: Sendable, Equatable {
    /// Message-level throughput of the same run.
    public var transfer: ThroughputSample
    /// Rows per request (pushed) or reply (pulled).
    public var rowsPerRequest: Int
    /// Row width.
    public var dim: Int

    /// Rows delivered per second.
    public var rowsPerSecond: Double { transfer.messagesPerSecond * Double(rowsPerRequest) }
    /// Float32 row bytes delivered per second (keys, headers and tags not counted).
    public var valueBytesPerSecond: Double { rowsPerSecond * Double(dim * 4) }
}

/// Which way rows travel in a goodput measurement.
public enum RowTransfer: String, Sendable, CaseIterable {
    /// Rows in the reply (a worker pulling).
    case pull
    /// Rows in the request (a worker pushing gradients).
    case push
}

/// Goodput against raw nng at the same message sizes, measured back to back.
public struct TransportComparison: Sendable, Equatable {
    /// Pull or push.
    public var operation: RowTransfer
    /// Raw nng REQ/REP with the same request and reply sizes (the median round).
    public var raw: ThroughputSample
    /// The Heed client/server moving rows (the median round).
    public var goodput: GoodputSample
    /// The ratio of every round, in run order; rounds alternate raw and Heed so load
    /// from other processes hits both alike.
    public var roundRatios: [Double]

    /// Raw nng's bytes/s in the direction the rows travel.
    public var rawBytesPerSecond: Double {
        operation == .pull ? raw.replyBytesPerSecond : raw.messagesPerSecond * Double(raw.requestBytes)
    }
    /// Row bytes/s delivered by Heed ÷ raw nng's bytes/s the same way (target ≥ 0.80).
    public var ratio: Double { goodput.valueBytesPerSecond / rawBytesPerSecond }
}

/// Library-level transport benchmarks; `heed bench cluster` prints these.
///
/// Both sides run in this process (an in-process server), so the machine's cores are
/// shared by client, server and nng's threads in both measurements alike.
public enum TransportBenchmark {
    /// Raw nng REQ/REP: `inFlight` contexts each loop send(`requestSize` bytes) →
    /// receive(`replySize` bytes) entirely in aio callbacks, with no encoding. The server
    /// fills each reply from a prepared buffer (one memcpy, as an echo server's bytes
    /// are written once by someone); the client drops replies unread.
    public static func rawRequestReply(address: String, requestSize: Int, replySize: Int, inFlight: Int,
                                       duration: Duration, warmup: Duration = .milliseconds(300)) async throws -> ThroughputSample {
        let limit = max(requestSize, replySize) + 4096
        let server = try RawReplyServer(address: address, replySize: replySize, contexts: inFlight, maxMessageSize: limit)
        defer { server.stop() }
        let client = try RawLoadClient(address: server.address, requestSize: requestSize, contexts: inFlight, maxMessageSize: limit)
        defer { client.stop() }
        client.start()
        let (count, seconds) = try await measure(warmup: warmup, duration: duration) { client.completed }
        // Let requests in flight finish so sockets close idle (see NNG.close).
        try await client.drain()
        if let failure = client.failure { throw failure }
        return ThroughputSample(requests: count, seconds: seconds, requestBytes: requestSize, replyBytes: replySize)
    }

    /// Pulls of `keysPerRequest` keys answered with (keys × dim) Float32 rows through
    /// `NNGClient`/`NNGServer`, `inFlight` requests at a time. With `inlineCompletions`
    /// the request loops prefer `NNGCompletionExecutor` (as the worker's fetch tasks do);
    /// false measures the plain cooperative-pool hand-off.
    public static func pullRowsGoodput(address: String, keysPerRequest: Int, dim: Int, inFlight: Int, duration: Duration,
                                       warmup: Duration = .milliseconds(300), secret: [UInt8]? = nil,
                                       inlineCompletions: Bool = true) async throws -> GoodputSample {
        let pull = pullRequest(keys: keysPerRequest)
        // Distinct values so a decoding mistake would show in the spot check below.
        let values = (0..<keysPerRequest * dim).map { Float($0 % 1000) * 0.001 }
        let reply = RowsReply(tableID: pull.tableID, dim: UInt32(dim), values: values)
        let size = sizes(keys: keysPerRequest, dim: dim, authenticated: secret != nil)
        let limit = max(size.request, size.reply) + 4096
        var options = ServerOptions(concurrency: inFlight, maxMessageSize: limit, secret: secret)
        // Pulls are served as a ParameterServer serves them: validated in place, the rows
        // written straight into the reply (here copied from `values`, as a table copies its rows).
        options.rowHandlers = RowRequestHandlers(
            pull: { _, _ in
                (dim, { keys, out in
                    values.withUnsafeBufferPointer { src in
                        let n = min(src.count, out.count)
                        // Safe: n elements fit in both buffers.
                        out.baseAddress!.update(from: src.baseAddress!, count: n)
                        out.baseAddress!.advanced(by: n).update(repeating: 0, count: out.count - n)
                    }
                })
            },
            push: { _, _, _, _ in throw HeedError(.unsupported, "benchmark server serves pulls only") })
        let server = try NNGServer(address: address, options: options) { request in
            guard case .pullRows(let p) = request.message, p.keys.count == keysPerRequest else {
                throw HeedError(.invalidInput, "benchmark server expects pulls of \(keysPerRequest) keys")
            }
            return .rowsReply(reply)
        }
        defer { server.close() }
        let client = try NNGClient(address: server.address, options: ClientOptions(maxInFlight: inFlight, maxMessageSize: limit, secret: secret, retry: .none))
        defer { client.close() }

        let count = try await runLoops(inFlight: inFlight, client: client, inlineCompletions: inlineCompletions,
                                       warmup: warmup, duration: duration) {
            // Read in place, as a worker scattering rows into its batch does.
            let intact = try await client.withPulledRows(pull, timeout: .seconds(30)) { rows in
                rows.values.count == values.count && rows.values.last == values.last
            }
            guard intact else { throw HeedError(.corrupt, "benchmark reply rows differ from what the server sent") }
        }
        return GoodputSample(transfer: ThroughputSample(requests: count.requests, seconds: count.seconds, requestBytes: size.request, replyBytes: size.reply),
                             rowsPerRequest: keysPerRequest, dim: dim)
    }

    /// Pushes of `keysPerRequest` keys with (keys × dim) Float32 gradients through
    /// `NNGClient`/`NNGServer`, `inFlight` at a time, answered with an ack. The server
    /// validates each push in place as a `ParameterServer` does and reads its last
    /// gradient (so the bytes are really delivered), but applies nothing: the table's
    /// share is what the server section of `heed bench cluster` adds.
    public static func pushRowsGoodput(address: String, keysPerRequest: Int, dim: Int, inFlight: Int, duration: Duration,
                                       warmup: Duration = .milliseconds(300), secret: [UInt8]? = nil) async throws -> GoodputSample {
        let push = pushRequest(keys: keysPerRequest, dim: dim)
        let last = push.grads.last
        let size = pushSizes(keys: keysPerRequest, dim: dim, authenticated: secret != nil)
        let limit = max(size.request, size.reply) + 4096
        var options = ServerOptions(concurrency: inFlight, maxMessageSize: limit, secret: secret)
        options.rowHandlers = RowRequestHandlers(
            pull: { _, _ in throw HeedError(.unsupported, "benchmark server serves pushes only") },
            push: { view, _, _, _ in
                guard view.keys.count == keysPerRequest, view.grads.last == last else {
                    throw HeedError(.corrupt, "benchmark push arrived with \(view.keys.count) keys or altered gradients")
                }
                return .ack(Ack(value: UInt64(view.keys.count)))
            })
        let server = try NNGServer(address: address, options: options) { _ in
            throw HeedError(.invalidInput, "benchmark server expects pushes")
        }
        defer { server.close() }
        let client = try NNGClient(address: server.address, options: ClientOptions(maxInFlight: inFlight, maxMessageSize: limit, secret: secret, retry: .none))
        defer { client.close() }
        let count = try await runLoops(inFlight: inFlight, client: client, warmup: warmup, duration: duration) {
            let ack = try await client.pushRows(push, timeout: .seconds(30))
            guard ack.value == UInt64(keysPerRequest) else { throw HeedError(.corrupt, "benchmark push acknowledged \(ack.value) rows") }
        }
        return GoodputSample(transfer: ThroughputSample(requests: count.requests, seconds: count.seconds, requestBytes: size.request, replyBytes: size.reply),
                             rowsPerRequest: keysPerRequest, dim: dim)
    }

    /// Runs `inFlight` loops of `request` and counts completions over `duration` after
    /// `warmup`. With `inlineCompletions` the loops prefer the client's completion executor
    /// (continuing where the reply arrived, as a worker's fetch tasks do).
    private static func runLoops(inFlight: Int, client: NNGClient, inlineCompletions: Bool = true, warmup: Duration, duration: Duration,
                                 _ request: @escaping @Sendable () async throws -> Void) async throws -> (requests: Int, seconds: Double) {
        let completed = Locked(0)
        let failure = Locked<(any Error)?>(nil)
        let running = Locked(true)
        let loop: @Sendable () async -> Void = {
            while running.withLock({ $0 }) {
                do {
                    try await request()
                    completed.withLock { $0 += 1 }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    running.withLock { $0 = false }
                }
            }
        }
        let workers = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<inFlight {
                    if #available(macOS 15.0, *), inlineCompletions {
                        group.addTask(executorPreference: client.completionExecutor, operation: loop)
                    } else {
                        group.addTask(operation: loop)
                    }
                }
            }
        }
        let (count, seconds) = try await measure(warmup: warmup, duration: duration) { completed.withLock { $0 } }
        running.withLock { $0 = false }
        await workers.value
        if let e = failure.withLock({ $0 }) { throw e }
        return (count, seconds)
    }

    /// Raw nng and Heed pull- or push-rows goodput at the same request/reply sizes:
    /// `rounds` back-to-back pairs of `duration` each; reports the pair with the median
    /// ratio. `address(round, isRaw)` gives each run its own address (`tcp://127.0.0.1:0` works).
    public static func compare(_ operation: RowTransfer = .pull, keysPerRequest: Int, dim: Int = 64, inFlight: Int = 8,
                               duration: Duration = .seconds(1), rounds: Int = 3, secret: [UInt8]? = nil,
                               address: (_ round: Int, _ isRaw: Bool) -> String) async throws -> TransportComparison {
        precondition(rounds >= 1, "compare needs at least one round")
        let size = operation == .pull ? sizes(keys: keysPerRequest, dim: dim, authenticated: secret != nil)
                                      : pushSizes(keys: keysPerRequest, dim: dim, authenticated: secret != nil)
        var pairs: [TransportComparison] = []
        for round in 0..<rounds {
            let raw = try await rawRequestReply(address: address(round, true), requestSize: size.request, replySize: size.reply,
                                                inFlight: inFlight, duration: duration)
            let goodput = operation == .pull
                ? try await pullRowsGoodput(address: address(round, false), keysPerRequest: keysPerRequest, dim: dim,
                                            inFlight: inFlight, duration: duration, secret: secret)
                : try await pushRowsGoodput(address: address(round, false), keysPerRequest: keysPerRequest, dim: dim,
                                            inFlight: inFlight, duration: duration, secret: secret)
            pairs.append(TransportComparison(operation: operation, raw: raw, goodput: goodput, roundRatios: []))
        }
        var median = pairs.sorted { $0.ratio < $1.ratio }[pairs.count / 2]
        median.roundRatios = pairs.map(\.ratio)
        return median
    }

    /// Encoded sizes of a pull of `keys` keys and its (keys × dim) reply.
    public static func sizes(keys: Int, dim: Int, authenticated: Bool = false) -> (request: Int, reply: Int) {
        let tag = authenticated ? WireCodec.trailerSize : 0
        let request = WireCodec.headerSize + Message.pullRows(pullRequest(keys: keys)).payloadSize + tag
        let reply = WireCodec.headerSize + 16 + 4 * keys * dim + tag
        return (request, reply)
    }

    private static func pullRequest(keys: Int) -> PullRows {
        PullRows(tableID: 1, keys: (0..<keys).map { UInt64($0) &* 0x9E37_79B9 &+ 11 })
    }

    /// Encoded sizes of a push of `keys` keys × dim gradients and its ack.
    public static func pushSizes(keys: Int, dim: Int, authenticated: Bool = false) -> (request: Int, reply: Int) {
        let tag = authenticated ? WireCodec.trailerSize : 0
        let request = WireCodec.headerSize + Message.pushRows(pushRequest(keys: keys, dim: dim)).payloadSize + tag
        let reply = WireCodec.headerSize + Message.ack(Ack(value: UInt64(keys))).payloadSize + tag
        return (request, reply)
    }

    private static func pushRequest(keys: Int, dim: Int) -> PushRows {
        // Distinct values, so a push that arrived altered would fail the server's spot check.
        PushRows(tableID: 1, dim: UInt32(dim), keys: pullRequest(keys: keys).keys.sorted(),
                 grads: (0..<keys * dim).map { Float($0 % 1000) * 0.001 })
    }

    /// Sleeps through `warmup`, then returns the growth of `counter` over `duration` and
    /// the measured seconds.
    private static func measure(warmup: Duration, duration: Duration, counter: () -> Int) async throws -> (Int, Double) {
        try await Task.sleep(for: warmup)
        let clock = ContinuousClock()
        let c0 = counter(), t0 = clock.now
        try await Task.sleep(for: duration)
        let c1 = counter(), t1 = clock.now
        let elapsed = t0.duration(to: t1)
        return (c1 - c0, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}

/// REP contexts answering every request with a fresh `replySize`-byte message.
final class RawReplyServer: @unchecked Sendable {
    // @unchecked: socket/loops are set once; each loop's state is touched only by its
    // own aio callback chain.
    let address: String
    private let socket: nng_socket
    private var loops: [RawLoop] = []

    init(address: String, replySize: Int, contexts: Int, maxMessageSize: Int) throws {
        try NNG.validate(address)
        var sock = nng_socket()
        try NNG.check(nng_rep0_open(&sock), "nng_rep0_open for \(address)")
        socket = sock
        do {
            try NNG.configure(sock, maxMessageSize: maxMessageSize, address: address)
            var listener = nng_listener()
            try NNG.check(nng_listen(sock, address, &listener, 0), "nng_listen \(address)")
            if address.hasPrefix("tcp://"), address.hasSuffix(":0") {
                var port: Int32 = 0
                try NNG.check(nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port), "bound port of \(address)")
                self.address = String(address.dropLast(1)) + String(port)
            } else {
                self.address = address
            }
            let payload = (0..<replySize).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for _ in 0..<contexts { loops.append(try RawLoop(socket: sock, role: .replier(payload))) }
        } catch {
            for l in loops { l.stop() }
            nng_close(sock)
            throw error
        }
        for l in loops { l.start() }
    }

    func stop() {
        for l in loops { l.stop() }
        NNG.close(socket)
    }
}

/// REQ contexts sending `requestSize`-byte requests back to back.
final class RawLoadClient: @unchecked Sendable {
    // @unchecked: as RawReplyServer.
    private let socket: nng_socket
    private var loops: [RawLoop] = []

    init(address: String, requestSize: Int, contexts: Int, maxMessageSize: Int) throws {
        var sock = nng_socket()
        try NNG.check(nng_req0_open(&sock), "nng_req0_open for \(address)")
        socket = sock
        do {
            try NNG.configure(sock, maxMessageSize: maxMessageSize, address: address)
            try NNG.check(nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, nng_duration(-1)), "disable nng resend for \(address)")
            for _ in 0..<contexts { loops.append(try RawLoop(socket: sock, role: .requester(requestSize))) }
            try NNG.check(nng_dial(sock, address, nil, Int32(NNG_FLAG_NONBLOCK)), "nng_dial \(address)")
        } catch {
            for l in loops { l.stop() }
            nng_close(sock)
            throw error
        }
    }

    func start() { for l in loops { l.start() } }

    /// Replies received so far.
    var completed: Int { loops.reduce(0) { $0 + $1.completed } }

    /// The first error any loop hit.
    var failure: HeedError? { loops.lazy.compactMap(\.failure).first }

    /// Stops issuing requests and waits (up to 10 s) for those in flight to finish.
    func drain() async throws {
        for l in loops { l.drain() }
        for _ in 0..<10_000 where !loops.allSatisfy(\.isIdle) {
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func stop() {
        for l in loops { l.stop() }
        NNG.close(socket)
    }
}

/// One context driving send/receive purely from aio callbacks.
final class RawLoop: @unchecked Sendable {
    // @unchecked: `ctx`/`aio` are set once; counters and phase are Locked.
    enum Role { case requester(Int), replier([UInt8]) }
    private enum Phase { case idle, sending, receiving, stopped }
    private struct State {
        var phase = Phase.idle
        var draining = false
        var completed = 0
        var failure: HeedError?
    }

    private let role: Role
    private let ctx: nng_ctx
    private var aio: OpaquePointer?
    private let state = Locked(State())

    init(socket: nng_socket, role: Role) throws {
        self.role = role
        var c = nng_ctx()
        try NNG.check(nng_ctx_open(&c, socket), "nng_ctx_open")
        ctx = c
        var a: OpaquePointer?
        let rc = nng_aio_alloc(&a, rawLoopCallback, Unmanaged.passUnretained(self).toOpaque())
        if rc != 0 {
            nng_ctx_close(c)
            throw NNG.error(rc, "nng_aio_alloc")
        }
        aio = a
        nng_aio_set_timeout(a, nng_duration(30_000))
    }

    deinit { if let aio { nng_aio_free(aio) } }

    var completed: Int { state.withLock { $0.completed } }
    var failure: HeedError? { state.withLock { $0.failure } }
    /// No operation in flight (after `drain`, or after a failure).
    var isIdle: Bool { state.withLock { $0.phase == .idle || $0.phase == .stopped || $0.failure != nil } }

    func start() {
        switch role {
        case .requester(let size): send(size: size, from: nil)
        case .replier: receive()
        }
    }

    /// Requesters stop after their current request.
    func drain() { state.withLock { $0.draining = true } }

    private func send(size: Int, from payload: [UInt8]?) {
        var msg: OpaquePointer?
        let rc = nng_msg_alloc(&msg, size)
        if rc == 0, let payload, !payload.isEmpty {
            payload.withUnsafeBytes { src in
                // Safe: the body was allocated with payload.count bytes.
                nng_msg_body(msg).copyMemory(from: src.baseAddress!, byteCount: src.count)
            }
        }
        state.withLock { s in
            guard s.phase != .stopped else { if rc == 0 { nng_msg_free(msg) }; return }
            guard rc == 0 else { s.failure = NNG.error(rc, "nng_msg_alloc(\(size))"); return }
            s.phase = .sending
            nng_aio_set_msg(aio, msg)
            nng_ctx_send(ctx, aio)
        }
    }

    private func receive() {
        state.withLock { s in
            guard s.phase != .stopped else { return }
            s.phase = .receiving
            nng_ctx_recv(ctx, aio)
        }
    }

    fileprivate func aioFinished() {
        let rc = nng_aio_result(aio)
        let phase = state.withLock { $0.phase }
        guard phase != .stopped, phase != .idle else {
            if let m = nng_aio_get_msg(aio) { nng_aio_set_msg(aio, nil); nng_msg_free(m) }
            return
        }
        guard rc == 0 else {
            if phase == .sending, let m = nng_aio_get_msg(aio) { nng_msg_free(m) }
            state.withLock { if $0.failure == nil { $0.failure = NNG.error(rc, "raw benchmark \(phase == .sending ? "send" : "receive")") } }
            return
        }
        switch (role, phase) {
        case (.requester, .sending):
            receive()
        case (.requester(let size), .receiving):
            if let m = nng_aio_get_msg(aio) { nng_msg_free(m) }
            let draining = state.withLock { s -> Bool in
                s.completed += 1
                if s.draining { s.phase = .idle }
                return s.draining
            }
            if !draining { send(size: size, from: nil) }
        case (.replier(let payload), .receiving):
            if let m = nng_aio_get_msg(aio) { nng_msg_free(m) }
            send(size: payload.count, from: payload)
        case (.replier, .sending):
            state.withLock { $0.completed += 1 }
            receive()
        default:
            return
        }
    }

    func stop() {
        state.withLock { $0.phase = .stopped }
        nng_aio_stop(aio)
        nng_ctx_close(ctx)
    }
}

private let rawLoopCallback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    guard let arg else { return }
    Unmanaged<RawLoop>.fromOpaque(arg).takeUnretainedValue().aioFinished()
}
