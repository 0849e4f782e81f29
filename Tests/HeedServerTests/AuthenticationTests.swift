import Foundation
import Testing
import HeedCore
import HeedOptim
@testable import HeedServer
@testable import HeedTransport

/// A parameter server with a cluster secret, over real nng on loopback tcp, against
/// messages a stranger or a recording attacker could send: one test per case. Each
/// checks that the message is refused with a reply naming why, that it is counted
/// under its reason, and that the server's parameters (row values, Adam steps, dense
/// weights) are exactly what they were before.
@Suite struct AuthenticationTests {
    let dim = 4
    let secret = Array("heed test cluster secret, 32 B..".utf8)
    let keys: [UInt64] = [FeatureKey(group: 2, id: 5).rawValue, FeatureKey(group: 2, id: 9).rawValue].sorted()

    /// A server with two rows pulled into existence and one push already applied, and a
    /// legitimate client.
    struct Bed {
        let server: ParameterServer
        let client: NNGClient
        let raw: NNGClient
        func close() { raw.close(); client.close(); server.close() }
    }

    func makeBed() async throws -> Bed {
        let shard = try ParameterShard(rank: 0, serverCount: 1,
                                       tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                                       initialDense: [1, 2, 3], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let server = try ParameterServer(transport: NNGTransport(), address: "tcp://127.0.0.1:0",
                                         options: ServerOptions(concurrency: 4, secret: secret), shard: shard)
        let client = try NNGClient(address: server.address, options: ClientOptions(secret: secret, retry: .none))
        // Raw bytes go out on a client without a secret: the bytes carry (or lack) their own tag.
        let raw = try NNGClient(address: server.address, options: ClientOptions(retry: .none))
        _ = try await client.pullRows(PullRows(tableID: 2, keys: keys), timeout: .seconds(10))
        _ = try await client.pushRows(push(), timeout: .seconds(10))
        return Bed(server: server, client: client, raw: raw)
    }

    func push(_ scale: Float = 1) -> PushRows {
        PushRows(tableID: 2, dim: UInt32(dim), keys: keys, grads: (0..<keys.count * dim).map { Float($0 % 3) * scale - 1 }, workerClock: 1)
    }

    /// Everything a refused message must not change.
    struct Parameters: Equatable {
        var rows: [UInt64: [Float]]
        var steps: [UInt64: Int]
        var dense: [Float]
    }

    func parameters(_ server: ParameterServer) throws -> Parameters {
        let shard = try #require(server.shard)
        let table = try #require(shard.tables[2])
        var rows: [UInt64: [Float]] = [:]
        var steps: [UInt64: Int] = [:]
        for key in keys {
            let row = try #require(table.row(for: key))
            rows[key] = row.values
            steps[key] = Int(row.step)
        }
        return Parameters(rows: rows, steps: steps, dense: shard.pullDense())
    }

    /// Sends `bytes` as they are and returns the error reply's code and text (replies
    /// are tagged with the server's secret, whoever sent the request).
    func sendRefused(_ bytes: [UInt8], on bed: Bed) async throws -> ErrorReply {
        let reply = try WireCodec(secret: secret).decode(try await bed.raw.exchangeRaw(bytes, timeout: .seconds(10)))
        guard case .error(let e) = reply.message else {
            Issue.record("expected an error reply, got \(reply.message.kind)")
            return ErrorReply(code: .internalError, message: "")
        }
        return e
    }

    func legitimateBytes(_ message: Message, sender: UInt64 = 0x5EED) throws -> [UInt8] {
        try WireCodec(secret: secret).encode(Envelope(senderID: sender, requestID: 77, message: message))
    }

    @Test func aForgedPushIsRefusedCountedAndChangesNothing() async throws {
        let bed = try await makeBed()
        defer { bed.close() }
        let before = try parameters(bed.server)
        let forger = try WireCodec(secret: Array("a guessed secret of 32 bytes....".utf8))
        let forged = try forger.encode(Envelope(senderID: 0x5EED, requestID: 1, message: .pushRows(push(100))))
        let e = try await sendRefused(forged, on: bed)
        #expect(e.code == .unauthenticated)
        #expect(e.message.contains("failed authentication"))
        #expect(bed.server.listener.counters.unauthenticated == 1)
        #expect(try parameters(bed.server) == before)
    }

    @Test(arguments: ["gradient", "header", "sequence", "tag"])
    func anAlteredPushIsRefusedCountedAndChangesNothing(where part: String) async throws {
        let bed = try await makeBed()
        defer { bed.close() }
        let before = try parameters(bed.server)
        var bytes = try legitimateBytes(.pushRows(push(100)))
        let payloadEnd = bytes.count - WireCodec.trailerSize
        let offset = switch part {
        case "gradient": payloadEnd - 1                // last byte of the last gradient
        case "header": 24                              // request id
        case "sequence": payloadEnd + 2
        default: bytes.count - 1
        }
        bytes[offset] ^= 0x40
        let e = try await sendRefused(bytes, on: bed)
        #expect(e.code == .unauthenticated)
        #expect(bed.server.listener.counters.unauthenticated == 1)
        #expect(try parameters(bed.server) == before)
    }

    @Test func aReplayedPushIsRefusedCountedAndChangesNothing() async throws {
        let bed = try await makeBed()
        defer { bed.close() }
        let recorded = try legitimateBytes(.pushRows(push(3)))
        let ack = try WireCodec(secret: secret).decode(try await bed.raw.exchangeRaw(recorded, timeout: .seconds(10)))
        guard case .ack = ack.message else { Issue.record("the original was not applied: \(ack.message)"); return }
        let afterOriginal = try parameters(bed.server)
        #expect(afterOriginal.steps.values.allSatisfy { $0 == 2 })
        for _ in 0..<3 {
            let e = try await sendRefused(recorded, on: bed)
            #expect(e.code == .unauthenticated)
            #expect(e.message.contains("replayed"))
        }
        #expect(bed.server.listener.counters.replayed == 3)
        #expect(bed.server.listener.counters.unauthenticated == 0)
        #expect(try parameters(bed.server) == afterOriginal)
    }

    @Test func anUnauthenticatedPushIsRefusedCountedAndChangesNothing() async throws {
        let bed = try await makeBed()
        defer { bed.close() }
        let before = try parameters(bed.server)
        let plain = try WireCodec().encode(Envelope(senderID: 0x5EED, requestID: 1, message: .pushRows(push(100))))
        let e = try await sendRefused(plain, on: bed)
        #expect(e.code == .unauthenticated)
        #expect(e.message.contains("no authentication tag"))
        #expect(bed.server.listener.counters.unauthenticated == 1)
        #expect(try parameters(bed.server) == before)
    }

    /// A restarted server remembers no windows; a message recorded before it started is
    /// still refused, because sequence numbers are timestamps.
    @Test func aPushRecordedBeforeTheServerStartedIsRefused() async throws {
        let recorded = try legitimateBytes(.pushRows(push(100)))
        try await Task.sleep(for: .milliseconds(5))
        let bed = try await makeBed()
        defer { bed.close() }
        let before = try parameters(bed.server)
        let e = try await sendRefused(recorded, on: bed)
        #expect(e.code == .stale)
        #expect(e.message.contains("before this role started"))
        #expect(bed.server.listener.counters.replayed == 1)
        #expect(try parameters(bed.server) == before)
    }

    /// The honest case of the same rule: a client that sends before its server is up has
    /// its request queued by nng and refused as stale on arrival; the retry is encoded
    /// afresh and served.
    @Test func aRequestQueuedBeforeTheServerStartedIsRetriedFreshAndServed() async throws {
        let address = "ipc://\(NSTemporaryDirectory())heed-auth-queued-\(getpid()).ipc"
        let client = try NNGClient(address: address, options: ClientOptions(secret: secret, retry: RetryPolicy(attempts: 3), reconnectMax: .milliseconds(20)))
        defer { client.close() }
        async let reply = client.pullRows(PullRows(tableID: 2, keys: keys), timeout: .seconds(20))
        try await Task.sleep(for: .milliseconds(300))
        let shard = try ParameterShard(rank: 0, serverCount: 1,
                                       tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                                       initialDense: [], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let server = try ParameterServer(transport: NNGTransport(), address: address, options: ServerOptions(concurrency: 2, secret: secret), shard: shard)
        defer { server.close() }
        #expect(try await reply.values.count == keys.count * dim)
        #expect(server.listener.counters.replayed == 1)
    }

    /// Retries are fresh messages with fresh sequence numbers and the same request id:
    /// the replay window lets them through and the dedup cache applies the push once.
    @Test func aRetriedPushPassesTheWindowAndIsAppliedOnce() async throws {
        let bed = try await makeBed()
        defer { bed.close() }
        let envelope = Envelope(senderID: bed.client.senderID, requestID: bed.client.makeRequestID(), message: .pushRows(push(2)))
        for _ in 0..<3 {
            let reply = try await bed.client.request(envelope, timeout: .seconds(10), retry: .none)
            #expect(reply.kind == .ack)
        }
        #expect(try parameters(bed.server).steps.values.allSatisfy { $0 == 2 })
        #expect(bed.server.listener.counters.replayed == 0)
        #expect(bed.server.dedupStatistics.duplicates == 2)
    }
}
