import Foundation
import HeedCore
import Testing
@testable import HeedTransport

/// Size limits per field and per message: each field one past its cap is refused as
/// malformed (naming the field), at its cap it is accepted, a count larger than the bytes
/// that follow is refused before anything is allocated, and a server keeps serving.
@Suite struct WireLimitsTests {
    /// A version-2, unauthenticated message of `kind` around a hand-written payload.
    static func raw(_ kind: MessageKind, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        put(WireCodec.magic); put(WireCodec.version); put(kind.rawValue); put(UInt32(0)); put(UInt32(payload.count))
        put(UInt64(1)); put(UInt64(2))
        return out + payload
    }

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    static func refusal(_ bytes: [UInt8]) -> String? {
        do { _ = try WireCodec().decode(bytes); return nil } catch let e as HeedError {
            return e.code == .protocolViolation ? e.message : "wrong code \(e.code): \(e.message)"
        } catch { return "\(error)" }
    }

    @Test func aStringOneByteOverTheLimitIsRefusedAndOneAtTheLimitAccepted() {
        let limit = WireLimits.maxStringBytes
        let atLimit = Self.raw(.shutdown, Self.u32(UInt32(limit)) + [UInt8](repeating: 0x61, count: limit))
        #expect(Self.refusal(atLimit) == nil)
        let over = Self.raw(.shutdown, Self.u32(UInt32(limit + 1)) + [UInt8](repeating: 0x61, count: limit + 1))
        #expect(Self.refusal(over)?.contains("reason of \(limit + 1) bytes exceeds the \(limit)-byte limit") == true, "\(Self.refusal(over) ?? "accepted")")
    }

    /// The encoder never produces what the decoder refuses: long text is cut at a
    /// character boundary.
    @Test func theEncoderCutsLongStringsAtACharacterBoundary() throws {
        let reason = String(repeating: "ab€", count: 3000)  // 15,000 bytes
        let decoded = try WireCodec().decode(try WireCodec().encode(Envelope(senderID: 1, requestID: 1, message: .shutdown(Shutdown(reason: reason)))))
        guard case .shutdown(let s) = decoded.message else { Issue.record("not a shutdown"); return }
        #expect(s.reason.utf8.count == WireLimits.maxStringBytes)
        let text = s.reason.trimmingCharacters(in: .whitespaces)
        #expect(reason.hasPrefix(text) && text.utf8.count > WireLimits.maxStringBytes - 5)
    }

    /// Each capped count one past its cap, encoded by the real encoder (which does not
    /// cap counts: the receiver must).
    @Test(arguments: ["stats", "tensor ids", "tensors", "tensor shape", "row dimension"])
    func aCountOnePastItsCapIsRefused(field: String) throws {
        let message: Message
        switch field {
        case "stats":
            let stats = Dictionary(uniqueKeysWithValues: (0...WireLimits.maxStats).map { ("s\($0)", Double($0)) })
            message = .heartbeat(Heartbeat(rank: 0, role: .worker, clock: 1, stats: stats))
        case "tensor ids":
            message = .pullDense(PullDense(tensorIDs: (0...UInt32(WireLimits.maxTensors)).map { $0 }))
        case "tensors":
            message = .denseReply(DenseReply(tensors: (0...UInt32(WireLimits.maxTensors)).map { DenseTensor(id: $0, shape: [1], values: [0]) }))
        case "tensor shape":
            message = .pushDense(PushDense(tensors: [DenseTensor(id: 1, shape: [UInt32](repeating: 1, count: WireLimits.maxTensorRank + 1), values: [1])]))
        default:
            message = .pushRows(PushRows(tableID: 1, dim: UInt32(WireLimits.maxRowDim + 1), keys: [7],
                                         grads: [Float](repeating: 0, count: WireLimits.maxRowDim + 1)))
        }
        let bytes = try WireCodec().encode(Envelope(senderID: 1, requestID: 1, message: message))
        let why = Self.refusal(bytes)
        #expect(why?.contains("exceeds the limit") == true && why?.contains(field) == true, "\(why ?? "accepted")")
    }

    @Test func aShardingPlanOverTheSlotCapIsRefusedBeforeItsOwnersAreRead() {
        let payload = Self.u32(0) + Self.u32(UInt32(WireLimits.maxSlots + 1)) + Self.u32(1)
        #expect(Self.refusal(Self.raw(.registerReply, payload))?.contains("slots exceeds the limit") == true)
    }

    /// Counts far beyond the bytes that follow (4 billion keys in a few bytes) are refused
    /// by the remaining-bytes check, before any allocation.
    @Test(arguments: [MessageKind.pullRows, .pushRows, .pullDense, .heartbeat])
    func aCountBeyondTheBytesThatFollowIsRefused(kind: MessageKind) {
        let huge = Self.u32(.max)
        let payload: [UInt8] = switch kind {
        case .pullRows: Self.u32(1) + huge                                                // table, key count
        case .pushRows: Self.u32(1) + Self.u32(4) + huge + Self.u32(0) + [UInt8](repeating: 0, count: 8)  // table, dim, rows, options, clock
        case .pullDense: Self.u32(1000)                                                  // 1000 ids, none follow
        default: Self.u32(0) + [3] + [UInt8](repeating: 0, count: 8) + Self.u32(1000)    // rank, role, clock, 1000 stats
        }
        let why = Self.refusal(Self.raw(kind, payload))
        #expect(why != nil && !(why!.hasPrefix("wrong code")), "\(why ?? "accepted")")
    }

    /// Over real nng: a heartbeat with more stats than allowed gets an error reply, is
    /// counted as malformed, and the server serves the next request.
    @Test func aServerRefusesAnOverLimitFieldAndKeepsServing() async throws {
        let address = uniqueIPCAddress()
        let server = try NNGServer(address: address, options: ServerOptions(concurrency: 2)) { request in
            .ack(Ack(value: 1))
        }
        defer { server.close() }
        let client = try NNGClient(address: address, options: ClientOptions(retry: .none))
        defer { client.close() }
        let stats = Dictionary(uniqueKeysWithValues: (0...WireLimits.maxStats).map { ("s\($0)", 1.0) })
        let bytes = try WireCodec().encode(Envelope(senderID: 3, requestID: 4, message: .heartbeat(Heartbeat(rank: 0, role: .worker, clock: 1, stats: stats))))
        let reply = try WireCodec().decode(try await client.exchangeRaw(bytes, timeout: .seconds(10)))
        guard case .error(let e) = reply.message else { Issue.record("accepted: \(reply.message.kind)"); return }
        #expect(e.code == .protocolViolation && e.message.contains("stats count"))
        #expect(server.counters.malformed == 1)
        let ok = try await client.request(.heartbeat(Heartbeat(rank: 0, role: .worker, clock: 2, stats: ["loss": 0.5])), timeout: .seconds(10))
        #expect(ok.kind == .ack)
    }
}
