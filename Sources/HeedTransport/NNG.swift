import CNNG
import Dispatch
import HeedCore

/// The one door to nng: every status code goes through `check`, which turns it into a
/// `HeedError` carrying nng's own message. Only this module imports CNNG, and
/// HeedBench for its raw-nng baseline, which goes through this door too.
package enum NNG {
    /// Throws unless `rc` is 0; `what` names the call and its target.
    @inline(__always)
    package static func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        guard rc != 0 else { return }
        throw error(rc, what())
    }

    /// The typed error for nng status `rc`: timeouts are `.timeout`, a peer that went
    /// away is `.peerFailed` (retryable), cancellation and closing are `.cancelled`.
    package static func error(_ rc: Int32, _ what: String) -> HeedError {
        let text = String(cString: nng_strerror(rc))
        let code: HeedError.Code
        switch rc {
        case Int32(NNG_ETIMEDOUT.rawValue):
            code = .timeout
        case Int32(NNG_ECONNRESET.rawValue), Int32(NNG_ECONNREFUSED.rawValue),
             Int32(NNG_ECONNSHUT.rawValue), Int32(NNG_ECONNABORTED.rawValue), Int32(NNG_EPEERAUTH.rawValue):
            code = .peerFailed
        case Int32(NNG_ECANCELED.rawValue), Int32(NNG_ECLOSED.rawValue):
            code = .cancelled
        case Int32(NNG_ENOMEM.rawValue), Int32(NNG_EMSGSIZE.rawValue):
            code = .invalidInput
        default:
            code = .transport
        }
        return HeedError(code, "\(what): \(text)")
    }

    /// `d` as an nng timeout in milliseconds, at least 1 (0 would mean "fail at once").
    static func milliseconds(_ d: Duration) -> nng_duration {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return nng_duration(clamping: max(1, ms))
    }

    /// Refuses anything but `tcp://` and `ipc://` addresses (`inproc://` too, for tests).
    package static func validate(_ address: String) throws {
        guard address.hasPrefix("tcp://") || address.hasPrefix("ipc://") || address.hasPrefix("inproc://") else {
            throw HeedError(.config, "address \"\(address)\" must start with tcp:// or ipc://")
        }
    }

    /// Room for nng's own REQ/REP header (4 bytes per hop, at most 8 hops) above the
    /// Heed message limit.
    static let protocolHeaderAllowance = 64

    /// Settings every Heed socket gets: a receive limit so a hostile peer cannot make
    /// us allocate without bound.
    package static func configure(_ socket: nng_socket, maxMessageSize: Int, address: String) throws {
        let limit = maxMessageSize + protocolHeaderAllowance
        try check(nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, limit), "nng_socket_set_size(\(NNG_OPT_RECVMAXSZ), \(limit)) for \(address)")
    }

    /// Closes `socket`, waiting at most `limit` for nng to finish. nng 1.5.2 can wedge
    /// its reaper when a connection is torn down mid-transfer (nng issue 1813, fixed in
    /// 1.8); then the socket is abandoned rather than hanging the caller. Listeners and
    /// dialers are closed first inside nng, so the address is free again either way.
    package static func close(_ socket: nng_socket, waitingAtMost limit: Duration = .seconds(2)) {
        let done = DispatchSemaphore(value: 0)
        let id = socket.id
        // A private queue: a wedged close must not hold a thread other work needs.
        DispatchQueue(label: "heed.nng.close").async {
            nng_close(nng_socket(id: id))
            done.signal()
        }
        _ = done.wait(timeout: .now() + .nanoseconds(Int(limit / .nanoseconds(1))))
    }

    /// The remote address of the pipe `msg` arrived on, as a URL-like string.
    static func remoteAddress(of msg: OpaquePointer) -> String {
        let pipe = nng_msg_get_pipe(msg)
        var sa = nng_sockaddr()
        guard nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) == 0 else { return "pipe \(pipe.id)" }
        switch Int(sa.s_family) {
        case Int(NNG_AF_IPC.rawValue):
            let path = withUnsafeBytes(of: &sa.s_ipc.sa_path) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return "ipc://\(path)"
        case Int(NNG_AF_INET.rawValue):
            // Both fields are in network byte order.
            let a = withUnsafeBytes(of: sa.s_in.sa_addr) { Array($0) }
            let port = UInt16(bigEndian: sa.s_in.sa_port)
            return "tcp://\(a[0]).\(a[1]).\(a[2]).\(a[3]):\(port)"
        case Int(NNG_AF_INET6.rawValue):
            let port = UInt16(bigEndian: sa.s_in6.sa_port)
            return "tcp://[ipv6]:\(port) (pipe \(pipe.id))"
        default:
            return "pipe \(pipe.id)"
        }
    }
}

/// An owned `nng_msg*` crossing from an aio callback to the awaiting task; whoever
/// holds it last frees it.
struct NNGMessage: @unchecked Sendable {
    /// The message; the holder owns it.
    let pointer: OpaquePointer

    /// The body bytes, valid until the message is freed.
    var body: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: nng_msg_body(pointer), count: nng_msg_len(pointer))
    }

    /// Allocates a message with a `size`-byte body.
    static func allocate(_ size: Int, for what: @autoclosure () -> String) throws -> NNGMessage {
        var msg: OpaquePointer?
        try NNG.check(nng_msg_alloc(&msg, size), "nng_msg_alloc(\(size)) for \(what())")
        return NNGMessage(pointer: msg!)
    }

    /// Encodes `envelope` into a new message.
    static func encoding(_ envelope: Envelope, with codec: WireCodec, size: Int, for what: @autoclosure () -> String) throws -> NNGMessage {
        let msg = try allocate(size, for: what())
        do {
            // Safe: the body is exactly `size` bytes, which is codec.encodedSize(envelope).
            try codec.encode(envelope, into: UnsafeMutableRawBufferPointer(start: nng_msg_body(msg.pointer), count: size))
        } catch {
            msg.free()
            throw error
        }
        return msg
    }

    /// Frees the message.
    func free() { nng_msg_free(pointer) }
}
