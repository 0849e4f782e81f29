import Foundation
import HeedCheckpoint
import CoreMetrics
import HeedCore
import HeedObserve
import HeedTransport
import Logging

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
        /// Checkpoints to take (from the run config).
        public var checkpoint: CheckpointConfig
        /// The global step of the checkpoint the run resumed from (0 = fresh start).
        public var resumedStep: Int

        public init(config: [UInt8], plan: ShardingPlan, workerCount: Int, dataShards: [[UInt32]],
                    mode: ConsistencyMode, staleness: Int, failureTimeout: Duration, joinTimeout: Duration,
                    checkpoint: CheckpointConfig = CheckpointConfig(), resumedStep: Int = 0) {
            self.checkpoint = checkpoint
            self.resumedStep = resumedStep
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
    /// Figures finished workers reported with their goodbye, by rank.
    private var workerFigures: [Int: WorkerFigures] = [:]
    private var serversStopped: Set<Int> = []
    private var stopReason: String?
    private var interrupted = false
    private let telemetry: Telemetry
    /// Samples/s each worker reported in its last heartbeat; guarded by `lock`.
    private var workerRates: [Int: Double] = [:]
    /// When the last checkpoint was written (monotonic ns); guarded by `lock`.
    private var lastCheckpointWritten: UInt64?
    private var heartbeatAges: [RoleID: Gauge] = [:]
    private lazy var checkpointAge = Gauge(label: "heed_checkpoint_age_seconds", dimensions: telemetry.dimensions, factory: telemetry.metrics)
    private lazy var clusterRate = Gauge(label: "heed_cluster_samples_per_second", dimensions: telemetry.dimensions, factory: telemetry.metrics)
    private lazy var checkpointSeconds = CoreMetrics.Timer(label: "heed_checkpoint_seconds", dimensions: telemetry.dimensions, factory: telemetry.metrics)
    /// Checkpoint bookkeeping; guarded by `lock`.
    private let checkpoints: CheckpointSchedule
    /// Workers paused for the pending checkpoint, and `checkpoint-now` callers, answered when it ends.
    private var checkpointArrivals: [Responder] = []
    private var checkpointWaiters: [Responder] = []
    /// Barriers complete while a checkpoint was being written, released after it.
    private var deferredReleases: [(key: String, ranks: [Int], release: Message)] = []
    /// Opens a client to a server (nil: this coordinator cannot take checkpoints).
    private let connectToServer: (@Sendable (String) throws -> any RequestClient)?
    private var serverClients: [any RequestClient] = []
    /// When the running save began (ns), for the log.
    private var checkpointBegan: UInt64 = 0
    private var lastStallReport: UInt64 = 0

    /// A coordinator for `settings`; `telemetry` receives a log line per membership event,
    /// metrics-log events (checkpoints, failures) and metrics (heartbeat age per peer,
    /// checkpoint age, the workers' samples/s together).
    /// `connectToServer` lets it ask servers to write checkpoints.
    public init(settings: Settings, telemetry: Telemetry,
                connectToServer: (@Sendable (String) throws -> any RequestClient)? = nil) {
        self.settings = settings
        self.connectToServer = connectToServer
        self.checkpoints = CheckpointSchedule(config: settings.checkpoint, workerCount: settings.workerCount,
                                              resumedStep: settings.resumedStep, now: Self.now())
        self.membership = Membership(serverCount: settings.plan.serverCount, workerCount: settings.workerCount,
                                     failureTimeoutNanoseconds: UInt64(settings.failureTimeout.components.seconds) * 1_000_000_000
                                        + UInt64(settings.failureTimeout.components.attoseconds / 1_000_000_000))
        self.telemetry = telemetry
    }

    private func log(_ line: String, level: Logger.Level = .info) {
        telemetry.logger.log(level: level, "\(line)")
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
                if id.role == .worker, let rate = beat.stats["samplesPerSecond"] { workerRates[id.rank] = rate }
                var command: Control?
                if id.role == .worker {
                    checkpoints.observe(rank: id.rank, clock: Int(beat.clock))
                    _ = requestCheckpointIfDue(now: now)
                    // Asynchronous workers hear of a checkpoint here; sync and bounded ones
                    // only through their step barrier or clock advance, so all pause together.
                    if settings.mode == .async, checkpoints.isPending, !checkpoints.saving, !checkpoints.hasArrived(rank: id.rank) {
                        command = Control(name: "checkpoint", body: Array("\(checkpoints.requested)".utf8))
                    }
                }
                let stop = stopReason != nil || (id.role == .server && finishedWorkers.count == settings.workerCount)
                if stop && id.role == .server { serversStopped.insert(id.rank) }
                return .heartbeatAck(HeartbeatAck(slowestClock: UInt64(membership.minimumWorkerClock), stopRequested: stop, command: command))
            }
        case .barrier(let b):
            let key = "\(b.name)#\(b.generation)"
            return try lock.withLock { () throws -> Message? in
                try failIfStopping()
                try? membership.heard(from: RoleID(.worker, Int(b.rank)), clock: b.name == "step" ? Int(b.generation) : nil, now: now)
                if b.name == "step" {
                    checkpoints.observe(rank: Int(b.rank), clock: Int(b.generation))
                    _ = requestCheckpointIfDue(now: now)
                }
                guard membership.arrive(barrier: key, rank: Int(b.rank), participants: settings.workerCount) else {
                    parkedBarriers[key, default: []].append(request.responder)
                    return nil
                }
                var name = b.name
                // Synchronous workers hear of a checkpoint in the step release, all at the same step.
                if b.name == "step", checkpoints.isPending, !checkpoints.saving {
                    name = "step/checkpoint/\(checkpoints.requested)"
                }
                let release = Message.barrierRelease(BarrierRelease(name: name, generation: b.generation))
                if b.name == "train-end" && settings.checkpoint.isEnabled && settings.checkpoint.atEnd && !checkpoints.trainingEnded {
                    // The final checkpoint: every worker is idle here, flushed, at its last position.
                    checkpoints.trainingEnded = true
                    checkpoints.request(now: now)
                    log("training ended: taking the final checkpoint")
                }
                if checkpoints.saving || (b.name != "step" && checkpoints.isPending && startCheckpointIfReady()) {
                    // Nobody may push until the checkpoint is written: release afterwards.
                    parkedBarriers[key, default: []].append(request.responder)
                    deferredReleases.append((key, Array(0..<settings.workerCount), release))
                    return nil
                }
                checkpoints.trainingEnded = checkpoints.trainingEnded || b.name == "train-end"
                if b.name != "step" { checkpoints.resumed(ranks: 0..<settings.workerCount) }
                for r in parkedBarriers.removeValue(forKey: key) ?? [] { r.reply(release) }
                return release
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
                checkpoints.observe(rank: rank, clock: clock)
                _ = requestCheckpointIfDue(now: now)
                // A bounded worker hears of a checkpoint here (instead of "go") and pauses for it.
                if checkpoints.isPending, !checkpoints.saving, !checkpoints.hasArrived(rank: rank) {
                    return .controlReply(checkpointCommand)
                }
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
                if let space = c.body.firstIndex(of: UInt8(ascii: " ")),
                   let figures = try? JSONDecoder().decode(WorkerFigures.self, from: Data(c.body[(space + 1)...])) {
                    workerFigures[rank] = figures
                }
                if finishedWorkers.count == settings.workerCount, workerFigures.count == settings.workerCount {
                    let all = workerFigures.values
                    log(String(format: "cluster totals: %d workers, %d steps, %d samples, %.0f samples/s in all",
                               all.count, all.reduce(0) { $0 + $1.steps }, all.reduce(0) { $0 + $1.samples },
                               all.reduce(0) { $0 + $1.samplesPerSecond }))
                }
                return .controlReply(Control(name: "ok"))
            }
        case "idle":
            // Body: the worker's position (JSON); it is about to wait at a barrier.
            let position = try Self.decodePosition(c.body)
            return lock.withLock {
                checkpoints.becameIdle(position)
                _ = startCheckpointIfReady()
                return .controlReply(Control(name: "ok"))
            }
        case "checkpoint-arrive":
            // Body: CheckpointArrival (JSON): the worker paused at a step boundary.
            let arrival: CheckpointArrival
            do { arrival = try JSONDecoder().decode(CheckpointArrival.self, from: Data(c.body)) } catch {
                throw HeedError(.invalidInput, "checkpoint-arrive needs a JSON arrival: \(error)")
            }
            try checkRank(arrival.position.rank)
            return try lock.withLock { () throws -> Message? in
                try failIfStopping()
                guard checkpoints.arrive(arrival.position, generation: arrival.generation) else {
                    return .controlReply(Control(name: "checkpoint-done", body: Array("\(arrival.generation)".utf8)))
                }
                checkpointArrivals.append(responder)
                _ = startCheckpointIfReady()
                return nil
            }
        case "leaving":
            // Body: "<rank> <role>": a role stopped by a signal before the run completed.
            let parts = String(decoding: c.body, as: UTF8.self).split(separator: " ")
            let who = parts.count == 2 ? "\(parts[1]) \(rank)" : "a role"
            log("\(who) is leaving (stopped by a signal); stopping the run", level: .warning)
            telemetry.events.write("failure", ["detail": .string("\(who) left: stopped by a signal")])
            fail("\(who) left: stopped by a signal")
            return .controlReply(Control(name: "ok"))
        case "checkpoint-now":
            return try lock.withLock { () throws -> Message? in
                try failIfStopping()
                guard settings.checkpoint.isEnabled, connectToServer != nil else {
                    throw HeedError(.unsupported, "this run takes no checkpoints ([checkpoint] dir is not set)")
                }
                guard !checkpoints.trainingEnded else { throw HeedError(.unsupported, "training has ended; its final checkpoint is taken") }
                let fresh = !checkpoints.isPending
                let generation = checkpoints.request(now: now)
                if fresh { checkpointRequested(reason: "requested by \(String(decoding: c.body, as: UTF8.self))", generation: generation) }
                checkpointWaiters.append(responder)
                return nil
            }
        default:
            throw HeedError(.unsupported, "unknown coordinator command '\(c.name)'")
        }
    }

    private static func decodePosition(_ body: [UInt8]) throws -> WorkerPosition {
        do { return try JSONDecoder().decode(WorkerPosition.self, from: Data(body)) } catch {
            throw HeedError(.invalidInput, "expected a worker position (JSON): \(error)")
        }
    }

    private func checkRank(_ rank: Int) throws {
        guard rank >= 0, rank < settings.workerCount else {
            throw HeedError(.invalidInput, "worker rank \(rank) is outside 0..<\(settings.workerCount)")
        }
    }

    // MARK: - Checkpoints

    /// What tells a bounded or asynchronous worker to pause for the pending checkpoint.
    private var checkpointCommand: Control { Control(name: "checkpoint", body: Array("\(checkpoints.requested)".utf8)) }

    /// Asks for a checkpoint if one is due. Caller holds the lock.
    private func requestCheckpointIfDue(now: UInt64) -> Bool {
        guard connectToServer != nil, checkpoints.requestIfDue(now: now) else { return false }
        checkpointRequested(reason: "due at global step \(checkpoints.globalStep)", generation: checkpoints.requested)
        return true
    }

    /// A new generation was asked for: bounded workers parked on the staleness bound must
    /// hear of it, or the leaders wait for a checkpoint the laggards never reach. Caller holds the lock.
    private func checkpointRequested(reason: String, generation: Int) {
        log("checkpoint \(generation) \(reason)")
        if settings.mode == .bounded {
            for p in parkedAdvances { p.responder.reply(.controlReply(checkpointCommand)) }
            parkedAdvances.removeAll()
        }
        _ = startCheckpointIfReady()
    }

    /// Starts writing the pending checkpoint if every worker has paused. Caller holds the lock.
    /// - Returns: true if a save is running now.
    private func startCheckpointIfReady() -> Bool {
        if checkpoints.saving { return true }
        guard let (generation, positions) = checkpoints.beginIfReady() else { return false }
        checkpointBegan = Self.now()
        let clients: [any RequestClient]
        do {
            clients = try serverClientsLocked()
        } catch {
            log("checkpoint \(generation) not taken: \(error)", level: .warning)
            telemetry.events.write("failure", ["detail": .string("checkpoint \(generation) not taken: \(error)")])
            finishCheckpoint(generation: generation, outcome: .failure(error as? HeedError ?? HeedError(.io, "\(error)")))
            return false
        }
        let config = settings.checkpoint, plan = settings.plan, runConfig = settings.config
        Task.detached { [weak self] in
            let outcome: Result<(step: Int, path: String), HeedError>
            do {
                outcome = .success(try await CheckpointWriter.write(generation: generation, positions: positions, servers: clients,
                                                                    config: config, plan: plan, runConfig: runConfig))
            } catch {
                outcome = .failure(error as? HeedError ?? HeedError(.io, "\(error)"))
            }
            guard let self else { return }
            self.lock.withLock { self.finishCheckpoint(generation: generation, outcome: outcome) }
        }
        return true
    }

    /// Clients to every server in rank order, opened once. Caller holds the lock.
    private func serverClientsLocked() throws -> [any RequestClient] {
        if serverClients.count == settings.plan.serverCount { return serverClients }
        guard let connect = connectToServer, let addresses = membership.serverAddresses else {
            throw HeedError(.unsupported, "not every server has registered")
        }
        serverClients = try addresses.map(connect)
        return serverClients
    }

    /// Answers everyone waiting on the checkpoint and releases barriers held for it. Caller holds the lock.
    private func finishCheckpoint(generation: Int, outcome: Result<(step: Int, path: String), HeedError>) {
        let now = Self.now()
        let reply: Message
        switch outcome {
        case .success(let done):
            checkpoints.finish(generation: generation, step: done.step, now: now)
            let seconds = Double(now - checkpointBegan) / 1e9
            log(String(format: "checkpoint %d written: %@ (workers paused %.3f s)", generation, done.path, seconds))
            lastCheckpointWritten = now
            checkpointSeconds.recordSeconds(seconds)
            telemetry.events.write("checkpoint", ["step": .int(done.step), "dir": .string(done.path), "ms": .double(1000 * seconds)])
            reply = .controlReply(Control(name: "checkpoint-done", body: Array(done.path.utf8)))
        case .failure(let error):
            checkpoints.finish(generation: generation, step: nil, now: now)
            log("checkpoint \(generation) failed: \(error.message)", level: .warning)
            telemetry.events.write("failure", ["detail": .string("checkpoint \(generation) failed: \(error.message)")])
            reply = .controlReply(Control(name: "checkpoint-failed", body: Array(error.message.utf8)))
        }
        for r in checkpointArrivals { r.reply(reply) }
        checkpointArrivals.removeAll()
        for r in checkpointWaiters {
            if case .failure(let error) = outcome { r.reply(.error(ErrorReply(code: error.code, message: error.message))) } else { r.reply(reply) }
        }
        checkpointWaiters.removeAll()
        for d in deferredReleases {
            checkpoints.resumed(ranks: d.ranks)
            for r in parkedBarriers.removeValue(forKey: d.key) ?? [] { r.reply(d.release) }
        }
        deferredReleases.removeAll()
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
            for r in checkpointArrivals + checkpointWaiters { r.reply(error) }
            parkedRegistrations.removeAll(); parkedBarriers.removeAll(); parkedAdvances.removeAll()
            checkpointArrivals.removeAll(); checkpointWaiters.removeAll(); deferredReleases.removeAll()
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
        var lastMetrics: UInt64 = 0
        while true {
            try? await Task.sleep(for: pollInterval)
            let now = Self.now()
            if now - lastMetrics >= 1_000_000_000 {
                lastMetrics = now
                updateMetrics(now: now)
            }
            lock.withLock {
                guard stopReason == nil else { return }
                _ = requestCheckpointIfDue(now: now)
                // A checkpoint nobody can finish must say whom it waits for.
                if let (generation, since, missing) = checkpoints.stalled(now: now, after: settings.failureTimeout), now - lastStallReport > 10_000_000_000 {
                    lastStallReport = now
                    log(String(format: "checkpoint %d has waited %.0f s for worker %@ to pause", generation, Double(now - since) / 1e9,
                               missing.map(String.init).joined(separator: ", worker ")))
                }
            }
            let (failed, complete, finished, stopped, reason, wasInterrupted) = lock.withLock {
                (membership.failedMembers(now: now), membership.isComplete && readyServers.count == settings.plan.serverCount,
                 finishedWorkers.count == settings.workerCount, serversStopped.count == settings.plan.serverCount,
                 stopReason, interrupted)
            }
            if reason == nil, let first = failed.first {
                let seconds = Double(settings.failureTimeout.components.seconds)
                fail("\(first) sent nothing for \(seconds) s")
                log("\(first) missed its heartbeats for \(seconds) s; stopping the run", level: .error)
                telemetry.events.write("failure", ["detail": .string("\(first) sent nothing for \(seconds) s")])
            }
            if reason == nil, !complete, now - start > join {
                let missing = missingRoles()
                fail("the cluster did not assemble within \(settings.joinTimeout): missing \(missing)")
                log("the cluster did not assemble within \(settings.joinTimeout): missing \(missing)", level: .error)
                telemetry.events.write("failure", ["detail": .string("the cluster did not assemble: missing \(missing)")])
            }
            if finished && stopped { return .completed }
            if let reason = lock.withLock({ stopReason }) {
                // Give roles one heartbeat period or so to hear "stop" before exiting.
                if stopSince == nil { stopSince = now }
                // A checkpoint being written ends (written, or failed and removed) before the
                // coordinator does, so no half-written checkpoint directory is left behind.
                if lock.withLock({ checkpoints.saving }) && now - stopSince! < 120_000_000_000 { continue }
                if now - stopSince! > 2_000_000_000 || stopped {
                    return wasInterrupted || reason == "interrupted" ? .interrupted : .failed(reason)
                }
            }
        }
    }

    /// Heartbeat age per registered peer, checkpoint age (once one was written), and the
    /// workers' reported samples/s together.
    private func updateMetrics(now: UInt64) {
        lock.withLock {
            for (id, member) in membership.members where !member.finished {
                if heartbeatAges[id] == nil {
                    heartbeatAges[id] = Gauge(label: "heed_heartbeat_age_seconds",
                                              dimensions: telemetry.dimensions + [("peer_role", "\(id.role)"), ("peer_rank", "\(id.rank)")],
                                              factory: telemetry.metrics)
                }
                heartbeatAges[id]!.record(Double(now > member.lastSeen ? now - member.lastSeen : 0) / 1e9)
            }
            if let written = lastCheckpointWritten { checkpointAge.record(Double(now - written) / 1e9) }
            clusterRate.record(workerRates.values.reduce(0, +))
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
