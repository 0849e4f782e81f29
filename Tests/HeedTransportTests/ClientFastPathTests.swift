import Foundation
import HeedCore
import Testing
@testable import HeedTransport

/// The client's fast paths: rows read in place from the reply message, and tasks that
/// continue on the nng callback thread (`NNGCompletionExecutor`).
@Suite struct ClientFastPathTests {
    let transport = NNGTransport()

    /// `withPulledRows` sees the same rows as `pullRows`, over nng and in memory.
    @Test(arguments: ["nng", "memory"])
    func rowsReadInPlaceEqualTheCopiedRows(_ kind: String) async throws {
        let network: any Transport = kind == "nng" ? transport : InMemoryNetwork()
        let address = kind == "nng" ? uniqueIPCAddress() : "mem://fast"
        let server = try network.listen(on: address, options: ServerOptions(), handler: echoHandler)
        defer { server.close() }
        let client = try network.connect(to: server.address, options: ClientOptions())
        defer { client.close() }
        let pull = PullRows(tableID: 3, keys: [1, 5, 9, 1 << 33])
        let copied = try await client.pullRows(pull, timeout: .seconds(5))
        let inPlace = try await client.withPulledRows(pull, timeout: .seconds(5)) { rows in
            (rows.tableID, rows.dim, rows.rowCount, Array(rows.values))
        }
        #expect(inPlace.0 == 3 && inPlace.1 == 4 && inPlace.2 == 4)
        #expect(inPlace.3 == copied.values)
    }

    /// Error replies, wrong row counts and wrong reply kinds fail the in-place pull just as
    /// they fail `pullRows`, without calling the body.
    @Test func inPlacePullRejectsBadReplies() async throws {
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            guard case .pullRows(let pull) = request.message else { throw HeedError(.unsupported, "pulls only") }
            switch pull.tableID {
            case 1: throw HeedError(.notFound, "no table 1")
            case 2: return .rowsReply(RowsReply(tableID: 2, dim: 2, values: [1, 2]))  // one row for any keys
            default: return .ack(Ack())
            }
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: .none))
        defer { client.close() }
        let called = Shared(false)
        for (table, expected) in [(UInt32(1), HeedError.Code.notFound), (2, .protocolViolation), (3, .protocolViolation)] {
            let code = await asyncErrorCode {
                try await client.withPulledRows(PullRows(tableID: table, keys: [1, 2, 3]), timeout: .seconds(5)) { _ in called.with { $0 = true } }
            }
            #expect(code == expected, "table \(table)")
        }
        #expect(!called.get)
        // An error thrown by the body reaches the caller unchanged.
        let thrown = await asyncErrorCode {
            try await client.withPulledRows(PullRows(tableID: 2, keys: [7]), timeout: .seconds(5)) { _ in throw HeedError(.corrupt, "body") }
        }
        #expect(thrown == .corrupt)
    }

    /// A timed-out in-place pull is retried with the same request id, like `pullRows`.
    @Test func inPlacePullRetriesATimeout() async throws {
        let address = uniqueIPCAddress()
        let seen = Shared<[UInt64]>([])
        let server = try transport.listen(on: address, options: ServerOptions()) { request in
            let first = seen.with { s -> Bool in s.append(request.envelope.requestID); return s.count == 1 }
            // Drop the first copy (keep the responder alive until it has timed out).
            if first {
                let responder = request.responder
                Task { try? await Task.sleep(for: .seconds(1)); _ = responder }
                return nil
            }
            return try echoHandler(request)
        }
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(retry: RetryPolicy(attempts: 3, backoff: .milliseconds(1))))
        defer { client.close() }
        let count = try await client.withPulledRows(PullRows(tableID: 3, keys: [4]), timeout: .milliseconds(200)) { $0.rowCount }
        #expect(count == 1)
        // On a loaded host a retry may time out too: every copy must carry the first request's id.
        let ids = seen.get
        #expect(ids.count >= 2 && ids.allSatisfy { $0 == ids[0] })
    }

    /// Tasks preferring the completion executor run many requests to completion (so
    /// resuming on the callback thread neither loses nor doubles a continuation), and one
    /// of them may close the client from the callback thread without deadlocking.
    @Test func tasksOnTheCompletionExecutorFinishAndMayClose() async throws {
        guard #available(macOS 15.0, *) else { return }
        let address = uniqueIPCAddress()
        let server = try transport.listen(on: address, options: ServerOptions(concurrency: 4), handler: echoHandler)
        defer { server.close() }
        let client = try transport.connect(to: address, options: ClientOptions(maxInFlight: 4))
        #expect(client.completionExecutor != nil)
        let done = try await withThrowingTaskGroup(of: Int.self) { group in
            for lane in 0..<6 {
                group.addTask(executorPreference: client.completionExecutor) {
                    var ok = 0
                    for i in 0..<50 where try await pullAndCheck(client, keys: [UInt64(lane), UInt64(100 + i)]) { ok += 1 }
                    return ok
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(done == 300)
        try await Task(executorPreference: client.completionExecutor) {
            _ = try await client.pullRows(PullRows(tableID: 3, keys: [1]), timeout: .seconds(5))
            client.close()
        }.value
        #expect(await asyncErrorCode { try await client.pullRows(PullRows(tableID: 3, keys: [1]), timeout: .seconds(5)) } == .cancelled)
    }
}
