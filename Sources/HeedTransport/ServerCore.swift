import HeedCore

/// Decode → authenticate → dispatch → reply, shared by the nng and in-memory servers so
/// both count and answer bad input the same way.
final class ServerCore: Sendable {
    /// The server's codec (secret, size limit).
    let codec: WireCodec
    private let handler: RequestHandler

    /// Longest error text put in an error reply, so a reply to a bad message stays small.
    static let maxErrorText = 1024

    init(codec: WireCodec, handler: @escaping RequestHandler) {
        self.codec = codec
        self.handler = handler
    }

    /// Handles one received message. `bytes` is only read during the call; `send` gets the
    /// reply envelope (exactly once) now or later, from any thread. Counts go to `tally`,
    /// one per server context so contexts do not contend for a lock.
    func handle(_ bytes: UnsafeRawBufferPointer, peerAddress: String, tally: Locked<ServerCounters>,
                send: @escaping @Sendable (Envelope) -> Void) {
        let envelope: Envelope
        do {
            envelope = try codec.decode(bytes)
            guard !envelope.message.kind.isReply else {
                throw HeedError(.protocolViolation, "a \(envelope.message.kind) reply was sent as a request")
            }
        } catch {
            let e = error as? HeedError ?? HeedError(.protocolViolation, String(describing: error))
            tally.withLock {
                $0.received += 1
                $0.bytesReceived += bytes.count
                if e.code == .unauthenticated { $0.unauthenticated += 1 } else { $0.malformed += 1 }
            }
            let ids = WireCodec.peekIDs(bytes) ?? (0, 0)
            send(Envelope(senderID: ids.senderID, requestID: ids.requestID,
                          message: .error(ErrorReply(code: e.code, message: "rejected message from \(peerAddress): \(e.message)"))))
            return
        }
        tally.withLock { $0.received += 1; $0.bytesReceived += bytes.count }
        let responder = Responder { message in
            send(Envelope(senderID: envelope.senderID, requestID: envelope.requestID, message: message))
        }
        let request = Request(envelope: envelope, peer: PeerInfo(senderID: envelope.senderID, address: peerAddress), responder: responder)
        do {
            if let reply = try handler(request) { responder.reply(reply) }
        } catch {
            tally.withLock { $0.handlerErrors += 1 }
            responder.fail(error)
        }
    }

    /// Encoded size of `envelope`, replacing it by an error reply if it cannot be sent
    /// (too large for the limit); the returned envelope is the one to encode.
    func prepareReply(_ envelope: Envelope) -> (Envelope, Int) {
        var envelope = envelope
        if case .error(var e) = envelope.message, e.message.utf8.count > Self.maxErrorText {
            e.message = String(decoding: e.message.utf8.prefix(Self.maxErrorText), as: UTF8.self)
            envelope.message = .error(e)
        }
        let size = codec.encodedSize(envelope)
        if size > codec.maxMessageSize {
            let kind = envelope.message.kind
            envelope.message = .error(ErrorReply(code: .invalidInput, message: "\(kind) reply of \(size) bytes exceeds the \(codec.maxMessageSize)-byte limit; request fewer rows"))
            return (envelope, codec.encodedSize(envelope))
        }
        return (envelope, size)
    }
}

extension ServerCounters {
    /// Field-wise sum, for adding up per-context counters.
    static func + (a: ServerCounters, b: ServerCounters) -> ServerCounters {
        var c = a
        c.received += b.received
        c.replied += b.replied
        c.malformed += b.malformed
        c.unauthenticated += b.unauthenticated
        c.handlerErrors += b.handlerErrors
        c.sendFailures += b.sendFailures
        c.bytesReceived += b.bytesReceived
        c.bytesSent += b.bytesSent
        return c
    }
}
