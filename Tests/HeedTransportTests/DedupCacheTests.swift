import Foundation
import HeedCore
import Testing
@testable import HeedTransport

@Suite struct DedupCacheTests {
    private func request(sender: UInt64, id: UInt64, replies: Shared<[Message]>) -> Request {
        Request(envelope: Envelope(senderID: sender, requestID: id, message: .ack(Ack())),
                peer: PeerInfo(senderID: sender, address: "test"),
                responder: Responder { m in replies.with { $0.append(m) } })
    }

    @Test func duplicateGetsTheFirstReplyWithoutBeingReapplied() {
        let cache = DedupCache()
        let applied = Shared(0)
        let replies = Shared<[Message]>([])
        func apply() -> Message { .ack(Ack(value: UInt64(applied.with { $0 += 1; return $0 }))) }
        let first = cache.handle(request(sender: 7, id: 1, replies: replies), apply: apply)
        let again = cache.handle(request(sender: 7, id: 1, replies: replies), apply: apply)
        let other = cache.handle(request(sender: 8, id: 1, replies: replies), apply: apply)
        #expect(first == .ack(Ack(value: 1)))
        #expect(again == .ack(Ack(value: 1)))
        #expect(other == .ack(Ack(value: 2)))
        #expect(applied.get == 2)
        #expect(cache.statistics.duplicates == 1)
        #expect(cache.statistics.applied == 2)
    }

    @Test func duplicateArrivingDuringApplyIsParkedAndAnsweredAfterwards() async throws {
        let cache = DedupCache()
        let replies = Shared<[Message]>([])
        let firstReplies = Shared<[Message]>([])
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let firstDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let first = self.request(sender: 1, id: 5, replies: firstReplies)
            let reply = cache.handle(first) {
                entered.signal()
                release.wait()
                return .ack(Ack(value: 99))
            }
            first.responder.reply(reply!)
            firstDone.signal()
        }
        entered.wait()
        let parked = cache.handle(request(sender: 1, id: 5, replies: replies)) {
            Issue.record("duplicate was applied")
            return .ack(Ack(value: 0))
        }
        #expect(parked == nil)
        #expect(replies.get.isEmpty)
        release.signal()
        firstDone.wait()
        #expect(replies.get == [.ack(Ack(value: 99))])
        #expect(firstReplies.get == [.ack(Ack(value: 99))])
        #expect(cache.statistics.parked == 1)
    }

    /// With `acknowledgeFirst` the sender has its reply before the work runs; a duplicate
    /// meanwhile waits for the work, and a failure afterwards is counted, not re-sent.
    @Test func acknowledgeFirstRepliesBeforeApplyingAndCountsLateFailures() {
        let cache = DedupCache()
        let replies = Shared<[Message]>([])
        let first = request(sender: 3, id: 1, replies: replies)
        var parkedReply: Message??
        let returned = cache.handle(sender: 3, requestID: 1, responder: first.responder, acknowledgeFirst: .ack(Ack(value: 7))) {
            #expect(replies.get == [.ack(Ack(value: 7))], "the ack must go out before apply runs")
            parkedReply = cache.handle(request(sender: 3, id: 1, replies: replies)) {
                Issue.record("duplicate was applied")
                return .ack(Ack())
            }
            #expect(replies.get.count == 1, "the duplicate is parked until apply finishes")
            return .ack(Ack(value: 7))
        }
        #expect(returned == nil, "the reply was already sent")
        #expect(parkedReply == .some(nil))
        #expect(replies.get == [.ack(Ack(value: 7)), .ack(Ack(value: 7))])
        #expect(cache.handle(request(sender: 3, id: 1, replies: replies)) { .ack(Ack()) } == .ack(Ack(value: 7)))

        let failing = request(sender: 3, id: 2, replies: replies)
        let none = cache.handle(sender: 3, requestID: 2, responder: failing.responder, acknowledgeFirst: .ack(Ack(value: 1))) {
            throw HeedError(.internalError, "late failure")
        }
        #expect(none == nil && replies.get.last == .ack(Ack(value: 1)))
        #expect(cache.statistics.failedAfterAcknowledging == 1 && cache.statistics.applied == 2)
    }

    @Test func evictionBoundsMemoryAndRefusesIDsOlderThanTheWindow() {
        let cache = DedupCache(capacityPerSender: 4)
        let replies = Shared<[Message]>([])
        for id in 1...10 as ClosedRange<UInt64> {
            _ = cache.handle(request(sender: 1, id: id, replies: replies)) { .ack(Ack(value: id)) }
        }
        let stale = cache.handle(request(sender: 1, id: 3, replies: replies)) {
            Issue.record("stale id was applied")
            return .ack(Ack())
        }
        guard case .error(let e) = stale else { Issue.record("expected an error, got \(String(describing: stale))"); return }
        #expect(e.code == .protocolViolation)
        #expect(cache.handle(request(sender: 1, id: 9, replies: replies)) { .ack(Ack()) } == .ack(Ack(value: 9)))
        #expect(cache.handle(request(sender: 1, id: 11, replies: replies)) { .ack(Ack(value: 11)) } == .ack(Ack(value: 11)))
        #expect(cache.statistics.stale == 1)
    }

    /// A server's memory must settle once its senders are known (`heed bench soak`): the
    /// window is sized for its capacity at the first request, then never grows.
    @Test func aSendersWindowIsAllocatedOnceAtItsFirstRequest() throws {
        let capacity = 512
        let cache = DedupCache(capacityPerSender: capacity)
        let replies = Shared<[Message]>([])
        _ = cache.handle(request(sender: 3, id: 1, replies: replies)) { .ack(Ack(value: 1)) }
        let first = try #require(cache.windowCapacities(sender: 3))
        #expect(first.entries >= capacity && first.order >= 2 * capacity)
        for id in 2...UInt64(5 * capacity) {
            _ = cache.handle(request(sender: 3, id: id, replies: replies)) { .ack(Ack(value: id)) }
        }
        let later = try #require(cache.windowCapacities(sender: 3))
        #expect(later.entries == first.entries && later.order == first.order)
    }

    @Test func senderTableIsBoundedLeastRecentlyUsedFirst() {
        let cache = DedupCache(capacityPerSender: 8, maxSenders: 2)
        let replies = Shared<[Message]>([])
        _ = cache.handle(request(sender: 1, id: 1, replies: replies)) { .ack(Ack(value: 1)) }
        _ = cache.handle(request(sender: 2, id: 1, replies: replies)) { .ack(Ack(value: 2)) }
        _ = cache.handle(request(sender: 1, id: 2, replies: replies)) { .ack(Ack(value: 3)) }
        _ = cache.handle(request(sender: 3, id: 1, replies: replies)) { .ack(Ack(value: 4)) }
        #expect(cache.statistics.senders == 2)
        // Sender 1 was used more recently than sender 2, so it is still remembered.
        #expect(cache.handle(request(sender: 1, id: 1, replies: replies)) { .ack(Ack(value: 0)) } == .ack(Ack(value: 1)))
    }

    @Test func failedApplyIsCachedSoRetriesSeeTheSameError() {
        let cache = DedupCache()
        let replies = Shared<[Message]>([])
        let applied = Shared(0)
        for _ in 0..<3 {
            let r = cache.handle(request(sender: 4, id: 1, replies: replies)) { () throws -> Message in
                applied.with { $0 += 1 }
                throw HeedError(.notFound, "no table 9")
            }
            #expect(r == .error(ErrorReply(code: .notFound, message: "no table 9")))
        }
        #expect(applied.get == 1)
    }
}
