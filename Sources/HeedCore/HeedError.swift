/// A typed error with a code, a human message and an optional cause.
///
/// Bad network, disk or user input becomes one of these, never a crash
/// (STYLE.md habit 6). Messages name the file and line or the peer.
public struct HeedError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; callers branch on it.
    public enum Code: String, Sendable {
        case invalidInput, io, corrupt, transport, timeout, protocolViolation
        case unauthenticated, notFound, unsupported, config, peerFailed, cancelled, internalError
        /// A request the receiver's replay window found too old (encoded before the
        /// receiver started, or long in flight): the sender resends it fresh.
        case stale
    }

    public var code: Code
    public var message: String
    /// The underlying error's description, if any.
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
