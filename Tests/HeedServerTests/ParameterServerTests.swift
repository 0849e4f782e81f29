import Foundation
import Testing
import HeedCore
import HeedOptim
@testable import HeedServer
@testable import HeedTransport

@Suite struct ParameterServerTests {
    let dim = 4
    let key: UInt64 = FeatureKey(group: 2, id: 5).rawValue

    func makeServer(_ name: String) throws -> (ParameterServer, any RequestClient) {
        let shard = try ParameterShard(rank: 0, serverCount: 1,
                                       tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                                       initialDense: [1, 2, 3], denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        let address = "ipc://\(NSTemporaryDirectory())heed-ps-\(name)-\(getpid()).ipc"
        let server = try ParameterServer(transport: NNGTransport(), address: address, options: ServerOptions(concurrency: 4), shard: shard)
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
}
