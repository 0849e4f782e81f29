import Dispatch
import HeedCore

/// Seeded fault injection for `InMemoryNetwork`: each probability is drawn per message.
public struct FaultSettings: Sendable, Equatable {
    /// A request is lost before the server sees it (the client times out).
    public var dropRequest: Double
    /// A reply is lost after the server applied the request (the client times out, and
    /// a retry must not apply it again).
    public var dropReply: Double
    /// A request is delivered twice (the first reply to arrive wins).
    public var duplicate: Double
    /// A delivery (request or reply) is delayed by a uniform time in `0...maxDelay`.
    public var delay: Double
    /// Longest injected delay.
    public var maxDelay: Duration

    /// Creates fault settings; all zero means a perfect network.
    public init(dropRequest: Double = 0, dropReply: Double = 0, duplicate: Double = 0, delay: Double = 0, maxDelay: Duration = .milliseconds(20)) {
        self.dropRequest = dropRequest
        self.dropReply = dropReply
        self.duplicate = duplicate
        self.delay = delay
        self.maxDelay = maxDelay
    }

    /// No faults.
    public static let none = FaultSettings()
}

/// A transport inside one process with the same client/server interface as nng, for
/// tests: messages go through the real wire codec (so size limits and HMAC apply) and
/// can be dropped, delayed and duplicated by seeded `FaultSettings`.
///
/// Handlers run on Dispatch's global queue, like nng's threads. Addresses are free-form
/// names (`mem://server-0`); a client of an address nobody listens on times out.
public final class InMemoryNetwork: Transport, Sendable {
    /// What the network has done to messages so far.
    public struct Statistics: Sendable, Equatable {
        /// Requests handed to a server (duplicates count twice).
        public var delivered = 0
        /// Requests lost on the way in.
        public var droppedRequests = 0
        /// Replies lost on the way back.
        public var droppedReplies = 0
        /// Requests delivered an extra time.
        public var duplicated = 0
        /// Deliveries delayed.
        public var delayed = 0
    }

    private struct State {
        var servers: [String: InMemoryServer] = [:]
        var faults: FaultSettings
        var rng: SeededGenerator
        var stats = Statistics()
    }

    private let state: Locked<State>

    /// Creates an empty network whose fault draws come from `seed`.
    public init(faults: FaultSettings = .none, seed: UInt64 = 1) {
        state = Locked(State(faults: faults, rng: SeededGenerator(seed: seed)))
    }

    /// The current fault settings; tests may change them between requests.
    public var faults: FaultSettings {
        get { state.withLock { $0.faults } }
        set { state.withLock { $0.faults = newValue } }
    }

    /// Counters so far.
    public var statistics: Statistics { state.withLock { $0.stats } }

    public func connect(to address: String, options: ClientOptions) throws -> any RequestClient {
        try InMemoryClient(network: self, address: address, options: options)
    }

    public func listen(on address: String, options: ServerOptions, handler: @escaping RequestHandler) throws -> any RequestServer {
        let server = InMemoryServer(network: self, address: address,
                                    core: try ServerCore(options: options, handler: handler))
        try state.withLock { s in
            guard s.servers[address] == nil else {
                throw HeedError(.config, "in-memory address \(address) is already in use")
            }
            s.servers[address] = server
        }
        return server
    }

    /// Removes a closed server.
    func unregister(_ address: String, _ server: InMemoryServer) {
        state.withLock { s in if s.servers[address] === server { s.servers[address] = nil } }
    }

    /// Sends request bytes to `address`, applying faults; `reply` gets the reply bytes
    /// (possibly more than once, if duplicated).
    func deliver(_ bytes: [UInt8], to address: String, from peer: String, reply: @escaping @Sendable ([UInt8]) -> Void) {
        struct Copy { var requestDelay: Duration; var dropReply: Bool; var replyDelay: Duration }
        let (server, copies) = state.withLock { s -> (InMemoryServer?, [Copy]) in
            guard let server = s.servers[address] else { return (nil, []) }
            let f = s.faults
            func draw(_ p: Double) -> Bool { p > 0 && s.rng.nextUnitDouble() < p }
            func pause() -> Duration {
                guard draw(f.delay) else { return .zero }
                s.stats.delayed += 1
                return f.maxDelay * s.rng.nextUnitDouble()
            }
            if draw(f.dropRequest) {
                s.stats.droppedRequests += 1
                return (server, [])
            }
            var copies = [Copy(requestDelay: pause(), dropReply: draw(f.dropReply), replyDelay: pause())]
            if draw(f.duplicate) {
                s.stats.duplicated += 1
                copies.append(Copy(requestDelay: pause(), dropReply: draw(f.dropReply), replyDelay: pause()))
            }
            s.stats.delivered += copies.count
            s.stats.droppedReplies += copies.filter(\.dropReply).count
            return (server, copies)
        }
        guard let server else { return }
        for copy in copies {
            Self.after(copy.requestDelay) {
                server.receive(bytes, from: peer) { replyBytes in
                    guard !copy.dropReply else { return }
                    Self.after(copy.replyDelay) { reply(replyBytes) }
                }
            }
        }
    }

    /// Runs `work` on the global queue after `delay`.
    static func after(_ delay: Duration, _ work: @escaping @Sendable () -> Void) {
        if delay <= .zero {
            DispatchQueue.global().async(execute: work)
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay / .nanoseconds(1))), execute: work)
        }
    }
}

/// The in-memory server side: a `ServerCore` registered under an address.
final class InMemoryServer: RequestServer, Sendable {
    let address: String
    private let core: ServerCore
    private let network: InMemoryNetwork
    private let closed = Locked(false)
    private let tally = Locked(ServerCounters())

    init(network: InMemoryNetwork, address: String, core: ServerCore) {
        self.network = network
        self.address = address
        self.core = core
    }

    var counters: ServerCounters { tally.withLock { $0 } }

    func close() {
        closed.withLock { $0 = true }
        network.unregister(address, self)
    }

    /// Handles request bytes; `reply` gets the encoded reply (now or later).
    func receive(_ bytes: [UInt8], from peer: String, reply: @escaping @Sendable ([UInt8]) -> Void) {
        guard !closed.withLock({ $0 }) else { return }
        let core = self.core, tally = self.tally
        bytes.withUnsafeBytes { raw in
            core.handle(raw, peerAddress: peer, tally: tally) { [weak self] head, payloadSize, write in
                guard let self, !self.closed.withLock({ $0 }) else { return }
                let size = core.codec.encodedSize(payloadSize: payloadSize)
                var out = [UInt8](repeating: 0, count: size)
                do {
                    try out.withUnsafeMutableBytes {
                        try core.codec.encode(kind: head.kind, senderID: head.senderID, requestID: head.requestID,
                                              payloadSize: payloadSize, into: $0, writePayload: write)
                    }
                } catch {
                    tally.withLock { $0.sendFailures += 1 }
                    return
                }
                tally.withLock { $0.replied += 1; $0.bytesSent += size }
                reply(out)
            }
        }
    }
}

/// The in-memory client side.
final class InMemoryClient: RequestClient, Sendable {
    let senderID: UInt64
    let peerAddress: String
    let retryPolicy: RetryPolicy
    private let codec: WireCodec
    private let network: InMemoryNetwork
    private let nextRequestID = Locked<UInt64>(1)
    private let closed = Locked(false)

    init(network: InMemoryNetwork, address: String, options: ClientOptions) throws {
        self.network = network
        peerAddress = address
        senderID = options.senderID
        retryPolicy = options.retry
        codec = try WireCodec(secret: options.secret, maxMessageSize: options.maxMessageSize)
    }

    func makeRequestID() -> UInt64 {
        nextRequestID.withLock { id in defer { id &+= 1 }; return id }
    }

    func send(_ envelope: Envelope, timeout: Duration) async throws -> Envelope {
        let what = "\(envelope.message.kind) request \(envelope.requestID) to \(peerAddress)"
        let replyBytes = try await exchange(try codec.encode(envelope), timeout: timeout, what: what)
        do {
            return try codec.decode(replyBytes)
        } catch let e as HeedError {
            throw HeedError(e.code, "reply to \(what): \(e.message)")
        }
    }

    /// Sends raw bytes and returns the raw reply (tests use it to send malformed input).
    func exchange(_ bytes: [UInt8], timeout: Duration, what: String) async throws -> [UInt8] {
        guard !closed.withLock({ $0 }) else { throw HeedError(.cancelled, "\(what): client closed") }
        let outcome = Locked<CheckedContinuation<[UInt8], any Error>?>(nil)
        let cancelled = Locked(false)
        @Sendable func finish(_ result: Result<[UInt8], any Error>) {
            outcome.withLock { c in
                c?.resume(with: result)
                c = nil
            }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8], any Error>) in
                outcome.withLock { $0 = c }
                if cancelled.withLock({ $0 }) {
                    finish(.failure(HeedError(.cancelled, "\(what) cancelled")))
                    return
                }
                InMemoryNetwork.after(timeout) { finish(.failure(HeedError(.timeout, "\(what) timed out after \(timeout)"))) }
                network.deliver(bytes, to: peerAddress, from: "mem://sender-\(senderID)") { finish(.success($0)) }
            }
        } onCancel: {
            cancelled.withLock { $0 = true }
            finish(.failure(HeedError(.cancelled, "\(what) cancelled")))
        }
    }

    func close() { closed.withLock { $0 = true } }
}
