import HeedCore

/// In-place handlers for the two hot requests, pullRows and pushRows.
///
/// With these set, `ServerCore` validates a pull or push exactly as `WireCodec.decode`
/// would, then hands the handler the key and gradient blocks as views into the received
/// message, and has the pulled rows written straight into the reply message. A 1 MiB
/// push or pull then costs one pass over the rows instead of three copies and a
/// zero-filled 1 MiB array per request. Everything else goes to the `RequestHandler`.
package struct RowRequestHandlers: Sendable {
    /// Reads rows: for table `tableID` and the request's `keys`, returns the row width and
    /// a function that writes `values` (keys.count × dim, row-major) for `keys`. Throws
    /// (becoming an error reply) for a table or keys this server does not serve; `read`
    /// itself cannot fail.
    package typealias Pull = @Sendable (_ tableID: UInt32, _ keys: UnsafeBufferPointer<UInt64>) throws
        -> (dim: Int, read: (_ keys: UnsafeBufferPointer<UInt64>, _ values: UnsafeMutableBufferPointer<Float>) -> Void)

    /// Applies a push (the view is valid only during the call) and returns the reply, or
    /// nil after keeping `responder` to reply later, as a `RequestHandler` does.
    package typealias Push = @Sendable (_ push: PushRowsView, _ senderID: UInt64, _ requestID: UInt64,
                                        _ responder: Responder) throws -> Message?

    /// The pull handler.
    package var pull: Pull
    /// The push handler.
    package var push: Push

    /// Creates the handlers.
    package init(pull: @escaping Pull, push: @escaping Push) {
        self.pull = pull
        self.push = push
    }
}
