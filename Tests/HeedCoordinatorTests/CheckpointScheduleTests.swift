import HeedCheckpoint
import HeedCore
import Testing
@testable import HeedCoordinator

/// The coordinator's checkpoint bookkeeping, driven with explicit clocks and times.
@Suite struct CheckpointScheduleTests {
    func schedule(everySteps: Int = 0, everySeconds: Double = 0, workers: Int = 3) -> CheckpointSchedule {
        var c = CheckpointConfig()
        c.directory = "/tmp/unused"
        c.everySteps = everySteps
        c.everySeconds = everySeconds
        return CheckpointSchedule(config: c, workerCount: workers, now: 1_000)
    }

    func at(_ rank: Int, clock: Int) -> WorkerPosition { WorkerPosition(rank: rank, epoch: 0, batch: clock, clock: clock, samples: clock * 10) }

    @Test func everyStepsCountsAllWorkersStepsSinceTheLastCheckpoint() {
        let s = schedule(everySteps: 100)
        s.observe(rank: 0, clock: 40); s.observe(rank: 1, clock: 30); s.observe(rank: 2, clock: 29)
        #expect(!s.requestIfDue(now: 2_000), "99 global steps: not yet due")
        s.observe(rank: 2, clock: 30)
        #expect(s.requestIfDue(now: 2_000) && s.requested == 1)
        #expect(!s.requestIfDue(now: 2_000), "one pending generation at a time")
        for r in 0..<3 { #expect(s.arrive(at(r, clock: 40), generation: 1)) }
        let begun = s.beginIfReady()
        #expect(begun?.generation == 1 && begun?.positions.map(\.rank) == [0, 1, 2])
        s.finish(generation: 1, step: 120, now: 3_000)
        #expect(!s.isPending && s.lastStep == 120)
        s.observe(rank: 0, clock: 139)
        #expect(!s.requestIfDue(now: 4_000), "219 - 120 = 99 steps since the last")
        s.observe(rank: 0, clock: 140)
        #expect(s.requestIfDue(now: 4_000))
    }

    @Test func everySecondsIsMeasuredFromTheLastCheckpoint() {
        let s = schedule(everySeconds: 2)
        #expect(!s.requestIfDue(now: 1_000 + 1_999_999_999))
        #expect(s.requestIfDue(now: 1_000 + 2_000_000_000))
    }

    @Test func aSaveBeginsOnlyWhenEveryWorkerArrivedOrIsIdle() {
        let s = schedule()
        s.request(now: 5)
        #expect(s.arrive(at(0, clock: 7), generation: 1))
        #expect(s.beginIfReady() == nil)
        s.becameIdle(at(2, clock: 9))
        #expect(s.beginIfReady() == nil, "worker 1 still runs")
        #expect(s.stalled(now: 5 + 2_000_000_000, after: .seconds(1))?.missing == [1])
        #expect(s.arrive(at(1, clock: 8), generation: 1))
        let begun = s.beginIfReady()
        #expect(begun?.positions.map(\.clock) == [7, 8, 9])
        #expect(s.beginIfReady() == nil, "a save is running")
        #expect(s.stalled(now: 5 + 9_000_000_000, after: .seconds(1)) == nil, "a running save is not stalled")
        s.finish(generation: 1, step: 24, now: 10)
        #expect(!s.arrive(at(1, clock: 8), generation: 1), "a late arrival for a finished generation is answered at once")
    }

    @Test func workersReleasedFromABarrierAreNoLongerIdle() {
        let s = schedule(workers: 2)
        s.becameIdle(at(0, clock: 3)); s.becameIdle(at(1, clock: 3))
        s.resumed(ranks: 0..<2)
        s.request()
        #expect(s.beginIfReady() == nil)
    }
}

/// The staleness bound holds from the first step: a worker that has not registered yet
/// counts as clock 0.
@Suite struct StalenessStartTests {
    @Test func aWorkerStillJoiningHoldsTheOthersBack() throws {
        let m = Membership(serverCount: 1, workerCount: 2, failureTimeoutNanoseconds: 1_000_000_000)
        let first = try m.register(role: .worker, address: "w0", rankHint: 0, now: 0)
        try m.heard(from: first, clock: 3, now: 1)
        #expect(m.minimumWorkerClock == 0)
        #expect(!m.mayProceed(clock: 3, staleness: 2), "worker 1 has not joined: worker 0 may not be 3 ahead of it")
        let second = try m.register(role: .worker, address: "w1", rankHint: 1, now: 2)
        try m.heard(from: second, clock: 1, now: 3)
        #expect(m.mayProceed(clock: 3, staleness: 2))
    }
}
