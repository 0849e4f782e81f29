import Testing
import HeedCore
@testable import HeedTransport

/// The replay window on its own, with a clock the test moves (microseconds).
@Suite struct ReplayGuardTests {
    /// A settable clock for the guard.
    final class TestClock: @unchecked Sendable {
        private let value: Locked<UInt64>
        init(_ start: UInt64) { value = Locked(start) }
        var now: UInt64 { value.withLock { $0 } }
        func advance(seconds: Double) { value.withLock { $0 += UInt64(seconds * 1e6) } }
    }

    let start: UInt64 = 1_800_000_000_000_000

    func makeGuard(_ clock: TestClock, _ configure: (inout ReplayGuard.Settings) -> Void = { _ in }) -> ReplayGuard {
        var settings = ReplayGuard.Settings()
        configure(&settings)
        return ReplayGuard(settings: settings, now: { clock.now })
    }

    @Test func aSequenceIsAcceptedOnceAndLateArrivalsInsideTheWindowStillPass() {
        let clock = TestClock(start)
        let g = makeGuard(clock)
        clock.advance(seconds: 1)
        let s = clock.now
        #expect(g.admit(sender: 7, sequence: s + 100) == nil)
        #expect(g.admit(sender: 7, sequence: s + 300) == nil)
        // Arrives after a newer one, within the reorder window: accepted once.
        #expect(g.admit(sender: 7, sequence: s + 200) == nil)
        #expect(g.admit(sender: 7, sequence: s + 200) == .replayed)
        #expect(g.admit(sender: 7, sequence: s + 300) == .replayed)
        #expect(g.admit(sender: 7, sequence: s + 100) == .replayed)
        // Another sender has its own window.
        #expect(g.admit(sender: 8, sequence: s + 100) == nil)
    }

    @Test func aSequenceBelowTheReorderWindowIsRefusedEvenIfNeverSeen() {
        let clock = TestClock(start)
        let g = makeGuard(clock) { $0.reorderWindow = .seconds(2) }
        clock.advance(seconds: 10)
        let s = clock.now
        #expect(g.admit(sender: 1, sequence: s) == nil)
        #expect(g.admit(sender: 1, sequence: s - 1_500_000) == nil)
        #expect(g.admit(sender: 1, sequence: s - 2_000_000) == .tooOld)
        #expect(g.admit(sender: 1, sequence: s - 5_000_000) == .tooOld)
    }

    @Test func sequencesFarFromThisHostsClockAreRefused() {
        let clock = TestClock(start)
        let g = makeGuard(clock) { $0.maxAge = .seconds(60) }
        clock.advance(seconds: 1000)
        let now = clock.now
        #expect(g.admit(sender: 3, sequence: now - 61_000_000) == .outsideClockWindow(offsetSeconds: -61))
        #expect(g.admit(sender: 3, sequence: now + 61_000_000) == .outsideClockWindow(offsetSeconds: 61))
        #expect(g.admit(sender: 3, sequence: now - 59_000_000) == nil)
    }

    /// A restarted role has an empty window; what was recorded before it started is refused.
    @Test func aSequenceFromBeforeTheGuardWasCreatedIsRefused() {
        let clock = TestClock(start)
        let recorded = clock.now - 5_000_000
        let g = makeGuard(clock)
        #expect(g.admit(sender: 4, sequence: recorded) == .beforeStart)
        #expect(g.admit(sender: 4, sequence: clock.now + 1) == nil)
    }

    @Test func rememberedSequencesPerSenderAreBoundedAndTheFloorRises() {
        let clock = TestClock(start)
        let g = makeGuard(clock) { $0.maxRemembered = 8; $0.reorderWindow = .seconds(100) }
        clock.advance(seconds: 1)
        let s = clock.now
        for i in 0..<20 { #expect(g.admit(sender: 5, sequence: s + UInt64(i) * 10) == nil) }
        // Only the newest 8 are kept: older never-seen ones below them are refused.
        #expect(g.admit(sender: 5, sequence: s + 5) == .tooOld)
        #expect(g.admit(sender: 5, sequence: s + 125) == nil)
    }

    @Test func sendersAreBoundedAndForgottenOnesCannotBeReplayed() {
        let clock = TestClock(start)
        let g = makeGuard(clock) { $0.maxSenders = 4 }
        clock.advance(seconds: 1)
        var firstSequence: [UInt64: UInt64] = [:]
        for sender in UInt64(1)...10 {
            clock.advance(seconds: 0.001)
            firstSequence[sender] = clock.now
            #expect(g.admit(sender: sender, sequence: clock.now) == nil)
            #expect(g.senderCount <= 4)
        }
        // Sender 1 was dropped for space; its recorded message is refused all the same.
        #expect(g.admit(sender: 1, sequence: firstSequence[1]!) == .beforeStart)
        // Senders silent for longer than maxAge are dropped first, without raising the floor.
        clock.advance(seconds: 400)
        #expect(g.admit(sender: 99, sequence: clock.now) == nil)
        #expect(g.senderCount == 1)
    }

    @Test func theProcessSequenceIsStrictlyIncreasingAcrossThreads() async {
        let all = await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<4 { group.addTask { (0..<5000).map { _ in MessageSequence.next() } } }
            var all: [UInt64] = []
            for await part in group {
                #expect(zip(part, part.dropFirst()).allSatisfy { $0 < $1 })
                all += part
            }
            return all
        }
        #expect(Set(all).count == all.count)
    }
}
