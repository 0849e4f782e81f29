import HeedCore

/// The header fields of a reply for the transport to encode.
struct ReplyHead {
    /// Echoed from the request.
    var senderID: UInt64
    /// Echoed from the request.
    var requestID: UInt64
    /// The reply's kind.
    var kind: MessageKind
}

/// How a transport puts a reply on the wire: it sizes its buffer for `payloadSize` bytes
/// of payload (`WireCodec.encodedSize(payloadSize:)`), encodes with `writePayload`
/// before returning (the writer may read buffers valid only during the call, hence
/// non-escaping), and sends it. Called once per request, from any thread.
typealias ReplySender = @Sendable (_ head: ReplyHead, _ payloadSize: Int, _ writePayload: (inout WireWriter) -> Void) -> Void

/// Decode → authenticate → dispatch → reply, shared by the nng and in-memory servers so
/// both count and answer bad input the same way.
final class ServerCore: Sendable {
    /// The server's codec (secret, size limit).
    let codec: WireCodec
    /// Present when the codec authenticates: refuses replayed requests.
    let replayGuard: ReplayGuard?
    private let handler: RequestHandler
    private let rowHandlers: RowRequestHandlers?

    /// Longest error text put in an error reply, so a reply to a bad message stays small.
    static let maxErrorText = 1024

    init(options: ServerOptions, handler: @escaping RequestHandler) throws {
        codec = try WireCodec(secret: options.secret, maxMessageSize: options.maxMessageSize)
        replayGuard = codec.isAuthenticated ? ReplayGuard(settings: options.replay) : nil
        rowHandlers = options.rowHandlers
        self.handler = handler
    }

    /// Handles one received message. `bytes` is only read during the call; `send` gets the
    /// reply (exactly once) now or later, from any thread. Counts go to `tally`, one per
    /// server context so contexts do not contend for a lock.
    func handle(_ bytes: UnsafeRawBufferPointer, peerAddress: String, tally: Locked<ServerCounters>, send: @escaping ReplySender) {
        let envelope: Envelope
        var refusedAsReplay = false
        do {
            let (header, payload) = try codec.open(bytes)
            guard !header.kind.isReply else {
                throw HeedError(.protocolViolation, "a \(header.kind) reply was sent as a request")
            }
            // After the HMAC check, so only holders of the secret can touch the window.
            if let refusal = replayGuard?.admit(sender: header.senderID, sequence: header.sequence) {
                refusedAsReplay = true
                // A duplicate is an attack (honest senders never reuse a sequence); an old
                // one may be honest but queued since before this role started, so it is
                // `stale`, which clients retry with a fresh sequence.
                throw HeedError(refusal == .replayed ? .unauthenticated : .stale,
                                "\(header.kind) message from sender \(header.senderID) refused: \(refusal)")
            }
            if let rows = rowHandlers, header.kind == .pullRows || header.kind == .pushRows {
                // The view closures run only once the whole payload has been validated, so a
                // throw from here is always a malformed message.
                if header.kind == .pullRows {
                    try WireCodec.withPullRows(payload) { pull in
                        tally.withLock { $0.received += 1; $0.bytesReceived += bytes.count }
                        servePull(pull, header: header, rows: rows, tally: tally, send: send)
                    }
                } else {
                    try WireCodec.withPushRows(payload) { push in
                        tally.withLock { $0.received += 1; $0.bytesReceived += bytes.count }
                        let responder = makeResponder(header.senderID, header.requestID, send)
                        do {
                            if let reply = try rows.push(push, header.senderID, header.requestID, responder) { responder.reply(reply) }
                        } catch {
                            tally.withLock { $0.handlerErrors += 1 }
                            responder.fail(error)
                        }
                    }
                }
                return
            }
            envelope = try WireCodec.decodePayload(header, payload)
        } catch {
            let e = error as? HeedError ?? HeedError(.protocolViolation, String(describing: error))
            tally.withLock {
                $0.received += 1
                $0.bytesReceived += bytes.count
                if refusedAsReplay { $0.replayed += 1 } else if e.code == .unauthenticated { $0.unauthenticated += 1 } else { $0.malformed += 1 }
            }
            let ids = WireCodec.peekIDs(bytes) ?? (0, 0)
            reply(Envelope(senderID: ids.senderID, requestID: ids.requestID,
                           message: .error(ErrorReply(code: e.code, message: "rejected message from \(peerAddress): \(e.message)"))), via: send)
            return
        }
        tally.withLock { $0.received += 1; $0.bytesReceived += bytes.count }
        let responder = makeResponder(envelope.senderID, envelope.requestID, send)
        let request = Request(envelope: envelope, peer: PeerInfo(senderID: envelope.senderID, address: peerAddress), responder: responder)
        do {
            if let reply = try handler(request) { responder.reply(reply) }
        } catch {
            tally.withLock { $0.handlerErrors += 1 }
            responder.fail(error)
        }
    }

    /// Answers a pull with a rowsReply whose values the row handler writes straight into
    /// the transport's reply buffer.
    private func servePull(_ pull: PullRowsView, header: WireHeader, rows: RowRequestHandlers,
                           tally: Locked<ServerCounters>, send: ReplySender) {
        let table: (dim: Int, read: (UnsafeBufferPointer<UInt64>, UnsafeMutableBufferPointer<Float>) -> Void)
        do {
            table = try rows.pull(pull.tableID, pull.keys)
        } catch {
            tally.withLock { $0.handlerErrors += 1 }
            reply(Envelope(senderID: header.senderID, requestID: header.requestID, message: .error(ErrorReply(error))), via: send)
            return
        }
        let count = pull.keys.count
        let payloadSize = Message.rowsReplyPayloadSize(rows: count, dim: table.dim)
        let size = codec.encodedSize(payloadSize: payloadSize)
        guard table.dim > 0, table.dim <= Int(UInt32.max), size <= codec.maxMessageSize else {
            let why = table.dim > 0 ? "rowsReply of \(size) bytes exceeds the \(codec.maxMessageSize)-byte limit; request fewer rows"
                                    : "table \(pull.tableID) has row width \(table.dim)"
            reply(Envelope(senderID: header.senderID, requestID: header.requestID,
                           message: .error(ErrorReply(code: .invalidInput, message: why))), via: send)
            return
        }
        send(ReplyHead(senderID: header.senderID, requestID: header.requestID, kind: .rowsReply), payloadSize) { w in
            Message.writeRowsReply(tableID: pull.tableID, dim: UInt32(table.dim), rows: count, to: &w) { values in
                table.read(pull.keys, values)
            }
        }
    }

    /// A responder that sends its message as the reply to (`senderID`, `requestID`).
    private func makeResponder(_ senderID: UInt64, _ requestID: UInt64, _ send: @escaping ReplySender) -> Responder {
        Responder { [self] message in
            reply(Envelope(senderID: senderID, requestID: requestID, message: message), via: send)
        }
    }

    /// Sends `envelope` through `send`, replaced by an error reply if it cannot be sent.
    private func reply(_ envelope: Envelope, via send: ReplySender) {
        let prepared = prepareReply(envelope)
        send(ReplyHead(senderID: prepared.senderID, requestID: prepared.requestID, kind: prepared.message.kind),
             prepared.message.payloadSize) { prepared.message.writePayload(to: &$0) }
    }

    /// `envelope`, replaced by an error reply if it cannot be sent (too large for the
    /// limit) and with error text truncated to `maxErrorText`.
    private func prepareReply(_ envelope: Envelope) -> Envelope {
        var envelope = envelope
        if case .error(var e) = envelope.message, e.message.utf8.count > Self.maxErrorText {
            e.message = String(decoding: e.message.utf8.prefix(Self.maxErrorText), as: UTF8.self)
            envelope.message = .error(e)
        }
        let size = codec.encodedSize(envelope)
        if size > codec.maxMessageSize {
            let kind = envelope.message.kind
            envelope.message = .error(ErrorReply(code: .invalidInput, message: "\(kind) reply of \(size) bytes exceeds the \(codec.maxMessageSize)-byte limit; request fewer rows"))
        }
        return envelope
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
        c.replayed += b.replayed
        c.handlerErrors += b.handlerErrors
        c.sendFailures += b.sendFailures
        c.bytesReceived += b.bytesReceived
        c.bytesSent += b.bytesSent
        return c
    }
}
