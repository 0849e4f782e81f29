import HeedCheckpoint
import HeedCore

/// The coordinator's checkpoint bookkeeping, free of any transport (like `Membership`):
/// when one is due, which generation is asked for, which workers have paused for it and
/// where each stands in its data. `CoordinatorService` calls it under its lock.
///
/// A checkpoint is taken when every worker is paused: either *arrived* (it saw the request
/// at a step boundary and waits for the save) or *idle* (it waits at an epoch or
/// end-of-training barrier, having said where it stands). Nobody pushes while every worker
/// is paused, so the servers' files form one consistent state.
public final class CheckpointSchedule {
    public let config: CheckpointConfig
    public let workerCount: Int
    /// The latest generation asked for (0 = none yet) and the latest finished (taken or given up).
    public private(set) var requested = 0
    public private(set) var completed = 0
    /// True while the servers write a checkpoint.
    public private(set) var saving = false
    /// Global step (all workers' steps together) and time (ns) of the last checkpoint or resume.
    public private(set) var lastStep: Int
    public private(set) var lastTime: UInt64
    /// No new checkpoints once training has ended (after the final one).
    public var trainingEnded = false
    private var clocks: [Int: Int] = [:]
    private var arrived: [Int: WorkerPosition] = [:]
    private var idle: [Int: WorkerPosition] = [:]

    /// - Parameters:
    ///   - resumedStep: the global step of the checkpoint this run resumed from (0 for a fresh run).
    public init(config: CheckpointConfig, workerCount: Int, resumedStep: Int = 0, now: UInt64) {
        self.config = config
        self.workerCount = workerCount
        lastStep = resumedStep
        lastTime = now
    }

    /// True while a generation is asked for and not finished.
    public var isPending: Bool { requested > completed }

    /// All workers' steps together, as last reported.
    public var globalStep: Int { clocks.values.reduce(0, +) }

    /// Records worker `rank`'s clock (heartbeat, advance, step barrier).
    public func observe(rank: Int, clock: Int) {
        clocks[rank] = max(clocks[rank] ?? 0, clock)
    }

    /// Asks for a checkpoint (or joins the pending one); returns its generation.
    @discardableResult
    public func request(now: UInt64 = 0) -> Int {
        if !isPending {
            requested += 1
            requestedAt = now
        }
        return requested
    }

    /// When the pending generation was asked for (ns).
    public private(set) var requestedAt: UInt64 = 0

    /// The pending generation, when it was asked for and the workers not yet paused, if it
    /// has waited longer than `limit` without its save starting.
    public func stalled(now: UInt64, after limit: Duration) -> (generation: Int, since: UInt64, missing: [Int])? {
        let ns = UInt64(limit.components.seconds) * 1_000_000_000 + UInt64(limit.components.attoseconds / 1_000_000_000)
        guard isPending, !saving, requestedAt > 0, now > requestedAt, now - requestedAt > ns else { return nil }
        return (requested, requestedAt, (0..<workerCount).filter { arrived[$0] == nil && idle[$0] == nil })
    }

    /// Asks for one if `every_steps` or `every_seconds` says it is due; true if a new
    /// generation was asked for.
    public func requestIfDue(now: UInt64) -> Bool {
        guard config.isEnabled, !isPending, !trainingEnded else { return false }
        let bySteps = config.everySteps > 0 && globalStep - lastStep >= config.everySteps
        let bySeconds = config.everySeconds > 0 && Double(now &- lastTime) / 1e9 >= config.everySeconds
        guard bySteps || bySeconds else { return false }
        request(now: now)
        return true
    }

    /// A worker paused at a step boundary for `generation`. Returns false if that
    /// generation is already finished (answer at once).
    public func arrive(_ position: WorkerPosition, generation: Int) -> Bool {
        guard generation > completed, generation <= requested else { return false }
        arrived[position.rank] = position
        observe(rank: position.rank, clock: position.clock)
        return true
    }

    /// A worker is about to wait at a barrier, standing at `position`.
    public func becameIdle(_ position: WorkerPosition) {
        idle[position.rank] = position
        observe(rank: position.rank, clock: position.clock)
    }

    /// Workers released from a barrier run again.
    public func resumed(ranks: some Sequence<Int>) {
        for r in ranks { idle[r] = nil }
    }

    /// Whether worker `rank` has paused for the pending generation (arrived, not idle).
    public func hasArrived(rank: Int) -> Bool { arrived[rank] != nil }

    /// If a generation is pending, no save runs and every worker is paused: marks the save
    /// begun and returns the generation and every worker's position in rank order.
    public func beginIfReady() -> (generation: Int, positions: [WorkerPosition])? {
        guard isPending, !saving else { return nil }
        var positions: [WorkerPosition] = []
        for rank in 0..<workerCount {
            guard let p = arrived[rank] ?? idle[rank] else { return nil }
            positions.append(p)
        }
        saving = true
        return (requested, positions)
    }

    /// The save of `generation` ended (written at `step`, or given up with step nil).
    public func finish(generation: Int, step: Int?, now: UInt64) {
        saving = false
        completed = max(completed, generation)
        arrived.removeAll()
        if let step {
            lastStep = step
            lastTime = now
        }
    }
}
