import HeedCore
import HeedTransport

/// Parameters on servers: splits keys by the sharding plan, sends one request per
/// server concurrently (each client keeps several in flight), and reassembles replies
/// in the caller's key order. Dense parameters are one flat vector; server k owns the
/// contiguous chunk `ShardingPlan.denseRange(rank: k, …)`.
public final class RemoteParameterAccess: ParameterAccess, @unchecked Sendable {
    /// Clients by server rank.
    public let servers: [any RequestClient]
    /// Key → slot → server.
    public let plan: ShardingPlan
    /// Row dimension per table.
    public let tableDims: [UInt8: Int]
    /// Length of the flat dense vector.
    public let denseCount: Int
    /// Synchronous mode: push to every server every step, empty pushes included, so
    /// servers can count a step's arrivals.
    public let pushToEveryServer: Bool
    /// Per-request timeout (retries reuse the request id).
    public let timeout: Duration

    public init(servers: [any RequestClient], plan: ShardingPlan, tableDims: [UInt8: Int], denseCount: Int,
                pushToEveryServer: Bool, timeout: Duration = .seconds(30)) {
        precondition(servers.count == plan.serverCount, "one client per server in the plan")
        self.servers = servers
        self.plan = plan
        self.tableDims = tableDims
        self.denseCount = denseCount
        self.pushToEveryServer = pushToEveryServer
        self.timeout = timeout
    }

    /// For sorted `keys`, the positions of each server's keys (still ascending).
    func partition(_ keys: [UInt64]) -> [[Int]] {
        var parts = [[Int]](repeating: [], count: servers.count)
        for (i, k) in keys.enumerated() { parts[plan.server(of: k)].append(i) }
        return parts
    }

    private func dim(_ table: UInt8) throws -> Int {
        guard let d = tableDims[table] else { throw HeedError(.invalidInput, "no table \(table) in this model") }
        return d
    }

    public func pullRows(table: UInt8, keys: [UInt64]) async throws -> [Float] {
        let dim = try dim(table)
        let parts = partition(keys)
        if let only = parts.indices.first(where: { !parts[$0].isEmpty }), parts[only].count == keys.count {
            // Every key on one server (always so with one server): the reply is already in
            // the caller's order, so copy it once, straight from the message.
            return try await servers[only].withPulledRows(PullRows(tableID: UInt32(table), keys: keys), timeout: timeout) { Array($0.values) }
        }
        var out = [Float](repeating: 0, count: keys.count * dim)
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (server, positions) in parts.enumerated() where !positions.isEmpty {
                let request = PullRows(tableID: UInt32(table), keys: positions.map { keys[$0] })
                let client = servers[server]
                let timeout = timeout
                let fetch: @Sendable () async throws -> (Int, [Float]) = {
                    (server, try await client.withPulledRows(request, timeout: timeout) { Array($0.values) })
                }
                // The child only copies the reply out: let it do so on the thread the reply
                // arrived on instead of waking a pool thread for it.
                if #available(macOS 15.0, *) {
                    group.addTask(executorPreference: client.completionExecutor, operation: fetch)
                } else {
                    group.addTask(operation: fetch)
                }
            }
            for try await (server, values) in group {
                for (j, position) in parts[server].enumerated() {
                    out.replaceSubrange(position * dim ..< (position + 1) * dim, with: values[j * dim ..< (j + 1) * dim])
                }
            }
        }
        return out
    }

    public func pushRowGradients(table: UInt8, keys: [UInt64], gradients: [Float], clock: Int) async throws {
        let dim = try dim(table)
        let parts = partition(keys)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (server, positions) in parts.enumerated() where !positions.isEmpty || pushToEveryServer {
                var grads = [Float](); grads.reserveCapacity(positions.count * dim)
                for p in positions { grads.append(contentsOf: gradients[p * dim ..< (p + 1) * dim]) }
                let push = PushRows(tableID: UInt32(table), dim: UInt32(dim), keys: positions.map { keys[$0] }, grads: grads, workerClock: UInt64(clock))
                let client = servers[server]
                let timeout = timeout
                let send: @Sendable () async throws -> Void = { _ = try await client.pushRows(push, timeout: timeout) }
                if #available(macOS 15.0, *) {
                    group.addTask(executorPreference: client.completionExecutor, operation: send)
                } else {
                    group.addTask(operation: send)
                }
            }
            try await group.waitForAll()
        }
    }

    /// Returns once every server has applied every push it acknowledged (pushes may be
    /// acknowledged on receipt in asynchronous mode); call after the last push.
    public func flush() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in servers {
                group.addTask {
                    let reply = try await client.control(Control(name: "flush", body: []), timeout: .seconds(90))
                    guard reply.name == "flushed" else {
                        throw HeedError(.protocolViolation, "\(client.peerAddress) answered flush with \"\(reply.name)\"")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    public func pullDense() async throws -> [Float] {
        var out = [Float](repeating: 0, count: denseCount)
        let count = denseCount, serverCount = servers.count
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (server, client) in servers.enumerated() {
                let timeout = timeout
                group.addTask { (server, try await client.pullDense(PullDense(tensorIDs: [0]), timeout: timeout).tensors.first?.values ?? []) }
            }
            for try await (server, chunk) in group {
                let range = ShardingPlan.denseRange(rank: server, serverCount: serverCount, count: count)
                guard chunk.count == range.count else {
                    throw HeedError(.protocolViolation, "server \(server) returned \(chunk.count) dense values, its chunk holds \(range.count)")
                }
                out.replaceSubrange(range, with: chunk)
            }
        }
        return out
    }

    public func pushDenseGradients(_ gradients: [Float], clock: Int) async throws {
        precondition(gradients.count == denseCount, "dense gradient has \(gradients.count) values, the model \(denseCount)")
        let count = denseCount, serverCount = servers.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (server, client) in servers.enumerated() {
                let range = ShardingPlan.denseRange(rank: server, serverCount: serverCount, count: count)
                guard !range.isEmpty || pushToEveryServer else { continue }
                let tensor = DenseTensor(id: 0, shape: [UInt32(range.count)], values: Array(gradients[range]))
                let timeout = timeout
                group.addTask { _ = try await client.pushDense(PushDense(tensors: [tensor], workerClock: UInt64(clock)), timeout: timeout) }
            }
            try await group.waitForAll()
        }
    }
}
