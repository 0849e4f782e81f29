import Foundation
import HeedCore
import HeedTransport

/// The coordinator role: answers registrations, heartbeats, barriers and clock
/// advances, watches for silent roles, and decides when the run is over.
///
/// Requests that must wait (a worker's registration until every server is ready, a
/// barrier until every worker arrived, a clock advance under the staleness bound) are
/// parked: the handler keeps the responder and replies later, so nobody polls.
public final class CoordinatorService: @unchecked Sendable {
    /// What the coordinator hands out.
    public struct Settings: Sendable {
        /// The run config, encoded (JSON); every role decodes it.
        public var config: [UInt8]
        /// Key → slot → server.
        public var plan: ShardingPlan
        /// Number of workers.
        public var workerCount: Int
        /// Data shard indices per worker rank.
        public var dataShards: [[UInt32]]
        /// Consistency mode and bound.
        public var mode: ConsistencyMode
        public var staleness: Int
        /// Silence that declares a role failed.
        public var failureTimeout: Duration
        /// How long the cluster may take to assemble.
        public var joinTimeout: Duration

        public init(config: [UInt8], plan: ShardingPlan, workerCount: Int, dataShards: [[UInt32]],
                    mode: ConsistencyMode, staleness: Int, failureTimeout: Duration, joinTimeout: Duration) {
            self.config = config
            self.plan = plan
            self.workerCount = workerCount
            self.dataShards = dataShards
            self.mode = mode
            self.staleness = staleness
            self.failureTimeout = failureTimeout
            self.joinTimeout = joinTimeout
        }
    }

    /// How the run ended.
    public enum Outcome: Sendable, Equatable {
        /// Every worker finished and every server was told to stop.
        case completed
        /// A role went silent or failed; the message names it.
        case failed(String)
        /// Asked to stop from outside (signal).
        case interrupted
    }

    public let settings: Settings
    private let membership: Membership
    private let lock = NSLock()
    private var readyServers: Set<Int> = []
    private var parkedRegistrations: [(RoleID, Responder)] = []
    private var parkedBarriers: [String: [Responder]] = [:]
    private var parkedAdvances: [(clock: Int, responder: Responder)] = []
    private var finishedWorkers: Set<Int> = []
    private var serversStopped: Set<Int> = []
    private var stopReason: String?
    private var interrupted = false
    private let log: @Sendable (String) -> Void

    /// A coordinator for `settings`; `log` receives one line per membership event.
    public init(settings: Settings, log: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.membership = Membership(serverCount: settings.plan.serverCount, workerCount: settings.workerCount,
                                     failureTimeoutNanoseconds: UInt64(settings.failureTimeout.components.seconds) * 1_000_000_000
                                        + UInt64(settings.failureTimeout.components.attoseconds / 1_000_000_000))
        self.log = log
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// The transport handler.
    public func handle(_ request: Request) throws -> Message? {
        let now = Self.now()
        switch request.message {
        case .register(let r):
            return try register(r, responder: request.responder, now: now)
        case .heartbeat(let beat):
            return lock.withLock {
                let id = RoleID(beat.role == .server ? .server : .worker, Int(beat.rank))
                try? membership.heard(from: id, clock: beat.role == .worker ? Int(beat.clock) : nil, now: now)
                let stop = stopReason != nil || (id.role == .server && finishedWorkers.count == settings.workerCount)
                if stop && id.role == .server { serversStopped.insert(id.rank) }
                return .heartbeatAck(HeartbeatAck(slowestClock: UInt64(membership.minimumWorkerClock), stopRequested: stop))
            }
        case .barrier(let b):
            let key = "\(b.name)#\(b.generation)"
            return try lock.withLock { () throws -> Message? in
                try failIfStopping()
                try? membership.heard(from: RoleID(.worker, Int(b.rank)), clock: nil, now: now)
                if membership.arrive(barrier: key, rank: Int(b.rank), participants: settings.workerCount) {
                    let release = Message.barrierRelease(BarrierRelease(name: b.name, generation: b.generation))
                    for r in parkedBarriers.removeValue(forKey: key) ?? [] { r.reply(release) }
                    return release
                }
                parkedBarriers[key, default: []].append(request.responder)
                return nil
            }
        case .control(let c):
            return try control(c, responder: request.responder, now: now)
        default:
            throw HeedError(.unsupported, "the coordinator does not handle \(request.message.kind) requests")
        }
    }

    private func register(_ r: Register, responder: Responder, now: UInt64) throws -> Message? {
        try lock.withLock { () throws -> Message? in
            try failIfStopping()
            let role: Role = r.role == .server ? .server : .worker
            guard r.role != .coordinator else { throw HeedError(.invalidInput, "a coordinator cannot register with a coordinator") }
            let id = try membership.register(role: role, address: r.listenAddress, rankHint: r.rankHint.map(Int.init), now: now)
            log("\(id) registered (\(r.listenAddress))")
            if role == .server {
                return .registerReply(RegisterReply(rank: UInt32(id.rank), serverAddresses: [], plan: settings.plan, dataShards: [], config: settings.config))
            }
            if let reply = workerReply(id) { return reply }
            parkedRegistrations.append((id, responder))
            return nil
        }
    }

    /// A worker's registration reply, once every server is ready.
    private func workerReply(_ id: RoleID) -> Message? {
        guard readyServers.count == settings.plan.serverCount, let addresses = membership.serverAddresses else { return nil }
        return .registerReply(RegisterReply(rank: UInt32(id.rank), serverAddresses: addresses, plan: settings.plan,
                                            dataShards: settings.dataShards[id.rank], config: settings.config))
    }

    private func control(_ c: Control, responder: Responder, now: UInt64) throws -> Message? {
        let rank = Int(String(decoding: c.body, as: UTF8.self).split(separator: " ").first ?? "") ?? -1
        switch c.name {
        case "server-ready":
            return lock.withLock {
                readyServers.insert(rank)
                log("server \(rank) ready (\(readyServers.count)/\(settings.plan.serverCount))")
                if readyServers.count == settings.plan.serverCount {
                    for (id, r) in parkedRegistrations { if let reply = workerReply(id) { r.reply(reply) } }
                    parkedRegistrations.removeAll()
                }
                return .controlReply(Control(name: "ok"))
            }
        case "advance":
            // Body: "<rank> <clock>": the worker finished `clock` steps and wants to start the next.
            let parts = String(decoding: c.body, as: UTF8.self).split(separator: " ")
            guard parts.count == 2, let clock = Int(parts[1]) else { throw HeedError(.invalidInput, "advance needs '<rank> <clock>'") }
            return try lock.withLock { () throws -> Message? in
                try failIfStopping()
                try membership.heard(from: RoleID(.worker, rank), clock: clock, now: now)
                releaseAdvances()
                if membership.mayProceed(clock: clock, staleness: settings.staleness) { return .controlReply(Control(name: "go")) }
                parkedAdvances.append((clock, responder))
                return nil
            }
        case "finished":
            return lock.withLock {
                finishedWorkers.insert(rank)
                membership.finished(RoleID(.worker, rank))
                // A finished worker no longer holds the slowest clock back.
                try? membership.heard(from: RoleID(.worker, rank), clock: Int.max / 2, now: now)
                releaseAdvances()
                log("worker \(rank) finished (\(finishedWorkers.count)/\(settings.workerCount))")
                return .controlReply(Control(name: "ok"))
            }
        default:
            throw HeedError(.unsupported, "unknown coordinator command '\(c.name)'")
        }
    }

    /// Replies to parked advances that the slowest clock now allows. Caller holds the lock.
    private func releaseAdvances() {
        parkedAdvances.removeAll { parked in
            guard membership.mayProceed(clock: parked.clock, staleness: settings.staleness) else { return false }
            parked.responder.reply(.controlReply(Control(name: "go")))
            return true
        }
    }

    /// Throws once the run is failing, so no new waits start. Caller holds the lock.
    private func failIfStopping() throws {
        if let stopReason { throw HeedError(.peerFailed, "the run is stopping: \(stopReason)") }
    }

    /// Stops the run: every parked request gets an error, and heartbeats say stop.
    private func fail(_ reason: String) {
        lock.withLock {
            guard stopReason == nil else { return }
            stopReason = reason
            let error = Message.error(ErrorReply(code: .peerFailed, message: "the run is stopping: \(reason)"))
            for (_, r) in parkedRegistrations { r.reply(error) }
            for (_, rs) in parkedBarriers { rs.forEach { $0.reply(error) } }
            for p in parkedAdvances { p.responder.reply(error) }
            parkedRegistrations.removeAll(); parkedBarriers.removeAll(); parkedAdvances.removeAll()
        }
    }

    /// Asks the run to stop (Ctrl-C at the launcher); `run` then returns `.interrupted`.
    public func interrupt() {
        lock.withLock { interrupted = true }
        fail("interrupted")
    }

    /// Watches the cluster until it completes or fails. Returns once every server has
    /// been told to stop (or has gone silent after being told), or a role failed.
    public func run(pollInterval: Duration = .milliseconds(100)) async -> Outcome {
        let start = Self.now()
        let join = UInt64(settings.joinTimeout.components.seconds) * 1_000_000_000
        var stopSince: UInt64?
        while true {
            try? await Task.sleep(for: pollInterval)
            let now = Self.now()
            let (failed, complete, finished, stopped, reason, wasInterrupted) = lock.withLock {
                (membership.failedMembers(now: now), membership.isComplete && readyServers.count == settings.plan.serverCount,
                 finishedWorkers.count == settings.workerCount, serversStopped.count == settings.plan.serverCount,
                 stopReason, interrupted)
            }
            if reason == nil, let first = failed.first {
                let seconds = Double(settings.failureTimeout.components.seconds)
                fail("\(first) sent nothing for \(seconds) s")
                log("\(first) missed its heartbeats for \(seconds) s; stopping the run")
            }
            if reason == nil, !complete, now - start > join {
                let missing = missingRoles()
                fail("the cluster did not assemble within \(settings.joinTimeout): missing \(missing)")
                log("the cluster did not assemble within \(settings.joinTimeout): missing \(missing)")
            }
            if finished && stopped { return .completed }
            if let reason = lock.withLock({ stopReason }) {
                // Give roles one heartbeat period or so to hear "stop" before exiting.
                if stopSince == nil { stopSince = now }
                if now - stopSince! > 2_000_000_000 || stopped {
                    return wasInterrupted || reason == "interrupted" ? .interrupted : .failed(reason)
                }
            }
        }
    }

    private func missingRoles() -> String {
        lock.withLock {
            var missing: [String] = []
            for k in 0..<settings.plan.serverCount where membership.members[RoleID(.server, k)] == nil { missing.append("server \(k)") }
            for k in 0..<settings.plan.serverCount where membership.members[RoleID(.server, k)] != nil && !readyServers.contains(k) { missing.append("server \(k) (not ready)") }
            for k in 0..<settings.workerCount where membership.members[RoleID(.worker, k)] == nil { missing.append("worker \(k)") }
            return missing.joined(separator: ", ")
        }
    }
}
