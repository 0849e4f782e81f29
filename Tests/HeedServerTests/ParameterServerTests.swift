import Foundation
import Testing
import HeedCore
import HeedOptim
@testable import HeedServer
@testable import HeedTransport

@Suite struct ParameterServerTests {
    let dim = 4
    let key: UInt64 = FeatureKey(group: 2, id: 5).rawValue

    func makeShard() throws -> ParameterShard {
        try ParameterShard(rank: 0, serverCount: 1,
                           tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                           initialDense: [1, 2, 3], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
    }

    func makeServer(_ name: String, acknowledgement: ParameterServer.PushAcknowledgement = .afterApplying) throws -> (ParameterServer, any RequestClient) {
        let shard = try makeShard()
        let address = "ipc://\(NSTemporaryDirectory())heed-ps-\(name)-\(getpid()).ipc"
        let server = try ParameterServer(transport: NNGTransport(), address: address, options: ServerOptions(concurrency: 4), shard: shard,
                                         pushAcknowledgement: acknowledgement)
        let client = try NNGTransport().connect(to: server.address, options: ClientOptions(retry: .none))
        return (server, client)
    }

    @Test func aRetriedPushWithTheSameRequestIDIsAppliedOnce() async throws {
        let (server, client) = try makeServer("retry")
        defer { client.close(); server.close() }
        let before = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5)).values
        let push = Envelope(senderID: client.senderID, requestID: client.makeRequestID(),
                            message: .pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: [key], grads: [1, -1, 1, -1], workerClock: 1)))
        for _ in 0..<3 { _ = try await client.request(push, timeout: .seconds(5), retry: .none) }
        #expect(server.shard!.tables[2]!.row(for: key)?.step == 1)
        #expect(server.dedupStatistics.duplicates == 2)
        // One Adam step moves each weight by lr against the gradient's sign (|m̂/√v̂| = 1).
        let after = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5)).values
        for j in 0..<dim { #expect(abs((before[j] - after[j]) - (j % 2 == 0 ? 0.1 : -0.1)) < 1e-5) }
    }

    /// Asynchronous mode acknowledges pushes on receipt: after a flush every acknowledged
    /// push is applied, exactly once (retries included), giving the rows a direct shard gets.
    @Test func pushesAcknowledgedOnReceiptAreAllAppliedOnceByTheFlush() async throws {
        let (server, client) = try makeServer("receipt", acknowledgement: .onReceipt)
        defer { client.close(); server.close() }
        let reference = try makeShard()
        // Disjoint keys per push, so the rows do not depend on the order pushes are applied in.
        var pushes: [PushRows] = []
        for p in 0..<24 {
            let keys: [UInt64] = (0..<64).map { (i: Int) -> UInt64 in FeatureKey(group: 2, id: UInt64(p * 64 + i)).rawValue }.sorted()
            let grads: [Float] = (0..<64 * dim).map { (i: Int) -> Float in Float((i * 7 + p) % 13) * 0.01 - 0.06 }
            pushes.append(PushRows(tableID: 2, dim: UInt32(dim), keys: keys, grads: grads, workerClock: UInt64(p)))
        }
        for push in pushes { _ = try await client.pullRows(PullRows(tableID: 2, keys: push.keys), timeout: .seconds(5)) }
        for push in pushes { _ = try reference.pullRows(table: 2, keys: push.keys) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for push in pushes {
                group.addTask {
                    let envelope = Envelope(senderID: client.senderID, requestID: client.makeRequestID(), message: .pushRows(push))
                    // Each push sent twice, as a retry after a lost ack would be.
                    for _ in 0..<2 {
                        let reply = try await client.request(envelope, timeout: .seconds(10), retry: .none)
                        #expect(reply == .ack(Ack(value: 64)))
                    }
                }
            }
            try await group.waitForAll()
        }
        let flushed = try await client.control(Control(name: "flush", body: []), timeout: .seconds(10))
        #expect(flushed.name == "flushed")
        for push in pushes { try reference.pushRows(table: 2, keys: push.keys, grads: push.grads, clock: push.workerClock!) }
        for push in pushes {
            for k in push.keys {
                let served = server.shard!.tables[2]!.row(for: k), local = reference.tables[2]!.row(for: k)
                #expect(served?.step == 1 && served?.values == local?.values, "row \(k) differs from the direct shard's")
            }
        }
        #expect(server.dedupStatistics.applied == 24 && server.dedupStatistics.duplicates + server.dedupStatistics.parked == 24)
        #expect(server.dedupStatistics.failedAfterAcknowledging == 0)
    }

    /// A flush waits only for its own sender's pushes, and is answered when the last applies.
    @Test func aFlushWaitsOnlyForItsOwnSendersPushes() {
        var pending = UnappliedPushes()
        let answered = LockedBox(0)
        let flush = Responder { _ in answered.update { $0 += 1 } }
        pending.begin(1)
        pending.begin(2)
        pending.begin(1)
        let idleSenderAnswered = pending.park(flushOf: 3, flush)
        #expect(idleSenderAnswered, "a sender with nothing pending is answered at once")
        let busySenderAnswered = pending.park(flushOf: 1, flush)
        #expect(!busySenderAnswered)
        let afterOther = pending.end(2)
        #expect(afterOther.isEmpty && pending.total == 2)
        let afterFirst = pending.end(1)
        #expect(afterFirst.isEmpty, "sender 1 still has a push pending")
        let waiting = pending.end(1)
        #expect(waiting.count == 1 && pending.total == 0)
        waiting.forEach { $0.reply(.controlReply(Control(name: "flushed"))) }
        #expect(answered.get() == 1)
        let again = pending.park(flushOf: 1, flush)
        #expect(again)
    }

    /// A push the shard would refuse is refused before any ack, in either mode.
    @Test(arguments: [ParameterServer.PushAcknowledgement.afterApplying, .onReceipt])
    func aBadPushIsRefusedNotAcknowledged(acknowledgement: ParameterServer.PushAcknowledgement) async throws {
        let (server, client) = try makeServer("badpush-\(acknowledgement == .onReceipt)", acknowledgement: acknowledgement)
        defer { client.close(); server.close() }
        await #expect(throws: HeedError.self) {
            _ = try await client.pushRows(PushRows(tableID: 7, dim: UInt32(dim), keys: [key], grads: [1, 1, 1, 1]), timeout: .seconds(5))
        }
        await #expect(throws: HeedError.self) {
            _ = try await client.pushRows(PushRows(tableID: 2, dim: 2, keys: [key, key + 1], grads: [1, 1, 1, 1]), timeout: .seconds(5))
        }
        #expect(server.shard!.tables[2]!.row(for: key) == nil)
        _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: [key], grads: [1, 1, 1, 1]), timeout: .seconds(5))
        try server.waitForAcknowledgedPushes(limit: .seconds(5))
        #expect(server.dedupStatistics.failedAfterAcknowledging == 0)
    }

    @Test func denseChunkIsPulledAndUpdated() async throws {
        let (server, client) = try makeServer("dense")
        defer { client.close(); server.close() }
        _ = try await client.pushDense(PushDense(tensors: [DenseTensor(id: 0, shape: [3], values: [2, 0, -2])]), timeout: .seconds(5))
        let values = try await client.pullDense(PullDense(tensorIDs: [0]), timeout: .seconds(5)).tensors[0].values
        #expect(values == [0, 2, 4])  // SGD: w − 0.5·g
    }

    @Test func badRequestsGetErrorsAndTheServerKeepsServing() async throws {
        let (server, client) = try makeServer("bad")
        defer { client.close(); server.close() }
        let raw = try NNGClient(address: server.address, options: ClientOptions())
        defer { raw.close() }
        let garbage = try WireCodec().decode(try await raw.exchangeRaw(Array("not a heed message".utf8), timeout: .seconds(5)))
        guard case .error = garbage.message else { Issue.record("garbage got \(garbage.message.kind)"); return }
        await #expect(throws: HeedError.self) {
            _ = try await client.pullRows(PullRows(tableID: 300, keys: [1]), timeout: .seconds(5))
        }
        await #expect(throws: HeedError.self) {
            _ = try await client.pullRows(PullRows(tableID: 9, keys: [1]), timeout: .seconds(5))
        }
        await #expect(throws: HeedError.self) {
            _ = try await client.pushDense(PushDense(tensors: [DenseTensor(id: 0, shape: [2], values: [1, 1])]), timeout: .seconds(5))
        }
        await #expect(throws: HeedError.self) {
            _ = try await client.request(.barrier(Barrier(name: "x", rank: 0, generation: 0)), timeout: .seconds(5))
        }
        #expect(server.listener.counters.malformed == 1)
        let rows = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5))
        #expect(rows.values.count == dim)
    }

    @Test func manyConcurrentPushesAllApply() async throws {
        let (server, client) = try makeServer("many")
        defer { client.close(); server.close() }
        let keys = (0..<256).map { FeatureKey(group: 2, id: UInt64($0)).rawValue }.sorted()
        _ = try await client.pullRows(PullRows(tableID: 2, keys: keys), timeout: .seconds(5))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<32 {
                group.addTask {
                    _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: keys, grads: [Float](repeating: 0.01, count: keys.count * dim), workerClock: UInt64(i)), timeout: .seconds(10))
                }
            }
            try await group.waitForAll()
        }
        #expect(keys.allSatisfy { server.shard!.tables[2]!.row(for: $0)?.step == 32 })
    }

    /// Pulls and pushes served in place from and into nng messages give exactly the rows
    /// the same shard gives when called directly with arrays.
    @Test(arguments: [false, true])
    func inPlaceRowsMatchTheLocalShard(authenticated: Bool) async throws {
        let config = [UInt8(2): EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))]
        let local = try ParameterShard(rank: 0, serverCount: 1, tableConfigs: config, initialDense: [], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let served = try ParameterShard(rank: 0, serverCount: 1, tableConfigs: config, initialDense: [], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let secret: [UInt8]? = authenticated ? Array("a cluster secret of 32 bytes....".utf8) : nil
        let address = "ipc://\(NSTemporaryDirectory())heed-ps-inplace-\(authenticated)-\(getpid()).ipc"
        let server = try ParameterServer(transport: NNGTransport(), address: address, options: ServerOptions(concurrency: 2, secret: secret), shard: served)
        let client = try NNGTransport().connect(to: server.address, options: ClientOptions(secret: secret, retry: .none))
        defer { client.close(); server.close() }
        let keys = (0..<300).map { FeatureKey(group: 2, id: UInt64($0 * 7)).rawValue }.sorted()
        for step in 0..<3 {
            let remote = try await client.pullRows(PullRows(tableID: 2, keys: keys), timeout: .seconds(5))
            #expect(remote.values == (try local.pullRows(table: 2, keys: keys)))
            #expect(remote.dim == UInt32(dim))
            let grads = (0..<keys.count * dim).map { Float(($0 * 31 + step) % 17) * 0.01 - 0.08 }
            let ack = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: keys, grads: grads, workerClock: UInt64(step)), timeout: .seconds(5))
            #expect(ack.value == UInt64(keys.count))
            try local.pushRows(table: 2, keys: keys, grads: grads, clock: UInt64(step))
        }
        for k in keys { #expect(served.tables[2]!.row(for: k) == local.tables[2]!.row(for: k)) }
        #expect(server.listener.counters.malformed == 0)
    }

    /// Broken pulls and pushes that take the in-place path still get error replies, are
    /// counted, and leave the table untouched.
    @Test func malformedRowRequestsGetErrorRepliesOnTheInPlacePath() async throws {
        let (server, client) = try makeServer("badrows")
        defer { client.close(); server.close() }
        let raw = try NNGClient(address: server.address, options: ClientOptions())
        defer { raw.close() }
        let codec = try WireCodec()
        func send(_ bytes: [UInt8]) async throws -> Message {
            try codec.decode(try await raw.exchangeRaw(bytes, timeout: .seconds(5))).message
        }
        func patchLength(_ bytes: inout [UInt8]) {
            withUnsafeBytes(of: UInt32(bytes.count - 32).littleEndian) { for j in 0..<4 { bytes[12 + j] = $0[j] } }
        }
        let unsorted = try codec.encode(Envelope(senderID: 5, requestID: 1, message: .pullRows(PullRows(tableID: 2, keys: [key, key - 1]))))
        var truncatedPush = try codec.encode(Envelope(senderID: 5, requestID: 2, message: .pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: [key], grads: [1, 1, 1, 1]))))
        truncatedPush.removeLast(4)
        patchLength(&truncatedPush)
        var shortPull = try codec.encode(Envelope(senderID: 5, requestID: 3, message: .pullRows(PullRows(tableID: 2, keys: [key]))))
        shortPull.removeLast(3)
        patchLength(&shortPull)
        for bytes in [unsorted, truncatedPush, shortPull] {
            guard case .error(let e) = try await send(bytes) else { Issue.record("a malformed row request was accepted"); continue }
            #expect(e.code == .protocolViolation)
        }
        #expect(server.listener.counters.malformed == 3)
        // Well-formed but wrong for this table: the handler refuses it.
        let wrongDim = try codec.encode(Envelope(senderID: 5, requestID: 4, message: .pushRows(PushRows(tableID: 2, dim: 2, keys: [key], grads: [1, 1]))))
        guard case .error(let e) = try await send(wrongDim) else { Issue.record("a push of the wrong width was accepted"); return }
        #expect(e.code == .invalidInput)
        #expect(server.listener.counters.handlerErrors == 0)  // dedup turns a failed apply into a cached error reply
        #expect(server.shard!.tables[2]!.row(for: key) == nil)
        let rows = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5))
        #expect(rows.values.count == dim)
    }

    /// With a secret configured, unauthenticated row requests are refused before the
    /// in-place path reads them.
    @Test func unauthenticatedRowRequestsAreRefused() async throws {
        let shard = try ParameterShard(rank: 0, serverCount: 1,
                                       tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                                       initialDense: [], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let address = "ipc://\(NSTemporaryDirectory())heed-ps-unauth-\(getpid()).ipc"
        let server = try ParameterServer(transport: NNGTransport(), address: address,
                                         options: ServerOptions(concurrency: 2, secret: Array("a cluster secret of 32 bytes....".utf8)), shard: shard)
        defer { server.close() }
        let client = try NNGTransport().connect(to: server.address, options: ClientOptions(retry: .none))
        defer { client.close() }
        let pushed = await #expect(throws: HeedError.self) {
            _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: [key], grads: [1, 1, 1, 1]), timeout: .seconds(5))
        }
        #expect(pushed?.code == .unauthenticated)
        await #expect(throws: HeedError.self) { _ = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5)) }
        #expect(server.listener.counters.unauthenticated == 2)
        #expect(shard.tables[2]!.row(for: key) == nil)
    }

    /// The in-memory transport takes the same in-place path, so fault-injection tests
    /// exercise it too.
    @Test func inPlaceRowsWorkOverTheInMemoryNetwork() async throws {
        let shard = try ParameterShard(rank: 0, serverCount: 1,
                                       tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .sgd(SGDConfig(lr: 1)))],
                                       initialDense: [], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let network = InMemoryNetwork()
        let server = try ParameterServer(transport: network, address: "mem://ps-inplace", options: ServerOptions(), shard: shard)
        defer { server.close() }
        let client = try network.connect(to: server.address)
        let before = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5)).values
        _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(dim), keys: [key], grads: [1, 2, 3, 4]), timeout: .seconds(5))
        let after = try await client.pullRows(PullRows(tableID: 2, keys: [key]), timeout: .seconds(5)).values
        #expect(zip(before, after).map { $0 - $1 } == [1, 2, 3, 4])  // SGD, lr 1
    }
}
