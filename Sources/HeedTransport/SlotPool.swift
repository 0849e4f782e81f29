import HeedCore

/// A fixed set of reusable resources (nng contexts) handed out to async callers; callers
/// beyond the pool size wait in FIFO order without blocking a thread.
final class SlotPool<Slot: AnyObject & Sendable>: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Slot, any Error>
    }

    private struct State {
        var free: [Slot]
        var waiters: [Waiter] = []
        var nextWaiter: UInt64 = 0
        var closedReason: String?
    }

    private enum Quick { case slot(Slot), closed(String), wait(UInt64) }

    private let state: Locked<State>

    /// A pool holding `slots`.
    init(_ slots: [Slot]) {
        state = Locked(State(free: slots))
    }

    /// Takes a free slot, waiting for one if all are in use. Throws `.cancelled` if the
    /// pool is closed or the task is cancelled while waiting.
    func acquire(for what: @autoclosure () -> String) async throws -> Slot {
        // Fast path without a continuation: suspending would cost a scheduling hop.
        let quick = state.withLock { s -> Quick in
            if let reason = s.closedReason { return .closed(reason) }
            if s.waiters.isEmpty, let slot = s.free.popLast() { return .slot(slot) }
            s.nextWaiter &+= 1
            return .wait(s.nextWaiter)
        }
        let id: UInt64
        switch quick {
        case .slot(let slot): return slot
        case .closed(let reason): throw HeedError(.cancelled, "\(what()): \(reason)")
        case .wait(let w): id = w
        }
        let description = what()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Slot, any Error>) in
                state.withLock { s in
                    if let reason = s.closedReason {
                        c.resume(throwing: HeedError(.cancelled, "\(description): \(reason)"))
                    } else if Task.isCancelled {
                        // Checked under the lock: a cancel after this point finds the waiter.
                        c.resume(throwing: HeedError(.cancelled, "\(description) cancelled"))
                    } else if let slot = s.free.popLast() {
                        c.resume(returning: slot)
                    } else {
                        s.waiters.append(Waiter(id: id, continuation: c))
                    }
                }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i)
            }
            waiter?.continuation.resume(throwing: HeedError(.cancelled, "\(description) cancelled"))
        }
    }

    /// Returns a slot, handing it straight to the longest waiter if there is one.
    func release(_ slot: Slot) {
        let waiter = state.withLock { s -> Waiter? in
            if s.waiters.isEmpty {
                s.free.append(slot)
                return nil
            }
            return s.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: slot)
    }

    /// Fails all waiters and future acquisitions with `.cancelled`.
    func close(reason: String) {
        let waiters = state.withLock { s -> [Waiter] in
            s.closedReason = reason
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.continuation.resume(throwing: HeedError(.cancelled, reason)) }
    }
}
