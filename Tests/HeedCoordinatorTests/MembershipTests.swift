import Testing
import HeedCore
@testable import HeedCoordinator

@Suite struct MembershipTests {
    let second: UInt64 = 1_000_000_000

    @Test func ranksAreAssignedOnceAndRetriesKeepTheirRank() throws {
        let m = Membership(serverCount: 2, workerCount: 1, failureTimeoutNanoseconds: 5 * second)
        let s0 = try m.register(role: .server, address: "ipc:///a", rankHint: nil, now: 0)
        let s1 = try m.register(role: .server, address: "ipc:///b", rankHint: nil, now: 0)
        #expect(s0 == RoleID(.server, 0) && s1 == RoleID(.server, 1))
        #expect(try m.register(role: .server, address: "ipc:///a", rankHint: nil, now: 1) == s0)
        #expect(throws: HeedError.self) { try m.register(role: .server, address: "ipc:///c", rankHint: nil, now: 0) }
        #expect(!m.isComplete)
        _ = try m.register(role: .worker, address: "w0", rankHint: 0, now: 0)
        #expect(m.isComplete)
        #expect(m.serverAddresses == ["ipc:///a", "ipc:///b"])
    }

    @Test func silentRolesAreReportedAfterTheTimeout() throws {
        let m = Membership(serverCount: 1, workerCount: 2, failureTimeoutNanoseconds: 5 * second)
        _ = try m.register(role: .server, address: "s", rankHint: nil, now: 0)
        let w0 = try m.register(role: .worker, address: "w0", rankHint: nil, now: 0)
        let w1 = try m.register(role: .worker, address: "w1", rankHint: nil, now: 0)
        try m.heard(from: RoleID(.server, 0), clock: nil, now: 4 * second)
        try m.heard(from: w0, clock: 3, now: 4 * second)
        #expect(m.failedMembers(now: 4 * second).isEmpty)
        #expect(m.failedMembers(now: 6 * second) == [w1])
        m.finished(w1)
        #expect(m.failedMembers(now: 6 * second).isEmpty)
        #expect(m.failedMembers(now: 10 * second) == [RoleID(.server, 0), w0])
    }

    @Test func stalenessBoundFollowsTheSlowestWorker() throws {
        let m = Membership(serverCount: 1, workerCount: 2, failureTimeoutNanoseconds: second)
        let w0 = try m.register(role: .worker, address: "w0", rankHint: nil, now: 0)
        let w1 = try m.register(role: .worker, address: "w1", rankHint: nil, now: 0)
        try m.heard(from: w0, clock: 6, now: 0)
        try m.heard(from: w1, clock: 2, now: 0)
        #expect(m.minimumWorkerClock == 2)
        #expect(m.mayProceed(clock: 6, staleness: 4))
        #expect(!m.mayProceed(clock: 7, staleness: 4))
    }

    @Test func barrierReleasesWhenAllArriveAndStaysReleased() {
        let m = Membership(serverCount: 1, workerCount: 3, failureTimeoutNanoseconds: second)
        #expect(!m.arrive(barrier: "epoch-1", rank: 0, participants: 3))
        #expect(!m.arrive(barrier: "epoch-1", rank: 0, participants: 3))  // a retry does not count twice
        #expect(!m.arrive(barrier: "epoch-1", rank: 2, participants: 3))
        #expect(m.arrive(barrier: "epoch-1", rank: 1, participants: 3))
        #expect(m.arrive(barrier: "epoch-1", rank: 0, participants: 3))
        #expect(!m.arrive(barrier: "epoch-2", rank: 0, participants: 3))
    }
}
