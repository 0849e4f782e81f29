import Foundation
import HeedCore
import Testing
@testable import HeedTransport

/// Real nng sockets over ipc and tcp loopback; every test has its own address.
@Suite struct NNGTransportTests {
    let transport = NNGTransport()

    @Test func pullRoundTripsOverIPC() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(), handler: echoHandler)
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions())
        defer { client.close() }
        #expect(try await pullAndCheck(client, keys: [1, 2, 3, 1 << 40]))
        #expect(try await client.pushRows(PushRows(tableID: 1, dim: 2, keys: [4, 9], grads: [1, 2, 3, 4]), timeout: .seconds(5)) == Ack(value: 2))
        #expect(server.counters.received == 2)
    }

    @Test func pullRoundTripsOverTCPWithAnEphemeralPort() async throws {
        let server = try transport.listen(on: "tcp://127.0.0.1:0", options: ServerOptions(), handler: echoHandler)
        defer { server.close() }
        #expect(!server.address.hasSuffix(":0"))
        let client = try transport.connect(to: server.address, options: ClientOptions())
        defer { client.close() }
        let keys = (0..<5000).map { UInt64($0) * 7 }
        #expect(try await pullAndCheck(client, keys: keys))
    }

    @Test func handlerSeesThePeerAndSenderID() async throws {
        let address = uniqueIPCAddress()
        let seen = Shared<[PeerInfo]>([])
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            seen.with { $0.append(request.peer) }
            return .ack(Ack())
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(senderID: 0xABC))
        defer { client.close() }
        _ = try await client.shutdown(Shutdown(reason: "test"), timeout: .seconds(5))
        #expect(seen.get.map(\.senderID) == [0xABC])
        #expect(seen.get.first?.address.hasPrefix("ipc://") == true)
    }

    /// The server replies only once four requests are waiting, so this passes only if the
    /// client really keeps four in flight (with fewer it would time out).
    @Test func severalRequestsAreInFlightAtOnce() async throws {
        let address = uniqueIPCAddress()
        let waiting = Shared<[Request]>([])
        let server = try transport.listen(on: address, options: ServerOptions(concurrency: 8)) { request in
            let batch = waiting.with { w -> [Request] in
                w.append(request)
                guard w.count == 4 else { return [] }
                defer { w = [] }
                return w
            }
            for r in batch { r.responder.reply(.barrierRelease(BarrierRelease(name: "b", generation: r.envelope.requestID))) }
            return nil
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(maxInFlight: 4, retry: .none))
        defer { client.close() }
        for wave in 0..<3 {
            let released = try await withThrowingTaskGroup(of: BarrierRelease.self) { group in
                for rank in 0..<4 {
                    group.addTask { try await client.barrier(Barrier(name: "b", rank: UInt32(rank), generation: UInt64(wave)), timeout: .seconds(5)) }
                }
                return try await group.reduce(into: [BarrierRelease]()) { $0.append($1) }
            }
            #expect(released.count == 4)
        }
        #expect(server.counters.replied == 12)
    }

    @Test func moreCallersThanContextsWaitTheirTurn() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(concurrency: 4), handler: echoHandler)
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(maxInFlight: 2))
        defer { client.close() }
        let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<40 { group.addTask { try await pullAndCheck(client, keys: [UInt64(i), UInt64(i) + 1000]) } }
            return try await group.reduce(true) { $0 && $1 }
        }
        #expect(ok)
        #expect(server.counters.received == 40)
    }

    @Test func deadPeerGivesATypedTimeout() async throws {
        let client = try transport.connect(to: uniqueIPCAddress(), options: ClientOptions(retry: RetryPolicy(attempts: 2, backoff: .milliseconds(5))))
        defer { client.close() }
        let code = await asyncErrorCode { try await client.pullRows(PullRows(tableID: 1, keys: [1]), timeout: .milliseconds(100)) }
        #expect(code == .timeout)
    }

    @Test func peerThatNeverAnswersGivesATypedTimeout() async throws {
        let address = uniqueIPCAddress()
        let parked = Shared<[Responder]>([])
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            parked.with { $0.append(request.responder) }
            return nil
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: .none))
        defer { client.close() }
        #expect(await asyncErrorCode { try await client.pullRows(PullRows(tableID: 1, keys: [1]), timeout: .milliseconds(150)) } == .timeout)
        #expect(parked.get.count == 1)
    }

    /// The first copy of every push is applied but its reply is "lost" (never sent); the
    /// client's retry reuses the request id and gets the cached reply without a second apply.
    @Test func retriedPushIsDeduplicated() async throws {
        let address = uniqueIPCAddress()
        let cache = DedupCache()
        let applied = Shared(0)
        let firstCopies = Shared<[UInt64: Responder]>([:])
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            let reply = cache.handle(request) { .ack(Ack(value: UInt64(applied.with { $0 += 1; return $0 }))) }
            let isFirst = firstCopies.with { f -> Bool in
                guard f[request.envelope.requestID] == nil else { return false }
                f[request.envelope.requestID] = request.responder
                return true
            }
            return isFirst ? nil : reply
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: RetryPolicy(attempts: 3, backoff: .milliseconds(5))))
        defer { client.close() }
        for i in 1...3 {
            let ack = try await client.pushRows(PushRows(tableID: 1, dim: 1, keys: [UInt64(i)], grads: [0.5]), timeout: .milliseconds(200))
            #expect(ack.value == UInt64(i))
        }
        #expect(applied.get == 3)
        #expect(cache.statistics.duplicates == 3)
        #expect(server.counters.received == 6)
    }

    @Test func malformedBytesGetAnErrorReplyAndTheServerKeepsServing() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(concurrency: 2), handler: echoHandler)
        defer { server.close() }
        let raw = try NNGClient(address: address, options: ClientOptions())
        defer { raw.close() }
        var rng = SeededGenerator(seed: 77)
        let valid = try WireCodec().encode(Envelope(senderID: 9, requestID: 10, message: .pullRows(PullRows(tableID: 1, keys: [1, 2, 3]))))
        let inputs: [[UInt8]] = [
            [],
            Array("GET / HTTP/1.1\r\n\r\n".utf8),
            (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
            Array(valid.prefix(40)),
            valid.enumerated().map { $0.offset == 12 ? 0xFF : $0.element },  // payload length lies
        ]
        for bytes in inputs {
            let reply = try WireCodec().decode(try await raw.exchangeRaw(bytes, timeout: .seconds(5)))
            guard case .error(let e) = reply.message else { Issue.record("expected an error reply for \(bytes.count) bytes"); continue }
            #expect(e.code == .protocolViolation)
        }
        #expect(server.counters.malformed == inputs.count)
        let client = try transport.connect(to: address, options: ClientOptions())
        defer { client.close() }
        #expect(try await pullAndCheck(client, keys: [42]))
    }

    @Test func wrongOrMissingSecretIsRejectedAsUnauthenticated() async throws {
        let address = uniqueIPCAddress()
        let secret = Array("nng cluster secret, 32 bytes....".utf8)
        let server = try transport.listen(on: address, options: ServerOptions(secret: secret), handler: echoHandler)
        defer { server.close() }
        for intruderSecret in [nil, Array("a different secret of 32 bytes..".utf8)] {
            let intruder = try transport.connect(to: address, options: ClientOptions(secret: intruderSecret, retry: .none))
            defer { intruder.close() }
            #expect(await asyncErrorCode { try await intruder.pullRows(PullRows(tableID: 3, keys: [1]), timeout: .seconds(5)) } == .unauthenticated)
        }
        #expect(server.counters.unauthenticated == 2)
        let member = try transport.connect(to: address, options: ClientOptions(secret: secret))
        defer { member.close() }
        #expect(try await pullAndCheck(member, keys: [1, 2]))
    }

    @Test func handlerErrorsReachTheClientWithTheirCode() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(), handler: echoHandler)
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions())
        defer { client.close() }
        #expect(await asyncErrorCode { try await client.pullDense(PullDense(tensorIDs: [1]), timeout: .seconds(5)) } == .unsupported)
        #expect(server.counters.handlerErrors == 1)
    }

    /// nng drops a message above the receive limit and the connection with it; the
    /// server never buffers it and keeps serving small requests.
    @Test func oversizedMessageIsRefusedAndTheServerKeepsServing() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(maxMessageSize: 4096), handler: echoHandler)
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: .none))
        defer { client.close() }
        let big = PushRows(tableID: 1, dim: 64, keys: Array(0..<64), grads: [Float](repeating: 1, count: 64 * 64))
        let code = await asyncErrorCode { try await client.pushRows(big, timeout: .milliseconds(500)) }
        #expect(code == .peerFailed || code == .timeout)
        #expect(server.counters.received == 0)
        let ok = try await client.request(.pullRows(PullRows(tableID: 3, keys: [1])), timeout: .seconds(2), retry: RetryPolicy(attempts: 5, backoff: .milliseconds(20)))
        #expect(ok.kind == .rowsReply)
    }

    @Test func cancellingTheTaskEndsAPendingRequest() async throws {
        let address = uniqueIPCAddress()
        let parked = Shared<[Responder]>([])
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            parked.with { $0.append(request.responder) }
            return nil
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: .none))
        defer { client.close() }
        let task = Task { try await client.pullRows(PullRows(tableID: 1, keys: [1]), timeout: .seconds(60)) }
        while parked.get.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        let code = await asyncErrorCode { try await task.value }
        #expect(code == .cancelled)
        // The client is still usable afterwards.
        parked.with { $0 = [] }
        let next = Task { try await client.request(.control(Control(name: "x")), timeout: .seconds(5), retry: .none) }
        while parked.get.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        parked.get[0].reply(.controlReply(Control(name: "y")))
        #expect(try await next.value == .controlReply(Control(name: "y")))
    }

    @Test func closedClientFailsWithCancelled() async throws {
        let client = try transport.connect(to: uniqueIPCAddress(), options: ClientOptions(retry: .none))
        client.close()
        #expect(await asyncErrorCode { try await client.pullRows(PullRows(tableID: 1, keys: [1]), timeout: .seconds(1)) } == .cancelled)
    }

    @Test func badAddressesAreConfigErrors() {
        #expect(errorCode { try NNGClient(address: "http://x", options: ClientOptions()) } == .config)
        #expect(errorCode { try transport.listen(on: "tcp://127.0.0.1:notaport", options: ServerOptions(), handler: echoHandler) } == .transport)
    }
}
