import HeedCore
import Testing
@testable import HeedTransport

@Suite struct InMemoryNetworkTests {
    /// A server that applies pushes through a DedupCache and counts real applications.
    private func dedupServer(_ network: InMemoryNetwork, _ address: String, applied: Shared<Int>) throws -> any RequestServer {
        let cache = DedupCache()
        return try network.listen(on: address, options: ServerOptions()) { request in
            cache.handle(request) {
                .ack(Ack(value: UInt64(applied.with { $0 += 1; return $0 })))
            }
        }
    }

    private func push(_ i: Int) -> PushRows {
        PushRows(tableID: 1, dim: 2, keys: [UInt64(i)], grads: [1, 2])
    }

    @Test func pullRoundTripsThroughTheCodec() async throws {
        let network = InMemoryNetwork()
        let server = try network.listen(on: "mem://s", options: ServerOptions(), handler: echoHandler)
        let client = try network.connect(to: "mem://s", options: ClientOptions())
        #expect(try await pullAndCheck(client, keys: [1, 2, 300]))
        #expect(try await client.control(Control(name: "ping", body: [9]), timeout: .seconds(5)) == Control(name: "ping", body: [9]))
        #expect(server.counters.received == 2 && server.counters.replied == 2)
    }

    @Test func droppedRequestTimesOutAndARetrySucceeds() async throws {
        let network = InMemoryNetwork(faults: FaultSettings(dropRequest: 1), seed: 11)
        let applied = Shared(0)
        let server = try dedupServer(network, "mem://drop", applied: applied)
        let client = try network.connect(to: "mem://drop", options: ClientOptions(retry: .none))
        let code = await asyncErrorCode { try await client.pushRows(push(1), timeout: .milliseconds(50)) }
        #expect(code == .timeout)
        network.faults = FaultSettings(dropRequest: 0.5)
        // Only dropped requests may time out here (`received == 20` below): the timeout is
        // generous because a loaded CI host can stall a delivered request for tens of ms.
        for i in 0..<20 {
            _ = try await client.request(.pushRows(push(i)), timeout: .milliseconds(250), retry: RetryPolicy(attempts: 40, backoff: .milliseconds(1)))
        }
        #expect(applied.get == 20)
        #expect(network.statistics.droppedRequests > 1)
        #expect(server.counters.received == 20)
    }

    @Test func lostRepliesAreRetriedWithTheSameIDAndAppliedOnce() async throws {
        let network = InMemoryNetwork(faults: FaultSettings(dropReply: 0.5), seed: 12)
        let applied = Shared(0)
        let server = try dedupServer(network, "mem://lost", applied: applied)
        let client = try network.connect(to: "mem://lost", options: ClientOptions())
        var acks: [UInt64] = []
        for i in 0..<30 {
            let ack = try await client.request(.pushRows(push(i)), timeout: .milliseconds(25), retry: RetryPolicy(attempts: 40, backoff: .milliseconds(1)))
            guard case .ack(let a) = ack else { Issue.record("expected ack"); return }
            acks.append(a.value)
        }
        #expect(applied.get == 30)
        #expect(acks == Array(1...30))
        #expect(network.statistics.droppedReplies > 1)
        #expect(server.counters.received > 30)
    }

    @Test func duplicatedPushesAreAppliedOnce() async throws {
        let network = InMemoryNetwork(faults: FaultSettings(duplicate: 1), seed: 13)
        let applied = Shared(0)
        let server = try dedupServer(network, "mem://dup", applied: applied)
        let client = try network.connect(to: "mem://dup", options: ClientOptions())
        for i in 0..<25 { _ = try await client.pushRows(push(i), timeout: .seconds(5)) }
        // The second copies land after the first copies' replies; wait for all 50 to arrive.
        let landed = await waitUntil(timeout: .seconds(30)) { server.counters.received >= 50 }
        #expect(landed, "only \(server.counters.received) of 50 copies arrived")
        #expect(network.statistics.duplicated == 25)
        #expect(server.counters.received == 50)
        #expect(applied.get == 25)
    }

    @Test func delayedDeliveriesStillAnswerConcurrentRequests() async throws {
        let network = InMemoryNetwork(faults: FaultSettings(delay: 1, maxDelay: .milliseconds(30)), seed: 14)
        _ = try network.listen(on: "mem://slow", options: ServerOptions(), handler: echoHandler)
        let client = try network.connect(to: "mem://slow", options: ClientOptions())
        let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<16 { group.addTask { try await pullAndCheck(client, keys: [UInt64(i), UInt64(i + 100)]) } }
            return try await group.reduce(true) { $0 && $1 }
        }
        #expect(ok)
        #expect(network.statistics.delayed >= 16)
    }

    @Test func malformedBytesGetAnErrorReplyAndAreCounted() async throws {
        let network = InMemoryNetwork()
        let server = try network.listen(on: "mem://bad", options: ServerOptions(), handler: echoHandler)
        let client = try network.connect(to: "mem://bad", options: ClientOptions()) as! InMemoryClient
        let replyBytes = try await client.exchange(Array("HEED garbage".utf8), timeout: .seconds(5), what: "raw")
        let reply = try WireCodec().decode(replyBytes)
        guard case .error(let e) = reply.message else { Issue.record("expected an error reply"); return }
        #expect(e.code == .protocolViolation)
        #expect(server.counters.malformed == 1)
        #expect(try await pullAndCheck(client, keys: [5]))
    }

    @Test func wrongSecretIsRejectedAndCounted() async throws {
        let network = InMemoryNetwork()
        let secret = Array("in-memory cluster secret 0123456".utf8)
        let server = try network.listen(on: "mem://auth", options: ServerOptions(secret: secret), handler: echoHandler)
        let intruder = try network.connect(to: "mem://auth", options: ClientOptions(secret: Array("not the cluster secret 987654321".utf8), retry: .none))
        #expect(await asyncErrorCode { try await intruder.pullRows(PullRows(tableID: 3, keys: [1]), timeout: .seconds(5)) } == .unauthenticated)
        let member = try network.connect(to: "mem://auth", options: ClientOptions(secret: secret))
        #expect(try await pullAndCheck(member, keys: [1]))
        #expect(server.counters.unauthenticated == 1)
    }

    @Test func nobodyListeningMeansTimeout() async throws {
        let network = InMemoryNetwork()
        let client = try network.connect(to: "mem://nobody", options: ClientOptions(retry: .none))
        #expect(await asyncErrorCode { try await client.pullRows(PullRows(tableID: 3, keys: [1]), timeout: .milliseconds(30)) } == .timeout)
    }

    @Test func listeningTwiceOnOneAddressIsRefused() throws {
        let network = InMemoryNetwork()
        _ = try network.listen(on: "mem://x", options: ServerOptions(), handler: echoHandler)
        #expect(errorCode { try network.listen(on: "mem://x", options: ServerOptions(), handler: echoHandler) } == .config)
    }
}
