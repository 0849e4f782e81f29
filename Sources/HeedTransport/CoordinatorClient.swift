import HeedCore

/// What servers and workers say to the coordinator, in one place: registration,
/// readiness, heartbeats, barriers, clock advances and goodbye.
public final class CoordinatorClient: @unchecked Sendable {
    /// The underlying request client.
    public let client: any RequestClient
    /// The role this process plays.
    public let role: NodeRole

    public init(client: any RequestClient, role: NodeRole) {
        self.client = client
        self.role = role
    }

    /// Registers and returns the coordinator's reply. Workers wait here until every
    /// server is ready, so the timeout must cover cluster start-up.
    public func register(listenAddress: String, rankHint: Int?, timeout: Duration) async throws -> RegisterReply {
        try await client.register(Register(role: role, listenAddress: listenAddress, rankHint: rankHint.map(UInt32.init)), timeout: timeout)
    }

    /// Tells the coordinator this server has built its parameters and is serving.
    public func serverReady(rank: Int) async throws {
        _ = try await client.control(Control(name: "server-ready", body: Array("\(rank)".utf8)), timeout: .seconds(10))
    }

    /// Waits at barrier `name` (generation `generation`) until every worker arrived.
    /// - Returns: the release; a step barrier's is named `step/checkpoint/<generation>`
    ///   when the coordinator asks every worker to pause for a checkpoint after this step.
    @discardableResult
    public func barrier(_ name: String, rank: Int, generation: Int, timeout: Duration) async throws -> BarrierRelease {
        try await client.barrier(Barrier(name: name, rank: UInt32(rank), generation: UInt64(generation)), timeout: timeout)
    }

    /// Reports `clock` completed steps and waits until the staleness bound lets this
    /// worker start the next one.
    /// - Returns: `go`, or `checkpoint` (body: generation) when the worker must pause for a
    ///   checkpoint first and then ask again.
    @discardableResult
    public func advance(rank: Int, clock: Int, timeout: Duration) async throws -> Control {
        try await client.control(Control(name: "advance", body: Array("\(rank) \(clock)".utf8)), timeout: timeout)
    }

    /// Says where this worker stands before it waits at a barrier (JSON position), so a
    /// checkpoint can be taken while it waits.
    public func idle(position: [UInt8], timeout: Duration) async throws {
        _ = try await client.control(Control(name: "idle", body: position), timeout: timeout)
    }

    /// Pauses for a checkpoint (JSON arrival) until it is written.
    /// - Returns: `checkpoint-done` (body: the path) or `checkpoint-failed` (body: why).
    public func checkpointArrive(_ arrival: [UInt8], timeout: Duration) async throws -> Control {
        try await client.control(Control(name: "checkpoint-arrive", body: arrival), timeout: timeout)
    }

    /// Says this worker is done; it is no longer watched for heartbeats.
    public func finished(rank: Int) async throws {
        _ = try await client.control(Control(name: "finished", body: Array("\(rank)".utf8)), timeout: .seconds(10))
    }

    /// Sends heartbeats every `interval` until cancelled. `onStop` runs once when the
    /// coordinator asks this role to stop; `onLost` when no heartbeat has been answered for
    /// `giveUpAfter` (the cluster's failure timeout: a network blip shorter than that is
    /// ridden out, as the coordinator rides it out on its side), after which the loop ends.
    public func heartbeats(rank: Int, interval: Duration, giveUpAfter: Duration, clock: @escaping @Sendable () -> Int,
                           stats: @escaping @Sendable () -> [String: Double] = { [:] },
                           onStop: @escaping @Sendable () -> Void,
                           onLost: @escaping @Sendable (HeedError) -> Void,
                           onCommand: @escaping @Sendable (Control) -> Void = { _ in }) -> Task<Void, Never> {
        let role = role, client = client
        return Task.detached {
            var stopSent = false
            var lastAnswer = ContinuousClock.now
            while !Task.isCancelled {
                do {
                    let ack = try await client.heartbeat(Heartbeat(rank: UInt32(rank), role: role, clock: UInt64(max(clock(), 0)), stats: stats()),
                                                         timeout: interval * 4)
                    lastAnswer = .now
                    if ack.stopRequested && !stopSent { stopSent = true; onStop() }
                    if let command = ack.command { onCommand(command) }
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    let silent = ContinuousClock.now - lastAnswer
                    if silent >= giveUpAfter {
                        let message = (error as? HeedError)?.message ?? "\(error)"
                        onLost(HeedError((error as? HeedError)?.code ?? .peerFailed,
                                         "lost the coordinator at \(client.peerAddress): no heartbeat answered for \(silent) (\(message))"))
                        return
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
