import HeedCore

/// How a client connects, authenticates and retries.
public struct ClientOptions: Sendable {
    /// This client's identity in request ids; unique per process incarnation and per server.
    public var senderID: UInt64
    /// Requests kept in flight at once (nng contexts); more callers wait for a free one.
    public var maxInFlight: Int
    /// Largest message sent or accepted (nng's receive limit); bounds a hostile peer's memory use.
    public var maxMessageSize: Int
    /// Cluster secret; when set every message is HMAC-SHA256 tagged and checked.
    public var secret: [UInt8]?
    /// What `request(_:timeout:)` does after a timeout or a lost connection.
    public var retry: RetryPolicy
    /// First reconnect delay after a connection fails (nng doubles it up to `reconnectMax`).
    public var reconnectMin: Duration
    /// Longest reconnect delay.
    public var reconnectMax: Duration

    /// Creates client options; the default sender id is random.
    public init(senderID: UInt64 = ClientOptions.randomSenderID(), maxInFlight: Int = 8,
                maxMessageSize: Int = WireCodec.defaultMaxMessageSize, secret: [UInt8]? = nil,
                retry: RetryPolicy = .standard, reconnectMin: Duration = .milliseconds(10),
                reconnectMax: Duration = .seconds(1)) {
        self.senderID = senderID
        self.maxInFlight = maxInFlight
        self.maxMessageSize = maxMessageSize
        self.secret = secret
        self.retry = retry
        self.reconnectMin = reconnectMin
        self.reconnectMax = reconnectMax
    }

    /// A random 64-bit sender id, so a restarted process never reuses its predecessor's ids.
    public static func randomSenderID() -> UInt64 {
        var g = SystemRandomNumberGenerator()
        return g.next() | 1
    }
}

/// How a server listens and authenticates.
public struct ServerOptions: Sendable {
    /// Requests handled or parked at once (nng contexts). A handler that defers its
    /// reply (barriers) holds one until it replies, so size this above the number of
    /// requests that may wait at the same time.
    public var concurrency: Int
    /// Largest message accepted or sent.
    public var maxMessageSize: Int
    /// Cluster secret; when set, untagged or wrongly tagged messages are rejected.
    public var secret: [UInt8]?
    /// Limits of the replay window that authenticated requests pass (with a secret only).
    public var replay = ReplayGuard.Settings()
    /// In-place handlers for pullRows/pushRows (the parameter server sets them); nil
    /// sends those requests to the `RequestHandler` like any other.
    package var rowHandlers: RowRequestHandlers?

    /// Creates server options.
    public init(concurrency: Int = 16, maxMessageSize: Int = WireCodec.defaultMaxMessageSize, secret: [UInt8]? = nil) {
        self.concurrency = concurrency
        self.maxMessageSize = maxMessageSize
        self.secret = secret
    }
}

/// When and how often a request is retried; a retry reuses the request id, so the
/// server's `DedupCache` can tell it from a new request.
public struct RetryPolicy: Sendable, Equatable {
    /// Total attempts, at least 1.
    public var attempts: Int
    /// Pause before the second attempt; doubled for each further one.
    public var backoff: Duration
    /// Upper bound for the pause.
    public var maxBackoff: Duration

    /// Creates a policy.
    public init(attempts: Int, backoff: Duration = .milliseconds(20), maxBackoff: Duration = .seconds(1)) {
        precondition(attempts >= 1, "a retry policy needs at least one attempt")
        self.attempts = attempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
    }

    /// One attempt, no retry.
    public static let none = RetryPolicy(attempts: 1)
    /// Three attempts with 20 ms, 40 ms pauses.
    public static let standard = RetryPolicy(attempts: 3)

    /// Timeouts, lost connections and requests the peer found stale (a retry is encoded
    /// afresh, with a new sequence number) are retried; other errors the peer answered
    /// with are not.
    public func isRetryable(_ error: HeedError) -> Bool {
        error.code == .timeout || error.code == .peerFailed || error.code == .stale
    }
}
