import HeedCore

// Using the transport (a parameter server and a worker):
//
//     let transport: any Transport = NNGTransport()          // or InMemoryNetwork(faults: ...)
//     let pushes = DedupCache()
//     let server = try transport.listen(on: "tcp://0.0.0.0:7100", options: ServerOptions(secret: secret)) { request in
//         switch request.message {
//         case .pullRows(let pull): return .rowsReply(shard.rows(for: pull))      // runs on an nng thread
//         case .pushRows(let push): return pushes.handle(request) { .ack(Ack(value: shard.apply(push))) }
//         default: throw HeedError(.unsupported, "server does not serve \(request.message.kind)")
//         }
//     }
//     let client = try transport.connect(to: server.address, options: ClientOptions(secret: secret))
//     let rows = try await client.pullRows(PullRows(tableID: 1, keys: sortedUniqueKeys), timeout: .seconds(5))

/// Makes clients and servers; `NNGTransport` for real sockets, `InMemoryNetwork` for tests.
///
/// Roles take an `any Transport` so the same server, worker and coordinator code runs
/// over nng in production and over the fault-injecting in-memory network in tests.
public protocol Transport: Sendable {
    /// A client for the server at `address` (`tcp://host:port`, `ipc://path`). Connecting
    /// happens in the background: a server that is not up yet makes requests time out.
    func connect(to address: String, options: ClientOptions) throws -> any RequestClient

    /// Starts a server at `address` calling `handler` for every request.
    func listen(on address: String, options: ServerOptions, handler: @escaping RequestHandler) throws -> any RequestServer
}

extension Transport {
    /// A client with default options (random sender id, 8 in flight, standard retries).
    public func connect(to address: String) throws -> any RequestClient {
        try connect(to: address, options: ClientOptions())
    }

    /// A server with default options (16 contexts, 64 MiB limit, no secret).
    public func listen(on address: String, handler: @escaping RequestHandler) throws -> any RequestServer {
        try listen(on: address, options: ServerOptions(), handler: handler)
    }
}

/// Sends requests to one peer and awaits replies; several may be in flight at once.
public protocol RequestClient: AnyObject, Sendable {
    /// The sender id stamped on every request.
    var senderID: UInt64 { get }
    /// The peer's address, for error messages.
    var peerAddress: String { get }
    /// The policy `request(_:timeout:)` uses.
    var retryPolicy: RetryPolicy { get }
    /// A fresh request id (unique for this client).
    func makeRequestID() -> UInt64
    /// One attempt: sends `envelope` and returns the peer's reply envelope, without retry
    /// and without interpreting error replies. Throws `.timeout` if no reply arrives in time.
    func send(_ envelope: Envelope, timeout: Duration) async throws -> Envelope
    /// Stops the client; requests in flight fail with `.cancelled`.
    func close()
    /// An executor for tasks that mostly issue requests through this client and read
    /// the replies: with it as their preference they continue where the reply arrived,
    /// saving a thread hand-off per request. Nil (the default) means no such executor.
    @available(macOS 15.0, *)
    var completionExecutor: (any TaskExecutor)? { get }
    /// Reads rows like `pullRows(_:timeout:)` (same retries and checks) but hands `body`
    /// the values in place, valid only during the call, instead of copying them into an
    /// array: callers that scatter rows into their own buffer save a copy per reply.
    func withPulledRows<R>(_ pull: PullRows, timeout: Duration, _ body: (PulledRows) throws -> R) async throws -> R
}

extension RequestClient {
    @available(macOS 15.0, *)
    public var completionExecutor: (any TaskExecutor)? { nil }

    /// The copying fallback: `pullRows`, then `body` over the reply's array.
    public func withPulledRows<R>(_ pull: PullRows, timeout: Duration, _ body: (PulledRows) throws -> R) async throws -> R {
        let rows = try await pullRows(pull, timeout: timeout)
        return try rows.values.withUnsafeBufferPointer { try body(PulledRows(tableID: rows.tableID, dim: Int(rows.dim), values: $0)) }
    }
}

/// Receives requests and answers them through a `RequestHandler`.
public protocol RequestServer: AnyObject, Sendable {
    /// The address clients dial (for `tcp://host:0`, the port actually bound).
    var address: String { get }
    /// A snapshot of the request counters.
    var counters: ServerCounters { get }
    /// Stops listening; deferred replies sent afterwards are dropped.
    func close()
}

/// Answers one request, on a transport thread (so it must be thread-safe and must not
/// block: nng runs every socket of the process on a small fixed thread pool, four threads
/// here). Return the reply, or `nil` after keeping
/// `request.responder` to reply later (barriers, requests deduplicated while the first
/// copy is still being applied). A thrown error becomes an `.error` reply.
public typealias RequestHandler = @Sendable (Request) throws -> Message?

/// Where a request came from.
public struct PeerInfo: Sendable, Equatable {
    /// The sender id from the request header.
    public var senderID: UInt64
    /// The remote address as the transport sees it (`tcp://127.0.0.1:50312`, `ipc:///path`).
    public var address: String

    /// Creates peer info.
    public init(senderID: UInt64, address: String) {
        self.senderID = senderID
        self.address = address
    }
}

/// A decoded, authenticated request as a handler sees it.
public struct Request: Sendable {
    /// Header ids and message.
    public let envelope: Envelope
    /// Who sent it.
    public let peer: PeerInfo
    /// Sends the reply; used directly only by handlers that return `nil`.
    public let responder: Responder

    /// The request message.
    public var message: Message { envelope.message }

    /// Creates a request (transports and tests build these).
    public init(envelope: Envelope, peer: PeerInfo, responder: Responder) {
        self.envelope = envelope
        self.peer = peer
        self.responder = responder
    }
}

/// Delivers the one reply to a request, now or later, from any thread.
///
/// Only the first `reply` counts. A responder dropped without replying answers
/// with an `.internalError`, so a forgotten request never parks a server context forever.
public final class Responder: Sendable {
    private let sender: Locked<(@Sendable (Message) -> Void)?>

    /// Creates a responder that hands the reply message to `send` once.
    public init(_ send: @escaping @Sendable (Message) -> Void) {
        sender = Locked(send)
    }

    deinit {
        if let send = sender.withLock({ $0 }) {
            send(.error(ErrorReply(code: .internalError, message: "the handler dropped the request without replying")))
        }
    }

    /// Sends `message` as the reply; returns false (and sends nothing) if a reply was already sent.
    @discardableResult
    public func reply(_ message: Message) -> Bool {
        guard let send = sender.withLock({ s -> (@Sendable (Message) -> Void)? in defer { s = nil }; return s }) else { return false }
        send(message)
        return true
    }

    /// Replies with an error message describing `error`.
    @discardableResult
    public func fail(_ error: any Error) -> Bool { reply(.error(ErrorReply(error))) }

    /// Whether a reply was sent.
    public var hasReplied: Bool { sender.withLock { $0 == nil } }
}

/// What a server has seen; malformed and unauthenticated messages are counted, not fatal.
public struct ServerCounters: Sendable, Equatable {
    /// Messages received, valid or not.
    public var received = 0
    /// Replies handed to the transport (including error replies).
    public var replied = 0
    /// Messages that failed to decode (bad header, lengths, version, or a reply kind sent as request).
    public var malformed = 0
    /// Messages with a missing or wrong authentication tag.
    public var unauthenticated = 0
    /// Authenticated messages the replay window refused (seen before, or too old).
    public var replayed = 0
    /// Requests whose handler threw.
    public var handlerErrors = 0
    /// Replies the transport failed to send (peer gone).
    public var sendFailures = 0
    /// Bytes received in valid and invalid messages.
    public var bytesReceived = 0
    /// Bytes of replies sent.
    public var bytesSent = 0

    /// Creates zeroed counters.
    public init() {}
}

// MARK: - Requests with retry and typed replies

extension RequestClient {
    /// Sends `message` with a fresh request id and returns the reply message, retrying
    /// timeouts and lost connections per `retryPolicy` with the same id. An `.error`
    /// reply is thrown as a `HeedError` with the peer's code.
    public func request(_ message: Message, timeout: Duration) async throws -> Message {
        try await request(message, timeout: timeout, retry: retryPolicy)
    }

    /// Like `request(_:timeout:)` with an explicit retry policy.
    public func request(_ message: Message, timeout: Duration, retry: RetryPolicy) async throws -> Message {
        let envelope = Envelope(senderID: senderID, requestID: makeRequestID(), message: message)
        return try await request(envelope, timeout: timeout, retry: retry)
    }

    /// Sends a prepared envelope (its request id reused on every attempt) and returns the reply message.
    public func request(_ envelope: Envelope, timeout: Duration, retry: RetryPolicy) async throws -> Message {
        let reply = try await retrying(retry) {
            let reply = try await send(envelope, timeout: timeout)
            // A stale refusal is thrown inside the retry loop: the next attempt is fresh.
            if case .error(let e) = reply.message, e.code == .stale { throw refusal(e, of: envelope) }
            return reply
        }
        try checkIDs(of: reply.senderID, reply.requestID, answering: envelope)
        if case .error(let e) = reply.message { throw refusal(e, of: envelope) }
        return reply.message
    }

    /// Runs `attempt` until it succeeds, fails with an error `retry` does not retry, or
    /// runs out of attempts, pausing with doubling backoff in between.
    func retrying<T>(_ retry: RetryPolicy, _ attempt: () async throws -> T) async throws -> T {
        var tries = 1
        var pause = retry.backoff
        while true {
            do {
                return try await attempt()
            } catch let error as HeedError where tries < retry.attempts && retry.isRetryable(error) {
                tries += 1
                try await Task.sleep(for: pause)
                pause = min(pause * 2, retry.maxBackoff)
            }
        }
    }

    /// Throws unless a reply's ids echo `envelope`'s.
    func checkIDs(of senderID: UInt64, _ requestID: UInt64, answering envelope: Envelope) throws {
        guard senderID == envelope.senderID, requestID == envelope.requestID else {
            throw HeedError(.protocolViolation, "\(peerAddress) answered request \(envelope.requestID) with ids \(senderID)/\(requestID)")
        }
    }

    /// The error an `.error` reply to `envelope` is thrown as.
    func refusal(_ e: ErrorReply, of envelope: Envelope) -> HeedError {
        HeedError(e.code, "\(peerAddress) refused \(envelope.message.kind) request \(envelope.requestID): \(e.message)")
    }

    /// Reads rows; the reply has exactly `pull.keys.count` rows.
    public func pullRows(_ pull: PullRows, timeout: Duration) async throws -> RowsReply {
        let reply = try await request(.pullRows(pull), timeout: timeout)
        guard case .rowsReply(let rows) = reply else { throw unexpected(reply, for: .pullRows) }
        try check(rows: rows.rowCount, of: rows.tableID, answering: pull)
        return rows
    }

    /// Throws unless a rows reply has one row per key of `pull`'s table.
    func check(rows: Int, of tableID: UInt32, answering pull: PullRows) throws {
        guard tableID == pull.tableID, rows == pull.keys.count else {
            throw HeedError(.protocolViolation, "\(peerAddress) returned \(rows) rows of table \(tableID) for \(pull.keys.count) keys of table \(pull.tableID)")
        }
    }

    /// Pushes row gradients; returns the server's acknowledgement.
    public func pushRows(_ push: PushRows, timeout: Duration) async throws -> Ack {
        try await expectAck(.pushRows(push), timeout: timeout)
    }

    /// Reads dense tensors.
    public func pullDense(_ pull: PullDense, timeout: Duration) async throws -> DenseReply {
        let reply = try await request(.pullDense(pull), timeout: timeout)
        guard case .denseReply(let dense) = reply else { throw unexpected(reply, for: .pullDense) }
        return dense
    }

    /// Pushes dense gradients.
    public func pushDense(_ push: PushDense, timeout: Duration) async throws -> Ack {
        try await expectAck(.pushDense(push), timeout: timeout)
    }

    /// Registers with the coordinator.
    public func register(_ register: Register, timeout: Duration) async throws -> RegisterReply {
        let reply = try await request(.register(register), timeout: timeout)
        guard case .registerReply(let r) = reply else { throw unexpected(reply, for: .register) }
        return r
    }

    /// Sends a heartbeat to the coordinator.
    public func heartbeat(_ beat: Heartbeat, timeout: Duration) async throws -> HeartbeatAck {
        let reply = try await request(.heartbeat(beat), timeout: timeout)
        guard case .heartbeatAck(let ack) = reply else { throw unexpected(reply, for: .heartbeat) }
        return ack
    }

    /// Waits at a barrier; `timeout` must cover the slowest participant. A retry after a
    /// timeout arrives again with the same request id, so the coordinator answers every
    /// parked copy of an arrival when it releases the barrier.
    public func barrier(_ barrier: Barrier, timeout: Duration) async throws -> BarrierRelease {
        let reply = try await request(.barrier(barrier), timeout: timeout)
        guard case .barrierRelease(let release) = reply else { throw unexpected(reply, for: .barrier) }
        return release
    }

    /// Asks the peer to shut down.
    public func shutdown(_ shutdown: Shutdown, timeout: Duration) async throws -> Ack {
        try await expectAck(.shutdown(shutdown), timeout: timeout)
    }

    /// Sends a control command and returns the peer's control reply.
    public func control(_ command: Control, timeout: Duration) async throws -> Control {
        let reply = try await request(.control(command), timeout: timeout)
        guard case .controlReply(let r) = reply else { throw unexpected(reply, for: .control) }
        return r
    }

    private func expectAck(_ message: Message, timeout: Duration) async throws -> Ack {
        let reply = try await request(message, timeout: timeout)
        guard case .ack(let ack) = reply else { throw unexpected(reply, for: message.kind) }
        return ack
    }

    func unexpected(_ reply: Message, for kind: MessageKind) -> HeedError {
        HeedError(.protocolViolation, "\(peerAddress) answered a \(kind) request with \(reply.kind)")
    }
}
