// The Heed wire format: every byte that crosses a socket is laid out here and
// nowhere else. docs/wire-format.md is the prose version of this file; change
// both together and bump `WireCodec.version` on any incompatible change.
import Crypto
import HeedCore
#if canImport(FoundationEssentials)
import FoundationEssentials  // UnsafeRawBufferPointer: DataProtocol, for HMAC
#else
import Foundation
#endif

// Key and value blocks are copied with one memcpy each, so their in-memory
// layout must already be the wire's little-endian layout.
#if _endian(big)
#error("Heed's wire format copies UInt64 and Float32 blocks verbatim and needs a little-endian host")
#endif

// MARK: - Kinds and header

/// What a message is; the raw value is the header's `kind` field.
///
/// Requests have the high bit clear, replies have it set (`0x80 | request`),
/// so a kind's direction is visible in a packet dump.
public enum MessageKind: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case register = 0x01
    case heartbeat = 0x02
    case pullRows = 0x03
    case pushRows = 0x04
    case pullDense = 0x05
    case pushDense = 0x06
    case barrier = 0x07
    case shutdown = 0x08
    case control = 0x09

    /// Generic acknowledgement of pushRows, pushDense and shutdown.
    case ack = 0x80
    case registerReply = 0x81
    case heartbeatAck = 0x82
    case rowsReply = 0x83
    case denseReply = 0x85
    case barrierRelease = 0x87
    case controlReply = 0x89
    /// A request failed; carries a code and a message.
    case error = 0xFF

    /// Whether this kind travels from server to client.
    public var isReply: Bool { rawValue & 0x80 != 0 }

    public var description: String {
        switch self {
        case .register: "register"
        case .heartbeat: "heartbeat"
        case .pullRows: "pullRows"
        case .pushRows: "pushRows"
        case .pullDense: "pullDense"
        case .pushDense: "pushDense"
        case .barrier: "barrier"
        case .shutdown: "shutdown"
        case .control: "control"
        case .ack: "ack"
        case .registerReply: "registerReply"
        case .heartbeatAck: "heartbeatAck"
        case .rowsReply: "rowsReply"
        case .denseReply: "denseReply"
        case .barrierRelease: "barrierRelease"
        case .controlReply: "controlReply"
        case .error: "error"
        }
    }
}

/// The fixed 32-byte header that starts every message.
///
/// Layout (little-endian): magic u32 "HEED" | version u16 | kind u16 | flags u32 |
/// payload length u32 | sender id u64 | request id u64. Then `payloadLength` bytes,
/// then, if `flags & authenticatedFlag`, the authentication trailer: the sender's
/// sequence number u64 and a 32-byte HMAC-SHA256 tag over everything before the tag.
public struct WireHeader: Equatable, Sendable {
    /// The message kind.
    public var kind: MessageKind
    /// Flag bits; only `WireCodec.authenticatedFlag` is defined in version 1.
    public var flags: UInt32
    /// Length of the payload in bytes (header and tag excluded).
    public var payloadLength: Int
    /// Who sent the request (replies echo the request's sender id).
    public var senderID: UInt64
    /// The sender's id for this request; a retry reuses it, replies echo it.
    public var requestID: UInt64
    /// The authentication trailer's sequence number (`MessageSequence`): fresh for every
    /// message sent, retries included; 0 for an unauthenticated message. Set by `open`.
    public var sequence: UInt64 = 0
}

/// A message with the ids that travel in its header.
public struct Envelope: Equatable, Sendable {
    /// Who sent the request; a reply carries the request's sender id.
    public var senderID: UInt64
    /// Idempotency id: unique per sender, reused by retries, echoed by replies.
    public var requestID: UInt64
    /// The message itself.
    public var message: Message

    /// Wraps `message` with its ids.
    public init(senderID: UInt64, requestID: UInt64, message: Message) {
        self.senderID = senderID
        self.requestID = requestID
        self.message = message
    }
}

// MARK: - Messages

/// Every message Heed sends, request and reply forms.
public enum Message: Equatable, Sendable {
    case register(Register)
    case registerReply(RegisterReply)
    case heartbeat(Heartbeat)
    case heartbeatAck(HeartbeatAck)
    case pullRows(PullRows)
    case rowsReply(RowsReply)
    case pushRows(PushRows)
    case pullDense(PullDense)
    case denseReply(DenseReply)
    case pushDense(PushDense)
    case barrier(Barrier)
    case barrierRelease(BarrierRelease)
    case shutdown(Shutdown)
    case control(Control)
    case controlReply(Control)
    case ack(Ack)
    case error(ErrorReply)

    /// The header kind for this message.
    public var kind: MessageKind {
        switch self {
        case .register: .register
        case .registerReply: .registerReply
        case .heartbeat: .heartbeat
        case .heartbeatAck: .heartbeatAck
        case .pullRows: .pullRows
        case .rowsReply: .rowsReply
        case .pushRows: .pushRows
        case .pullDense: .pullDense
        case .denseReply: .denseReply
        case .pushDense: .pushDense
        case .barrier: .barrier
        case .barrierRelease: .barrierRelease
        case .shutdown: .shutdown
        case .control: .control
        case .controlReply: .controlReply
        case .ack: .ack
        case .error: .error
        }
    }
}

/// The role a process plays in the cluster.
public enum NodeRole: UInt8, Sendable, CaseIterable {
    case coordinator = 1
    case server = 2
    case worker = 3
}

/// A node announces itself to the coordinator.
public struct Register: Equatable, Sendable {
    /// What the node is.
    public var role: NodeRole
    /// Where the node listens (`tcp://host:port`, `ipc://path`), empty if it does not.
    public var listenAddress: String
    /// The rank the node would like (e.g. after a restart), if any.
    public var rankHint: UInt32?

    /// Creates a registration.
    public init(role: NodeRole, listenAddress: String, rankHint: UInt32? = nil) {
        self.role = role
        self.listenAddress = listenAddress
        self.rankHint = rankHint
    }
}

/// The coordinator's answer to `Register`: who the node is and what it works on.
public struct RegisterReply: Equatable, Sendable {
    /// The node's rank within its role.
    public var rank: UInt32
    /// Listen addresses of the parameter servers, indexed by server rank.
    public var serverAddresses: [String]
    /// Key → slot → server routing.
    public var plan: ShardingPlan
    /// Data shard indices assigned to this node (workers; empty for servers).
    public var dataShards: [UInt32]
    /// Opaque cluster configuration (the coordinator's encoding, e.g. JSON).
    public var config: [UInt8]

    /// Creates a registration reply.
    public init(rank: UInt32, serverAddresses: [String], plan: ShardingPlan, dataShards: [UInt32], config: [UInt8]) {
        self.rank = rank
        self.serverAddresses = serverAddresses
        self.plan = plan
        self.dataShards = dataShards
        self.config = config
    }
}

/// A liveness beat with progress, sent periodically to the coordinator.
public struct Heartbeat: Equatable, Sendable {
    /// The sender's rank within its role.
    public var rank: UInt32
    /// The sender's role.
    public var role: NodeRole
    /// The sender's clock: completed steps for a worker, applied pushes for a server.
    public var clock: UInt64
    /// Named statistics (samples/s, loss, rows, resident bytes, ...).
    public var stats: [String: Double]

    /// Creates a heartbeat.
    public init(rank: UInt32, role: NodeRole, clock: UInt64, stats: [String: Double] = [:]) {
        self.rank = rank
        self.role = role
        self.clock = clock
        self.stats = stats
    }
}

/// The coordinator's answer to a heartbeat.
public struct HeartbeatAck: Equatable, Sendable {
    /// The slowest worker clock the coordinator knows (bounded-staleness mode).
    public var slowestClock: UInt64
    /// The node should finish its current step and stop.
    public var stopRequested: Bool
    /// A command for the node, piggybacked because workers need not listen.
    public var command: Control?

    /// Creates a heartbeat acknowledgement.
    public init(slowestClock: UInt64, stopRequested: Bool = false, command: Control? = nil) {
        self.slowestClock = slowestClock
        self.stopRequested = stopRequested
        self.command = command
    }
}

/// Read embedding rows of one table.
public struct PullRows: Equatable, Sendable {
    /// Table (feature group) id.
    public var tableID: UInt32
    /// Keys to read, strictly ascending (sorted, unique); the decoder rejects others.
    public var keys: [UInt64]

    /// Creates a pull; `keys` must be strictly ascending.
    public init(tableID: UInt32, keys: [UInt64]) {
        self.tableID = tableID
        self.keys = keys
    }
}

/// Rows answering a `PullRows`, in the request's key order.
public struct RowsReply: Equatable, Sendable {
    /// Table id echoed from the request.
    public var tableID: UInt32
    /// Row width.
    public var dim: UInt32
    /// (rowCount × dim), row-major: the request's `keys[i]` is at `values[i*dim ..< (i+1)*dim]`.
    public var values: [Float]

    /// Number of rows (`values.count / dim`).
    public var rowCount: Int { values.count / Int(dim) }

    /// Creates a reply; `values.count` must be a multiple of `dim` (> 0).
    public init(tableID: UInt32, dim: UInt32, values: [Float]) {
        precondition(dim > 0 && values.count % Int(dim) == 0, "RowsReply values must be (rows × dim)")
        self.tableID = tableID
        self.dim = dim
        self.values = values
    }
}

/// Gradients for embedding rows of one table, applied by the owning server.
public struct PushRows: Equatable, Sendable {
    /// Table id.
    public var tableID: UInt32
    /// Row width.
    public var dim: UInt32
    /// Keys, strictly ascending (sorted, unique).
    public var keys: [UInt64]
    /// (keys.count × dim), row-major: `keys[i]`'s gradient is `grads[i*dim ..< (i+1)*dim]`.
    public var grads: [Float]
    /// The worker's step when it computed the gradients (bounded/sync modes).
    public var workerClock: UInt64?

    /// Creates a push; `grads.count` must equal `keys.count × dim`.
    public init(tableID: UInt32, dim: UInt32, keys: [UInt64], grads: [Float], workerClock: UInt64? = nil) {
        precondition(dim > 0 && grads.count == keys.count * Int(dim), "PushRows grads must be (keys.count × dim)")
        self.tableID = tableID
        self.dim = dim
        self.keys = keys
        self.grads = grads
        self.workerClock = workerClock
    }
}

/// A rowsReply read in place from the received message (no value array is built).
///
/// Valid only inside the closure it is passed to: `values` points into the transport's
/// buffer (or a scratch copy) that is released when the closure returns.
public struct PulledRows {
    /// Table id echoed from the request.
    public let tableID: UInt32
    /// Row width (> 0).
    public let dim: Int
    /// (rowCount × dim), row-major, in the request's key order.
    public let values: UnsafeBufferPointer<Float>

    /// Number of rows.
    public var rowCount: Int { values.count / dim }
}

/// A pullRows request read in place from the received message (no key array is built).
///
/// Valid only inside the closure it is passed to: `keys` points into the transport's
/// buffer (or a scratch copy) that is released when the closure returns.
package struct PullRowsView {
    /// Table id.
    package var tableID: UInt32
    /// (n) strictly ascending keys.
    package var keys: UnsafeBufferPointer<UInt64>
}

/// A pushRows request read in place from the received message (no key or gradient arrays
/// are built). Valid only inside the closure it is passed to, like `PullRowsView`.
package struct PushRowsView {
    /// Table id.
    package var tableID: UInt32
    /// Row width (> 0).
    package var dim: UInt32
    /// (n) strictly ascending keys.
    package var keys: UnsafeBufferPointer<UInt64>
    /// (n × dim), row-major: `keys[i]`'s gradient is `grads[i*dim ..< (i+1)*dim]`.
    package var grads: UnsafeBufferPointer<Float>
    /// The worker's step, if the push carried one.
    package var workerClock: UInt64?
}

/// A dense tensor (weights or gradients) by id.
public struct DenseTensor: Equatable, Sendable {
    /// Tensor id (the model assigns them).
    public var id: UInt32
    /// Dimensions, outermost first.
    public var shape: [UInt32]
    /// shape.reduce(1, *) values, row-major.
    public var values: [Float]

    /// Creates a tensor; `values.count` must equal the product of `shape`.
    public init(id: UInt32, shape: [UInt32], values: [Float]) {
        precondition(shape.reduce(1) { $0 * Int($1) } == values.count, "DenseTensor values must match its shape")
        self.id = id
        self.shape = shape
        self.values = values
    }
}

/// Read dense tensors.
public struct PullDense: Equatable, Sendable {
    /// Ids of the tensors to read.
    public var tensorIDs: [UInt32]

    /// Creates a dense pull.
    public init(tensorIDs: [UInt32]) { self.tensorIDs = tensorIDs }
}

/// Dense tensors answering a `PullDense`.
public struct DenseReply: Equatable, Sendable {
    /// The tensors, in the request's id order.
    public var tensors: [DenseTensor]

    /// Creates a dense reply.
    public init(tensors: [DenseTensor]) { self.tensors = tensors }
}

/// Gradients for dense tensors.
public struct PushDense: Equatable, Sendable {
    /// Gradient tensors, one per tensor id.
    public var tensors: [DenseTensor]
    /// The worker's step when it computed the gradients.
    public var workerClock: UInt64?

    /// Creates a dense push.
    public init(tensors: [DenseTensor], workerClock: UInt64? = nil) {
        self.tensors = tensors
        self.workerClock = workerClock
    }
}

/// Arrive at a named barrier; the reply comes when every participant arrived.
public struct Barrier: Equatable, Sendable {
    /// Barrier name, e.g. "epoch-end".
    public var name: String
    /// The arriving node's rank.
    public var rank: UInt32
    /// Which use of the barrier this is (epoch number, ...).
    public var generation: UInt64

    /// Creates a barrier arrival.
    public init(name: String, rank: UInt32, generation: UInt64) {
        self.name = name
        self.rank = rank
        self.generation = generation
    }
}

/// A barrier has been passed by everyone.
public struct BarrierRelease: Equatable, Sendable {
    /// Barrier name.
    public var name: String
    /// The released generation.
    public var generation: UInt64

    /// Creates a release.
    public init(name: String, generation: UInt64) {
        self.name = name
        self.generation = generation
    }
}

/// Ask a node to stop cleanly.
public struct Shutdown: Equatable, Sendable {
    /// Why, for the node's log.
    public var reason: String

    /// Creates a shutdown request.
    public init(reason: String) { self.reason = reason }
}

/// A named command with a small opaque body (coordinator commands such as checkpoints).
///
/// New cluster features use this instead of new header kinds; the body's encoding
/// (JSON, bytes) is the command's business.
public struct Control: Equatable, Sendable {
    /// Command name, e.g. "checkpoint".
    public var name: String
    /// Command arguments.
    public var body: [UInt8]

    /// Creates a command.
    public init(name: String, body: [UInt8] = []) {
        self.name = name
        self.body = body
    }
}

/// Success reply to pushRows, pushDense and shutdown.
public struct Ack: Equatable, Sendable {
    /// Request-specific count, e.g. rows applied; 0 if none.
    public var value: UInt64

    /// Creates an acknowledgement.
    public init(value: UInt64 = 0) { self.value = value }
}

/// A request failed on the peer.
public struct ErrorReply: Equatable, Sendable {
    /// What kind of failure.
    public var code: HeedError.Code
    /// Human-readable reason.
    public var message: String

    /// Creates an error reply.
    public init(code: HeedError.Code, message: String) {
        self.code = code
        self.message = message
    }

    /// An error reply describing `error` (a `HeedError` keeps its code).
    public init(_ error: any Error) {
        if let e = error as? HeedError {
            self.init(code: e.code, message: e.description)
        } else {
            self.init(code: .internalError, message: String(describing: error))
        }
    }
}

// MARK: - Codec

/// Encodes and decodes envelopes; holds the cluster secret for HMAC-SHA256 tags.
///
/// With a secret every outgoing message carries a tag over header and payload and
/// every incoming message must carry a valid one. Without a secret a tagged
/// message is rejected too, so a half-configured cluster fails loudly.
public struct WireCodec: Sendable {
    /// "HEED" read as a little-endian UInt32.
    public static let magic: UInt32 = 0x4445_4548
    /// The wire version this build speaks (2: the authentication trailer carries a
    /// sequence number).
    public static let version: UInt16 = 2
    /// Size of the fixed header.
    public static let headerSize = 32
    /// Size of the HMAC-SHA256 tag.
    public static let tagSize = 32
    /// Size of the authentication trailer: sequence number u64, then the tag.
    public static let trailerSize = 8 + tagSize
    /// Header flag: an HMAC-SHA256 tag follows the payload.
    public static let authenticatedFlag: UInt32 = 1
    /// Shortest accepted cluster secret.
    public static let minimumSecretLength = 16
    /// Default cap on one message (also nng's receive limit).
    public static let defaultMaxMessageSize = 64 << 20

    /// Largest message this codec encodes or accepts, in bytes.
    public let maxMessageSize: Int
    // Raw bytes rather than a SymmetricKey, which is not Sendable in swift-crypto 3.
    private let secret: [UInt8]?

    /// Whether messages are tagged and tags are required.
    public var isAuthenticated: Bool { secret != nil }

    private var key: SymmetricKey? { secret.map { SymmetricKey(data: $0) } }

    /// Creates a codec; `secret` (at least 16 bytes) turns on authentication.
    public init(secret: [UInt8]? = nil, maxMessageSize: Int = WireCodec.defaultMaxMessageSize) throws {
        if let secret, secret.count < Self.minimumSecretLength {
            throw HeedError(.config, "cluster secret is \(secret.count) bytes; at least \(Self.minimumSecretLength) are required")
        }
        guard maxMessageSize >= Self.headerSize + Self.trailerSize else {
            throw HeedError(.config, "maximum message size \(maxMessageSize) is smaller than a header")
        }
        self.maxMessageSize = maxMessageSize
        self.secret = secret
    }

    /// Exact encoded size of `envelope` in bytes.
    public func encodedSize(_ envelope: Envelope) -> Int {
        encodedSize(payloadSize: envelope.message.payloadSize)
    }

    /// Exact encoded size of a message with a `payloadSize`-byte payload.
    func encodedSize(payloadSize: Int) -> Int {
        Self.headerSize + payloadSize + (secret == nil ? 0 : Self.trailerSize)
    }

    /// Encodes `envelope` into `buffer`, which must be exactly `encodedSize(envelope)` bytes.
    public func encode(_ envelope: Envelope, into buffer: UnsafeMutableRawBufferPointer) throws {
        try encode(kind: envelope.message.kind, senderID: envelope.senderID, requestID: envelope.requestID,
                   payloadSize: envelope.message.payloadSize, into: buffer) { envelope.message.writePayload(to: &$0) }
    }

    /// Encodes one message whose payload `writePayload` writes in place (exactly
    /// `payloadSize` bytes), so large row blocks go straight into the transport's buffer.
    /// `buffer` must be exactly `encodedSize(payloadSize:)` bytes.
    func encode(kind: MessageKind, senderID: UInt64, requestID: UInt64, payloadSize: Int,
                into buffer: UnsafeMutableRawBufferPointer, writePayload: (inout WireWriter) -> Void) throws {
        let total = encodedSize(payloadSize: payloadSize)
        precondition(buffer.count == total, "encode buffer must be encodedSize(payloadSize:) bytes")
        guard total <= maxMessageSize, payloadSize <= Int(UInt32.max) else {
            throw HeedError(.invalidInput, "\(kind) message of \(total) bytes exceeds the \(maxMessageSize)-byte limit; split the batch")
        }
        guard let base = buffer.baseAddress else { return }
        var w = WireWriter(base: base, count: total)
        w.u32(Self.magic)
        w.u16(Self.version)
        w.u16(kind.rawValue)
        w.u32(secret == nil ? 0 : Self.authenticatedFlag)
        w.u32(UInt32(payloadSize))
        w.u64(senderID)
        w.u64(requestID)
        writePayload(&w)
        precondition(w.offset == Self.headerSize + payloadSize, "payloadSize disagrees with the payload written for \(kind)")
        if let key {
            w.u64(MessageSequence.next())
            var mac = HMAC<SHA256>(key: key)
            mac.update(data: UnsafeRawBufferPointer(start: base, count: w.offset))
            let tag = mac.finalize()
            tag.withUnsafeBytes { w.bytes($0) }
        }
    }

    /// Encodes `envelope` into a new byte array.
    public func encode(_ envelope: Envelope) throws -> [UInt8] {
        let size = encodedSize(envelope)
        var out = [UInt8](repeating: 0, count: size)
        try out.withUnsafeMutableBytes { try encode(envelope, into: $0) }
        return out
    }

    /// Validates the header of `bytes` against the buffer length and this codec's limits.
    public func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws -> WireHeader {
        guard bytes.count >= Self.headerSize else {
            throw HeedError(.protocolViolation, "message of \(bytes.count) bytes is shorter than the \(Self.headerSize)-byte header")
        }
        guard bytes.count <= maxMessageSize else {
            throw HeedError(.protocolViolation, "message of \(bytes.count) bytes exceeds the \(maxMessageSize)-byte limit")
        }
        var r = WireReader(bytes, what: "header")
        let magic = try r.u32()
        guard magic == Self.magic else {
            throw HeedError(.protocolViolation, "bad magic 0x\(String(magic, radix: 16)); not a Heed message")
        }
        let version = try r.u16()
        guard version == Self.version else {
            throw HeedError(.unsupported, "wire version \(version); this build speaks version \(Self.version)")
        }
        let rawKind = try r.u16()
        guard let kind = MessageKind(rawValue: rawKind) else {
            throw HeedError(.protocolViolation, "unknown message kind 0x\(String(rawKind, radix: 16))")
        }
        let flags = try r.u32()
        guard flags & ~Self.authenticatedFlag == 0 else {
            throw HeedError(.protocolViolation, "unknown header flags 0x\(String(flags, radix: 16))")
        }
        let payloadLength = Int(try r.u32())
        let senderID = try r.u64()
        let requestID = try r.u64()
        let trailerLength = flags & Self.authenticatedFlag != 0 ? Self.trailerSize : 0
        guard bytes.count == Self.headerSize + payloadLength + trailerLength else {
            throw HeedError(.protocolViolation, "header says \(payloadLength) payload bytes\(trailerLength > 0 ? " + trailer" : ""), message has \(bytes.count - Self.headerSize) after the header")
        }
        return WireHeader(kind: kind, flags: flags, payloadLength: payloadLength, senderID: senderID, requestID: requestID)
    }

    /// Decodes and authenticates one message; throws `.protocolViolation`, `.unsupported`
    /// or `.unauthenticated` for bad input and never traps.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws -> Envelope {
        let (header, payload) = try open(bytes)
        return try Self.decodePayload(header, payload)
    }

    /// Parses the payload `open` returned into an envelope.
    static func decodePayload(_ header: WireHeader, _ payload: UnsafeRawBufferPointer) throws -> Envelope {
        var r = WireReader(payload, what: header.kind.description)
        let message = try Message.readPayload(kind: header.kind, from: &r)
        try r.expectEnd()
        return Envelope(senderID: header.senderID, requestID: header.requestID, message: message)
    }

    /// Validates the header and authenticates `bytes`; returns the header and the payload
    /// bytes (a slice of `bytes`, unparsed).
    func open(_ bytes: UnsafeRawBufferPointer) throws -> (WireHeader, payload: UnsafeRawBufferPointer) {
        var header = try decodeHeader(bytes)
        let payloadEnd = Self.headerSize + header.payloadLength
        let tagged = header.flags & Self.authenticatedFlag != 0
        if let key {
            guard tagged else {
                throw HeedError(.unauthenticated, "\(header.kind) message from sender \(header.senderID) has no authentication tag")
            }
            // Safe: decodeHeader checked count == payloadEnd + trailerSize.
            let signedLength = payloadEnd + 8
            let tag = UnsafeRawBufferPointer(rebasing: bytes[signedLength ..< signedLength + Self.tagSize])
            let signed = UnsafeRawBufferPointer(rebasing: bytes[0 ..< signedLength])
            guard HMAC<SHA256>.isValidAuthenticationCode(Array(tag), authenticating: signed, using: key) else {
                throw HeedError(.unauthenticated, "\(header.kind) message from sender \(header.senderID) failed authentication (wrong cluster secret or tampered)")
            }
            header.sequence = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: payloadEnd, as: UInt64.self))
        } else if tagged {
            throw HeedError(.unauthenticated, "\(header.kind) message from sender \(header.senderID) is authenticated but no cluster secret is configured here")
        }
        // Safe: decodeHeader checked the payload lies inside the buffer.
        return (header, UnsafeRawBufferPointer(rebasing: bytes[Self.headerSize ..< payloadEnd]))
    }

    /// Reads a pullRows payload in place and calls `body` with it; throws (without calling
    /// `body`) if the payload is malformed, with the same checks as `decode`.
    /// - Parameter payload: the payload bytes `open` returned for a pullRows message.
    static func withPullRows<R>(_ payload: UnsafeRawBufferPointer, _ body: (PullRowsView) -> R) throws -> R {
        var r = WireReader(payload, what: MessageKind.pullRows.description)
        let f = try Message.readPullRowsFields(&r)
        try r.expectEnd()
        return WireReader.withKeys(f.keys) { keys in body(PullRowsView(tableID: f.tableID, keys: keys)) }
    }

    /// Reads a pushRows payload in place and calls `body` with it; throws (without calling
    /// `body`) if the payload is malformed, with the same checks as `decode`.
    static func withPushRows<R>(_ payload: UnsafeRawBufferPointer, _ body: (PushRowsView) -> R) throws -> R {
        var r = WireReader(payload, what: MessageKind.pushRows.description)
        let f = try Message.readPushRowsFields(&r)
        try r.expectEnd()
        return WireReader.withKeys(f.keys) { keys in
            WireReader.withFloats(f.grads) { grads in
                body(PushRowsView(tableID: f.tableID, dim: f.dim, keys: keys, grads: grads, workerClock: f.workerClock))
            }
        }
    }

    /// Decodes a message held in an array.
    public func decode(_ bytes: [UInt8]) throws -> Envelope {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    /// The sender and request ids of a buffer whose header is readable, even if the
    /// rest is malformed; used to address error replies.
    static func peekIDs(_ bytes: UnsafeRawBufferPointer) -> (senderID: UInt64, requestID: UInt64)? {
        guard bytes.count >= headerSize, bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self) == UInt32(littleEndian: magic) else {
            return nil
        }
        return (UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }
}

// MARK: - Field limits

/// Caps on single fields, on top of the whole message's (`WireCodec.maxMessageSize`).
/// Every count is also checked against the bytes that remain before anything is
/// allocated, so no field can make a decoder allocate more than the message holds;
/// these caps keep what a receiver stores or loops over (names, stats, tensors, shapes,
/// plans) far below that. Strings longer than the cap are cut when encoded.
public enum WireLimits {
    /// Longest string field (names, addresses, reasons, error texts), in bytes.
    public static let maxStringBytes = 4096
    /// Most stats in one heartbeat.
    public static let maxStats = 1024
    /// Most server addresses in a registerReply.
    public static let maxServers = 65536
    /// Most dense tensors in one message.
    public static let maxTensors = 65536
    /// Most dimensions in a tensor's shape.
    public static let maxTensorRank = 8
    /// Widest embedding row (floats).
    public static let maxRowDim = 1 << 16
    /// Most virtual slots in a sharding plan.
    public static let maxSlots = 1 << 22
}

// MARK: - Error codes on the wire

extension HeedError.Code {
    /// Stable wire numbers; never renumber, only append.
    static let wireTable: [(HeedError.Code, UInt16)] = [
        (.invalidInput, 1), (.io, 2), (.corrupt, 3), (.transport, 4), (.timeout, 5),
        (.protocolViolation, 6), (.unauthenticated, 7), (.notFound, 8), (.unsupported, 9),
        (.config, 10), (.peerFailed, 11), (.cancelled, 12), (.internalError, 13), (.stale, 14),
    ]

    /// This code's wire number.
    var wireCode: UInt16 { Self.wireTable.first { $0.0 == self }?.1 ?? 13 }

    /// The code for a wire number; unknown numbers (a newer peer) read as `internalError`.
    init(wireCode: UInt16) {
        self = Self.wireTable.first { $0.1 == wireCode }?.0 ?? .internalError
    }
}

// MARK: - Payload layouts

extension Message {
    /// Payload bytes this message encodes to.
    package var payloadSize: Int {
        switch self {
        case .register(let m):
            return 1 + 1 + 4 + WireWriter.size(of: m.listenAddress)
        case .registerReply(let m):
            return 4 + 8 + 4 * m.plan.slotOwners.count
                + 4 + m.serverAddresses.reduce(0) { $0 + WireWriter.size(of: $1) }
                + 4 + 4 * m.dataShards.count
                + 4 + m.config.count
        case .heartbeat(let m):
            return 4 + 1 + 8 + 4 + m.stats.keys.reduce(0) { $0 + WireWriter.size(of: $1) + 8 }
        case .heartbeatAck(let m):
            return 8 + 1 + 1 + (m.command.map(Self.controlSize) ?? 0)
        case .pullRows(let m):
            return 4 + 4 + 8 * m.keys.count
        case .rowsReply(let m):
            return 16 + 4 * m.values.count
        case .pushRows(let m):
            return 24 + 8 * m.keys.count + 4 * m.grads.count
        case .pullDense(let m):
            return 4 + 4 * m.tensorIDs.count
        case .denseReply(let m):
            return 4 + m.tensors.reduce(0) { $0 + Self.tensorSize($1) }
        case .pushDense(let m):
            return 4 + 4 + 8 + m.tensors.reduce(0) { $0 + Self.tensorSize($1) }
        case .barrier(let m):
            return 4 + 8 + WireWriter.size(of: m.name)
        case .barrierRelease(let m):
            return 8 + WireWriter.size(of: m.name)
        case .shutdown(let m):
            return WireWriter.size(of: m.reason)
        case .control(let m), .controlReply(let m):
            return Self.controlSize(m)
        case .ack:
            return 8
        case .error(let m):
            return 2 + WireWriter.size(of: m.message)
        }
    }

    private static func controlSize(_ c: Control) -> Int { WireWriter.size(of: c.name) + 4 + c.body.count }
    private static func tensorSize(_ t: DenseTensor) -> Int { 4 + 4 + 4 * t.shape.count + 4 + 4 * t.values.count }

    /// Writes the payload; the caller sized the buffer with `payloadSize`.
    func writePayload(to w: inout WireWriter) {
        switch self {
        case .register(let m):
            w.u8(m.role.rawValue)
            w.u8(m.rankHint == nil ? 0 : 1)
            w.u32(m.rankHint ?? 0)
            w.string(m.listenAddress)
        case .registerReply(let m):
            w.u32(m.rank)
            w.u32(UInt32(m.plan.slotCount))
            w.u32(UInt32(m.plan.serverCount))
            for owner in m.plan.slotOwners { w.u32(UInt32(truncatingIfNeeded: owner)) }
            w.u32(UInt32(m.serverAddresses.count))
            for a in m.serverAddresses { w.string(a) }
            w.u32(UInt32(m.dataShards.count))
            m.dataShards.withUnsafeBytes { w.bytes($0) }
            w.byteArray(m.config)
        case .heartbeat(let m):
            w.u32(m.rank)
            w.u8(m.role.rawValue)
            w.u64(m.clock)
            w.u32(UInt32(m.stats.count))
            // Sorted so equal heartbeats encode to equal bytes.
            for name in m.stats.keys.sorted() {
                w.string(name)
                w.u64(m.stats[name]!.bitPattern)
            }
        case .heartbeatAck(let m):
            w.u64(m.slowestClock)
            w.u8(m.stopRequested ? 1 : 0)
            w.u8(m.command == nil ? 0 : 1)
            if let c = m.command { Self.writeControl(c, to: &w) }
        case .pullRows(let m):
            w.u32(m.tableID)
            w.u32(UInt32(m.keys.count))
            m.keys.withUnsafeBytes { w.bytes($0) }
        case .rowsReply(let m):
            m.values.withUnsafeBufferPointer { src in
                Self.writeRowsReply(tableID: m.tableID, dim: m.dim, rows: m.rowCount, to: &w) { dst in
                    // Safe: writeRowsReply hands out exactly rows × dim = values.count floats.
                    if let from = src.baseAddress, let to = dst.baseAddress { to.update(from: from, count: src.count) }
                }
            }
        case .pushRows(let m):
            w.u32(m.tableID)
            w.u32(m.dim)
            w.u32(UInt32(m.keys.count))
            w.u32(m.workerClock == nil ? 0 : 1)
            w.u64(m.workerClock ?? 0)
            m.keys.withUnsafeBytes { w.bytes($0) }
            m.grads.withUnsafeBytes { w.bytes($0) }
        case .pullDense(let m):
            w.u32(UInt32(m.tensorIDs.count))
            m.tensorIDs.withUnsafeBytes { w.bytes($0) }
        case .denseReply(let m):
            w.u32(UInt32(m.tensors.count))
            for t in m.tensors { Self.writeTensor(t, to: &w) }
        case .pushDense(let m):
            w.u32(m.workerClock == nil ? 0 : 1)
            w.u32(UInt32(m.tensors.count))
            w.u64(m.workerClock ?? 0)
            for t in m.tensors { Self.writeTensor(t, to: &w) }
        case .barrier(let m):
            w.u32(m.rank)
            w.u64(m.generation)
            w.string(m.name)
        case .barrierRelease(let m):
            w.u64(m.generation)
            w.string(m.name)
        case .shutdown(let m):
            w.string(m.reason)
        case .control(let m), .controlReply(let m):
            Self.writeControl(m, to: &w)
        case .ack(let m):
            w.u64(m.value)
        case .error(let m):
            w.u16(m.code.wireCode)
            w.string(m.message)
        }
    }

    private static func writeControl(_ c: Control, to w: inout WireWriter) {
        w.string(c.name)
        w.byteArray(c.body)
    }

    private static func writeTensor(_ t: DenseTensor, to w: inout WireWriter) {
        w.u32(t.id)
        w.u32(UInt32(t.shape.count))
        t.shape.withUnsafeBytes { w.bytes($0) }
        w.u32(UInt32(t.values.count))
        t.values.withUnsafeBytes { w.bytes($0) }
    }

    /// Reads the payload of a `kind` message; every count is checked against the bytes left.
    static func readPayload(kind: MessageKind, from r: inout WireReader) throws -> Message {
        switch kind {
        case .register:
            let role = try readRole(&r)
            let hasHint = try r.bool("rank hint flag")
            let hint = try r.u32()
            let address = try r.string("listen address")
            return .register(Register(role: role, listenAddress: address, rankHint: hasHint ? hint : nil))
        case .registerReply:
            let rank = try r.u32()
            let slotCount = Int(try r.u32())
            guard slotCount <= WireLimits.maxSlots else { throw r.malformed("sharding plan of \(slotCount) slots exceeds the limit of \(WireLimits.maxSlots)") }
            let serverCount = Int(try r.u32())
            guard serverCount > 0, slotCount >= serverCount else {
                throw r.malformed("sharding plan has \(slotCount) slots for \(serverCount) servers")
            }
            let owners = try r.u32Array(count: slotCount, "slot owners")
            guard owners.allSatisfy({ Int($0) < serverCount }) else {
                throw r.malformed("sharding plan names a server rank >= \(serverCount)")
            }
            var plan = ShardingPlan(serverCount: serverCount, slotCount: slotCount)
            plan.slotOwners = owners.map { Int($0) }
            let addressCount = try r.count(minimumElementSize: 4, "server addresses", limit: WireLimits.maxServers)
            var addresses: [String] = []
            addresses.reserveCapacity(addressCount)
            for _ in 0..<addressCount { addresses.append(try r.string("server address")) }
            let shardCount = try r.count(minimumElementSize: 4, "data shards")
            let shards = try r.u32Array(count: shardCount, "data shards")
            let config = try r.byteArray("cluster config")
            return .registerReply(RegisterReply(rank: rank, serverAddresses: addresses, plan: plan, dataShards: shards, config: config))
        case .heartbeat:
            let rank = try r.u32()
            let role = try readRole(&r)
            let clock = try r.u64()
            let statCount = try r.count(minimumElementSize: 4 + 8, "stats", limit: WireLimits.maxStats)
            var stats: [String: Double] = [:]
            for _ in 0..<statCount {
                let name = try r.string("stat name")
                let value = Double(bitPattern: try r.u64())
                guard stats.updateValue(value, forKey: name) == nil else {
                    throw r.malformed("stat \"\(name)\" appears twice")
                }
            }
            return .heartbeat(Heartbeat(rank: rank, role: role, clock: clock, stats: stats))
        case .heartbeatAck:
            let slowest = try r.u64()
            let stop = try r.bool("stop flag")
            let hasCommand = try r.bool("command flag")
            let command = hasCommand ? try readControl(&r) : nil
            return .heartbeatAck(HeartbeatAck(slowestClock: slowest, stopRequested: stop, command: command))
        case .pullRows:
            let f = try readPullRowsFields(&r)
            return .pullRows(PullRows(tableID: f.tableID, keys: WireReader.array(of: UInt64.self, f.keys)))
        case .rowsReply:
            let f = try readRowsReplyFields(&r)
            return .rowsReply(RowsReply(tableID: f.tableID, dim: f.dim, values: WireReader.array(of: Float.self, f.values)))
        case .pushRows:
            let f = try readPushRowsFields(&r)
            return .pushRows(PushRows(tableID: f.tableID, dim: f.dim, keys: WireReader.array(of: UInt64.self, f.keys),
                                      grads: WireReader.array(of: Float.self, f.grads), workerClock: f.workerClock))
        case .pullDense:
            let count = try r.count(minimumElementSize: 4, "tensor ids", limit: WireLimits.maxTensors)
            return .pullDense(PullDense(tensorIDs: try r.u32Array(count: count, "tensor ids")))
        case .denseReply:
            return .denseReply(DenseReply(tensors: try readTensors(&r, clockAfterCount: false).tensors))
        case .pushDense:
            let options = try r.u32()
            guard options & ~1 == 0 else { throw r.malformed("unknown push options 0x\(String(options, radix: 16))") }
            let (tensors, clock) = try readTensors(&r, clockAfterCount: true)
            return .pushDense(PushDense(tensors: tensors, workerClock: options & 1 != 0 ? clock : nil))
        case .barrier:
            let rank = try r.u32()
            let generation = try r.u64()
            return .barrier(Barrier(name: try r.string("barrier name"), rank: rank, generation: generation))
        case .barrierRelease:
            let generation = try r.u64()
            return .barrierRelease(BarrierRelease(name: try r.string("barrier name"), generation: generation))
        case .shutdown:
            return .shutdown(Shutdown(reason: try r.string("reason")))
        case .control:
            return .control(try readControl(&r))
        case .controlReply:
            return .controlReply(try readControl(&r))
        case .ack:
            return .ack(Ack(value: try r.u64()))
        case .error:
            let code = HeedError.Code(wireCode: try r.u16())
            return .error(ErrorReply(code: code, message: try r.string("error message")))
        }
    }

    /// pullRows fields: `table id u32, key count u32, keys u64 × count`; the key block is
    /// checked (length, strictly ascending) but left in place.
    static func readPullRowsFields(_ r: inout WireReader) throws -> (tableID: UInt32, keys: UnsafeRawBufferPointer) {
        let table = try r.u32()
        let count = try r.count(minimumElementSize: 8, "keys")
        return (table, try r.keyBlock(count: count))
    }

    /// pushRows fields: `table id u32, dim u32, row count u32, options u32, worker clock u64,
    /// keys u64 × rows, grads f32 × (rows × dim)`; blocks are checked but left in place.
    static func readPushRowsFields(_ r: inout WireReader) throws
        -> (tableID: UInt32, dim: UInt32, keys: UnsafeRawBufferPointer, grads: UnsafeRawBufferPointer, workerClock: UInt64?) {
        let table = try r.u32()
        let dim = try readDim(&r)
        let rows = Int(try r.u32())
        let options = try r.u32()
        guard options & ~1 == 0 else { throw r.malformed("unknown push options 0x\(String(options, radix: 16))") }
        let clock = try r.u64()
        let keys = try r.keyBlock(count: rows)
        let grads = try r.floatBlock(rows: rows, dim: dim, "row gradients")
        return (table, dim, keys, grads, options & 1 != 0 ? clock : nil)
    }

    /// rowsReply fields: `table id u32, dim u32 (> 0), row count u32, reserved u32 (0),
    /// values f32 × (rows × dim)`; the value block is length-checked but left in place.
    static func readRowsReplyFields(_ r: inout WireReader) throws -> (tableID: UInt32, dim: UInt32, rows: Int, values: UnsafeRawBufferPointer) {
        let table = try r.u32()
        let dim = try readDim(&r)
        let rows = Int(try r.u32())
        guard try r.u32() == 0 else { throw r.malformed("reserved field is not zero") }
        return (table, dim, rows, try r.floatBlock(rows: rows, dim: dim, "row values"))
    }

    /// Payload bytes of a rowsReply with (rows × dim) values.
    static func rowsReplyPayloadSize(rows: Int, dim: Int) -> Int { 16 + 4 * rows * dim }

    /// Writes a rowsReply payload: `table id u32, dim u32, row count u32, reserved u32 (0)`,
    /// then `fill` writes the (rows × dim) values straight into the buffer.
    static func writeRowsReply(tableID: UInt32, dim: UInt32, rows: Int, to w: inout WireWriter,
                               fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        w.u32(tableID)
        w.u32(dim)
        w.u32(UInt32(rows))
        w.u32(0)
        w.floats(count: rows * Int(dim), fill)
    }

    private static func readRole(_ r: inout WireReader) throws -> NodeRole {
        let raw = try r.u8()
        guard let role = NodeRole(rawValue: raw) else { throw r.malformed("unknown role \(raw)") }
        return role
    }

    private static func readDim(_ r: inout WireReader) throws -> UInt32 {
        let dim = try r.u32()
        guard dim > 0 else { throw r.malformed("row dimension is zero") }
        guard dim <= WireLimits.maxRowDim else { throw r.malformed("row dimension \(dim) exceeds the limit of \(WireLimits.maxRowDim)") }
        return dim
    }

    private static func readControl(_ r: inout WireReader) throws -> Control {
        let name = try r.string("command name")
        return Control(name: name, body: try r.byteArray("command body"))
    }

    /// Reads `count u32 [clock u64] tensors...`; pushDense stores its clock after the count.
    private static func readTensors(_ r: inout WireReader, clockAfterCount: Bool) throws -> (tensors: [DenseTensor], clock: UInt64) {
        let count = try r.count(minimumElementSize: 12, "tensors", limit: WireLimits.maxTensors)
        let clock = clockAfterCount ? try r.u64() : 0
        var tensors: [DenseTensor] = []
        tensors.reserveCapacity(count)
        for _ in 0..<count {
            let id = try r.u32()
            let rank = try r.count(minimumElementSize: 4, "tensor shape", limit: WireLimits.maxTensorRank)
            let shape = try r.u32Array(count: rank, "tensor shape")
            let valueCount = try r.count(minimumElementSize: 4, "tensor values")
            var product = 1
            for d in shape {
                let (p, overflow) = product.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw r.malformed("tensor \(id) shape \(shape) overflows") }
                product = p
            }
            guard product == valueCount else {
                throw r.malformed("tensor \(id) has \(valueCount) values for shape \(shape)")
            }
            let values = try r.floats(rows: valueCount, dim: 1, "tensor values")
            tensors.append(DenseTensor(id: id, shape: shape, values: values))
        }
        return (tensors, clock)
    }
}

// MARK: - Byte cursors

/// Appends little-endian fields to a buffer sized in advance.
struct WireWriter {
    let base: UnsafeMutableRawPointer
    let count: Int
    private(set) var offset = 0

    init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    /// Encoded size of a string field (u32 length + UTF-8).
    static func size(of s: String) -> Int { 4 + min(s.utf8.count, WireLimits.maxStringBytes) }

    @inline(__always)
    private mutating func put<T: FixedWidthInteger>(_ v: T) {
        precondition(offset + MemoryLayout<T>.size <= count, "WireWriter overflow: payloadSize is wrong")
        // Safe: bounds checked above; storeBytes allows unaligned offsets.
        base.storeBytes(of: v.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    mutating func u8(_ v: UInt8) { put(v) }
    mutating func u16(_ v: UInt16) { put(v) }
    mutating func u32(_ v: UInt32) { put(v) }
    mutating func u64(_ v: UInt64) { put(v) }

    /// Copies raw bytes (a key or value block: the host is little-endian).
    mutating func bytes(_ src: UnsafeRawBufferPointer) {
        precondition(offset + src.count <= count, "WireWriter overflow: payloadSize is wrong")
        if let from = src.baseAddress, src.count > 0 {
            // Safe: bounds checked above.
            (base + offset).copyMemory(from: from, byteCount: src.count)
        }
        offset += src.count
    }

    /// Hands `fill` the next `n` Float32 slots to write in place (the host is little-endian).
    /// The slots are bound directly when 4-aligned (always, for nng and array buffers);
    /// otherwise `fill` writes a scratch buffer that is copied in.
    mutating func floats(count n: Int, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let byteCount = n * MemoryLayout<Float>.stride
        precondition(n >= 0 && offset + byteCount <= count, "WireWriter overflow: payloadSize is wrong")
        let start = base + offset
        offset += byteCount
        guard n > 0 else { return }
        if Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
            // Safe: bounds checked above; the bytes are plain memory we own for this encode.
            fill(UnsafeMutableBufferPointer(start: start.bindMemory(to: Float.self, capacity: n), count: n))
        } else {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { scratch in
                fill(scratch)
                // Safe: scratch holds n floats and the destination byteCount bytes (checked above).
                start.copyMemory(from: scratch.baseAddress!, byteCount: byteCount)
            }
        }
    }

    /// u32 length + UTF-8 bytes, the text cut to `WireLimits.maxStringBytes` (at a
    /// character boundary, then padded with spaces to the length `size(of:)` promised).
    mutating func string(_ s: String) {
        var s = s
        let limit = WireLimits.maxStringBytes
        if s.utf8.count > limit {
            var cut = ""
            for c in s where cut.utf8.count + c.utf8.count <= limit { cut.append(c) }
            s = cut + String(repeating: " ", count: limit - cut.utf8.count)
        }
        u32(UInt32(s.utf8.count))
        s.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    /// u32 length + bytes.
    mutating func byteArray(_ a: [UInt8]) {
        u32(UInt32(a.count))
        a.withUnsafeBytes { bytes($0) }
    }
}

/// Reads little-endian fields, checking every length against the bytes left.
struct WireReader {
    let buffer: UnsafeRawBufferPointer
    /// What is being read, for error messages.
    let what: String
    private(set) var offset = 0

    init(_ buffer: UnsafeRawBufferPointer, what: String) {
        self.buffer = buffer
        self.what = what
    }

    var remaining: Int { buffer.count - offset }

    func malformed(_ detail: String) -> HeedError {
        HeedError(.protocolViolation, "malformed \(what) message at payload byte \(offset): \(detail)")
    }

    // `field` is an autoclosure: formatting it for every field read cost more than the read.
    private mutating func need(_ n: Int, _ field: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw malformed("\(field()) needs \(n) bytes, \(remaining) left")
        }
    }

    @inline(__always)
    private mutating func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size, "\(T.self) field")
        // Safe: need() checked the bytes exist; loadUnaligned allows any offset.
        let v = T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func u8() throws -> UInt8 { try get(UInt8.self) }
    mutating func u16() throws -> UInt16 { try get(UInt16.self) }
    mutating func u32() throws -> UInt32 { try get(UInt32.self) }
    mutating func u64() throws -> UInt64 { try get(UInt64.self) }

    mutating func bool(_ field: String) throws -> Bool {
        let v = try u8()
        guard v <= 1 else { throw malformed("\(field) is \(v), expected 0 or 1") }
        return v == 1
    }

    /// Reads a u32 element count and checks that `count × minimumElementSize` bytes remain,
    /// so a hostile count cannot make us allocate, and that it is at most `limit`.
    mutating func count(minimumElementSize: Int, _ field: String, limit: Int = .max) throws -> Int {
        let n = Int(try u32())
        guard n <= limit else { throw malformed("\(field) count \(n) exceeds the limit of \(limit)") }
        guard n <= remaining / minimumElementSize else {
            throw malformed("\(field) count \(n) needs at least \(n * minimumElementSize) bytes, \(remaining) left")
        }
        return n
    }

    private mutating func block<T>(_: T.Type, count n: Int, _ field: String) throws -> [T] {
        guard n <= remaining / MemoryLayout<T>.stride else {
            throw malformed("\(field): \(n) × \(MemoryLayout<T>.stride) bytes needed, \(remaining) left")
        }
        let byteCount = n * MemoryLayout<T>.stride
        let start = offset
        let out = [T](unsafeUninitializedCapacity: n) { dst, initialized in
            if n > 0, let from = buffer.baseAddress {
                // Safe: the guard above checked `byteCount` bytes remain; T is a plain
                // little-endian number type, matching the wire layout.
                UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: from + start, byteCount: byteCount)
            }
            initialized = n
        }
        offset += byteCount
        return out
    }

    /// The next `n` bytes, unparsed.
    private mutating func raw(_ n: Int, _ field: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(n, field())
        // Safe: need() checked the range.
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset ..< offset + n])
        offset += n
        return slice
    }

    /// A block of `n` strictly ascending UInt64 keys, checked and left in place.
    mutating func keyBlock(count n: Int) throws -> UnsafeRawBufferPointer {
        guard n <= remaining / 8 else { throw malformed("keys: \(n) × 8 bytes needed, \(remaining) left") }
        let start = offset
        let block = try raw(n * 8, "keys")
        var previous: UInt64 = 0
        for i in 0..<n {
            // Safe: i * 8 + 8 <= block.count; loadUnaligned allows any offset.
            let k = UInt64(littleEndian: block.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            guard i == 0 || previous < k else {
                offset = start + i * 8
                throw malformed("keys are not strictly ascending at index \(i)")
            }
            previous = k
        }
        return block
    }

    /// A block of `rows × dim` Float32 values, length-checked and left in place.
    mutating func floatBlock(rows: Int, dim: UInt32, _ field: String) throws -> UnsafeRawBufferPointer {
        let (n, overflow) = rows.multipliedReportingOverflow(by: Int(dim))
        guard !overflow, n <= remaining / 4 else {
            throw malformed("\(field): \(rows) × \(dim) floats needed, \(remaining) bytes left")
        }
        return try raw(n * 4, field)
    }

    /// A key block as `UInt64`s: bound in place when 8-aligned, else copied to scratch.
    /// nng's REQ/REP header makes received bodies 4 mod 8, so the copy is the usual case;
    /// keys are 1/(2·dim+1) of a push, so it costs little.
    static func withKeys<R>(_ block: UnsafeRawBufferPointer, _ body: (UnsafeBufferPointer<UInt64>) -> R) -> R {
        withBlock(block, of: UInt64.self, body)
    }

    /// A float block as `Float`s: bound in place when 4-aligned (the usual case), else copied.
    static func withFloats<R>(_ block: UnsafeRawBufferPointer, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        withBlock(block, of: Float.self, body)
    }

    private static func withBlock<T, R>(_ block: UnsafeRawBufferPointer, of _: T.Type, _ body: (UnsafeBufferPointer<T>) -> R) -> R {
        let n = block.count / MemoryLayout<T>.stride
        guard n > 0, let start = block.baseAddress else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        if Int(bitPattern: start) % MemoryLayout<T>.alignment == 0 {
            // Safe: the block holds n elements of plain little-endian numbers (the host is
            // little-endian) and is only read while the message is alive, inside this call.
            return body(UnsafeBufferPointer(start: start.bindMemory(to: T.self, capacity: n), count: n))
        }
        return withUnsafeTemporaryAllocation(of: T.self, capacity: n) { scratch in
            // Safe: scratch holds n elements, the block n × stride bytes.
            UnsafeMutableRawPointer(scratch.baseAddress!).copyMemory(from: start, byteCount: n * MemoryLayout<T>.stride)
            return body(UnsafeBufferPointer(scratch))
        }
    }

    /// A checked block copied into a new array (one memcpy).
    static func array<T>(of _: T.Type, _ block: UnsafeRawBufferPointer) -> [T] {
        let n = block.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: n) { dst, initialized in
            if n > 0, let from = block.baseAddress {
                // Safe: dst has capacity n; the block holds n × stride bytes of plain numbers.
                UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: from, byteCount: n * MemoryLayout<T>.stride)
            }
            initialized = n
        }
    }

    /// `rows × dim` Float32 values.
    mutating func floats(rows: Int, dim: UInt32, _ field: String) throws -> [Float] {
        Self.array(of: Float.self, try floatBlock(rows: rows, dim: dim, field))
    }

    mutating func u32Array(count n: Int, _ field: String) throws -> [UInt32] {
        try block(UInt32.self, count: n, field)
    }

    /// u32 length + bytes.
    mutating func byteArray(_ field: String) throws -> [UInt8] {
        let n = Int(try u32())
        return try block(UInt8.self, count: n, field)
    }

    /// u32 length + UTF-8, rejecting invalid UTF-8.
    mutating func string(_ field: String) throws -> String {
        let n = Int(try u32())
        guard n <= WireLimits.maxStringBytes else {
            throw malformed("\(field) of \(n) bytes exceeds the \(WireLimits.maxStringBytes)-byte limit")
        }
        try need(n, field)
        // Safe: need() checked the range.
        let raw = UnsafeRawBufferPointer(rebasing: buffer[offset ..< offset + n])
        offset += n
        guard let s = String(validatingUTF8Bytes: raw) else { throw malformed("\(field) is not valid UTF-8") }
        return s
    }

    /// Fails unless the whole payload was consumed.
    func expectEnd() throws {
        guard remaining == 0 else { throw malformed("\(remaining) trailing bytes") }
    }
}

extension String {
    /// A string from UTF-8 bytes, or nil if they are not valid UTF-8.
    init?(validatingUTF8Bytes bytes: UnsafeRawBufferPointer) {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let u): scalars.append(u)
            case .emptyInput: self = String(scalars); return
            case .error: return nil
            }
        }
    }
}
