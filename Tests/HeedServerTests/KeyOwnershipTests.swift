import Foundation
import Testing
import HeedCore
import HeedOptim
@testable import HeedServer
@testable import HeedTransport

/// A server serves only the keys the sharding plan gives it (key → slot → server): a row
/// request naming any other key is refused whole, with an error naming the key, its slot
/// and its owner, counted, and leaves the server's state as it was.
@Suite struct KeyOwnershipTests {
    static let dim = 4
    /// Few slots, so a handful of keys covers every server.
    static let slots = 64

    static func makeShard(rank: Int, servers: Int, syncWorkers: Int = 0) throws -> ParameterShard {
        try ParameterShard(rank: rank, serverCount: servers, slotCount: slots,
                           tableConfigs: [2: EmbeddingTableConfig(name: "item", dim: dim, optimizer: .adam(AdamConfig(lr: 0.1)))],
                           initialDense: [1, 2, 3], denseOptimizer: .sgd(SGDConfig(lr: 0.5)), syncWorkers: syncWorkers)
    }

    /// Keys of table 2 by owning server under the plan: `perServer` for each rank.
    static func keysByOwner(_ plan: ShardingPlan, perServer: Int = 5) -> [[UInt64]] {
        var out = [[UInt64]](repeating: [], count: plan.serverCount)
        var id: UInt64 = 0
        while out.contains(where: { $0.count < perServer }) {
            let key = FeatureKey(group: 2, id: id).rawValue
            id += 1
            let owner = plan.server(of: key)
            if out[owner].count < perServer { out[owner].append(key) }
        }
        return out.map { $0.sorted() }
    }

    /// Every table's rows as (key → step and values), to show a refusal changed nothing.
    static func rows(_ shard: ParameterShard) throws -> [UInt64: [Float]] {
        var out: [UInt64: [Float]] = [:]
        try shard.tables[2]!.forEachRow(plan: ShardingPlan(serverCount: 1)) { out[$0.key] = [Float($0.step)] + Array($0.values) }
        return out
    }

    /// Over real nng, with 2 and 3 servers and both push acknowledgements: each server
    /// answers its own keys, and refuses a pull or push that slips in one key of another
    /// server, whole (no row created or updated for the request's other keys either).
    @Test(arguments: [2, 3], [ParameterServer.PushAcknowledgement.afterApplying, .onReceipt])
    func aServerRefusesRowRequestsNamingAnotherServersKey(servers: Int, acknowledgement: ParameterServer.PushAcknowledgement) async throws {
        let plan = ShardingPlan(serverCount: servers, slotCount: Self.slots)
        let owned = Self.keysByOwner(plan)
        let tag = "\(getpid())-\(servers)-\(acknowledgement == .onReceipt ? "receipt" : "applied")-\(UInt32.random(in: 0...UInt32.max))"
        var running: [(ParameterServer, any RequestClient)] = []
        defer { for (s, c) in running { c.close(); s.close() } }
        for rank in 0..<servers {
            let server = try ParameterServer(transport: NNGTransport(), address: "ipc://\(NSTemporaryDirectory())heed-owner-\(tag)-\(rank).ipc",
                                             options: ServerOptions(concurrency: 2), shard: try Self.makeShard(rank: rank, servers: servers),
                                             pushAcknowledgement: acknowledgement)
            running.append((server, try NNGTransport().connect(to: server.address, options: ClientOptions(retry: .none))))
        }
        for (rank, (server, client)) in running.enumerated() {
            let shard = server.shard!
            let foreignOwner = (rank + 1) % servers
            let foreign = owned[foreignOwner][0]
            let mixed = (owned[rank] + [foreign]).sorted()
            let expected = ["key \(foreign)", "slot \(plan.slot(of: foreign))", "server \(foreignOwner)"]

            // A pull with one foreign key creates no row at all.
            let pullError = await #expect(throws: HeedError.self) {
                _ = try await client.pullRows(PullRows(tableID: 2, keys: mixed), timeout: .seconds(5))
            }
            #expect(expected.allSatisfy { pullError?.message.contains($0) == true }, "\(pullError?.message ?? "no error")")
            #expect(shard.tables[2]!.rowCount == 0)
            #expect(shard.foreignKeyRejections == 1)

            // Its own keys are served; then a push with one foreign key updates none of them.
            _ = try await client.pullRows(PullRows(tableID: 2, keys: owned[rank]), timeout: .seconds(5))
            let before = try Self.rows(shard)
            #expect(before.count == owned[rank].count)
            let pushError = await #expect(throws: HeedError.self) {
                _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(Self.dim), keys: mixed,
                                                       grads: [Float](repeating: 0.5, count: mixed.count * Self.dim), workerClock: 1),
                                             timeout: .seconds(5))
            }
            #expect(expected.allSatisfy { pushError?.message.contains($0) == true }, "\(pushError?.message ?? "no error")")
            try server.waitForAcknowledgedPushes(limit: .seconds(5))
            #expect(try Self.rows(shard) == before, "server \(rank) changed rows for a refused push")
            #expect(shard.foreignKeyRejections == 2)
            #expect(server.dedupStatistics.failedAfterAcknowledging == 0)

            // A push of its own keys applies, and the stats reply carries the count.
            _ = try await client.pushRows(PushRows(tableID: 2, dim: UInt32(Self.dim), keys: owned[rank],
                                                   grads: [Float](repeating: 0.5, count: owned[rank].count * Self.dim), workerClock: 2),
                                         timeout: .seconds(5))
            try server.waitForAcknowledgedPushes(limit: .seconds(5))
            #expect(owned[rank].allSatisfy { shard.tables[2]!.row(for: $0)?.step == 1 })
            let stats = try await client.control(Control(name: "stats", body: []), timeout: .seconds(5))
            #expect(String(decoding: stats.body, as: UTF8.self).contains("\"foreignKeyRejections\":2"))
        }
    }

    /// The shard itself refuses (the path every request reaches, in-process calls
    /// included), and a refused push in synchronous mode does not count as one of the
    /// step's arrivals.
    @Test func aRefusedSyncPushIsNotCountedAsAnArrival() throws {
        let plan = ShardingPlan(serverCount: 2, slotCount: Self.slots)
        let owned = Self.keysByOwner(plan)
        let shard = try Self.makeShard(rank: 0, servers: 2, syncWorkers: 2)
        #expect(throws: HeedError.self) { _ = try shard.pullRows(table: 2, keys: [owned[1][0]]) }
        _ = try shard.pullRows(table: 2, keys: owned[0])
        let grads = [Float](repeating: 0.25, count: owned[0].count * Self.dim)
        let mixed = owned[0] + [owned[1][0]]
        #expect(throws: HeedError.self) {
            try shard.pushRows(table: 2, keys: mixed, grads: grads + [0.25, 0.25, 0.25, 0.25], clock: 1)
        }
        #expect(shard.foreignKeyRejections == 2)
        let first = try shard.pushRows(table: 2, keys: owned[0], grads: grads, clock: 1)
        #expect(!first, "the refused push was counted as the step's first arrival")
        #expect(owned[0].allSatisfy { shard.tables[2]!.row(for: $0)?.step == 0 })
        let second = try shard.pushRows(table: 2, keys: owned[0], grads: grads, clock: 1)
        #expect(second)
        #expect(owned[0].allSatisfy { shard.tables[2]!.row(for: $0)?.step == 1 })
    }

    /// A slot count smaller than the server count is a config error, not a crash.
    @Test func tooFewSlotsForTheServersIsAConfigError() {
        let error = #expect(throws: HeedError.self) {
            _ = try ParameterShard(rank: 0, serverCount: 4, slotCount: 3, tableConfigs: [:], initialDense: [],
                                   denseOptimizer: .sgd(SGDConfig(lr: 0.5)))
        }
        #expect(error?.code == .config)
    }
}
