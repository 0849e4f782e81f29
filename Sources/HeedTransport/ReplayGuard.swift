import HeedCore
#if canImport(Glibc)
import Glibc
#endif

/// The sequence numbers authenticated messages carry: microseconds since the Unix epoch
/// when the message was encoded, made strictly increasing within the process.
///
/// A clock rather than a counter from 1, so a receiver that restarted (and forgot every
/// window) can still refuse a message recorded before it started, and a sender's window
/// can be forgotten once its messages are too old to be accepted anyway. One counter per
/// process, so clients sharing a sender id never issue the same number.
public enum MessageSequence {
    private static let last = Locked<UInt64>(0)

    /// The next sequence number: now in microseconds, or one more than the last if the
    /// clock has not moved (or stepped back).
    public static func next() -> UInt64 {
        let now = wallClockMicroseconds()
        return last.withLock { last in
            last = max(now, last &+ 1)
            return last
        }
    }

    /// Microseconds since the Unix epoch, from the real-time clock.
    public static func wallClockMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000 &+ UInt64(ts.tv_nsec / 1000)
    }
}

/// Why the replay guard refused a message.
public enum ReplayRefusal: Equatable, Sendable, CustomStringConvertible {
    /// The (sender, sequence) pair was accepted before.
    case replayed
    /// The sequence is older than the sender's reorder window.
    case tooOld
    /// The sequence is further from this host's clock than the allowed age.
    case outsideClockWindow(offsetSeconds: Double)
    /// The sequence predates this role's start: recorded from an earlier run.
    case beforeStart

    public var description: String {
        switch self {
        case .replayed: "replayed: this sender's sequence number was already accepted"
        case .tooOld: "replayed or delayed: its sequence number is older than the sender's reorder window"
        case .outsideClockWindow(let offset):
            "its timestamp is \(Int(offset)) s off this host's clock (a recorded message, or clocks out of sync)"
        case .beforeStart: "it was sent before this role started (replayed from an earlier run, or the sender's clock is behind)"
        }
    }
}

/// Refuses authenticated requests whose (sender id, sequence number) was accepted before
/// or is too old to tell: the replay window of the cluster-secret mode.
///
/// Per sender it keeps the highest sequence accepted and the set of those within
/// `reorderWindow` below it (requests of one sender arrive slightly out of order, since
/// several are in flight). Anything older than that window, older than `maxAge` by this
/// host's clock, or older than this guard's creation is refused. Memory is bounded: a
/// sender silent for `maxAge` is forgotten (its old messages fail the age check anyway),
/// at most `maxRemembered` sequences are kept per sender (the floor rises past the oldest
/// dropped), and at most `maxSenders` senders (the least recently seen is dropped and new
/// senders must then be newer than its highest sequence).
///
/// Only messages that passed the HMAC check reach the guard, so only holders of the
/// secret can create entries. Retries are fresh messages with fresh sequence numbers
/// (the request id, which deduplicates them, is unchanged).
public final class ReplayGuard: Sendable {
    /// The guard's limits.
    public struct Settings: Sendable {
        /// Largest distance between a sequence's timestamp and this host's clock.
        public var maxAge: Duration = .seconds(300)
        /// How far below a sender's highest sequence a late message is still accepted.
        public var reorderWindow: Duration = .seconds(10)
        /// Sequences remembered per sender.
        public var maxRemembered = 1 << 16
        /// Senders remembered.
        public var maxSenders = 1 << 16

        /// Default limits.
        public init() {}
    }

    private struct SenderWindow {
        var highest: UInt64
        /// Nothing at or below this is accepted (raised when `seen` is trimmed).
        var floor: UInt64
        var seen: Set<UInt64>
        /// Accepted sequences in arrival order, for trimming `seen`.
        var order: [UInt64]
        var orderStart = 0
        /// This host's clock when the sender was last accepted.
        var lastAccepted: UInt64
    }

    private struct State {
        var senders: [UInt64: SenderWindow] = [:]
        /// New senders must be above this (raised when a sender is dropped for space).
        var newSenderFloor: UInt64
    }

    private let settings: Settings
    private let now: @Sendable () -> UInt64
    private let state: Locked<State>

    /// A guard that refuses anything sent before `start` (microseconds; default now).
    public init(settings: Settings = Settings(), start: UInt64? = nil,
                now: @escaping @Sendable () -> UInt64 = { MessageSequence.wallClockMicroseconds() }) {
        self.settings = settings
        self.now = now
        state = Locked(State(newSenderFloor: start ?? now()))
    }

    /// Number of senders currently remembered.
    public var senderCount: Int { state.withLock { $0.senders.count } }

    /// Accepts (and records) `sequence` from `sender`, or says why not.
    public func admit(sender: UInt64, sequence: UInt64) -> ReplayRefusal? {
        let clock = now()
        let maxAge = Self.microseconds(settings.maxAge)
        let window = Self.microseconds(settings.reorderWindow)
        if sequence > clock &+ maxAge || sequence &+ maxAge < clock {
            return .outsideClockWindow(offsetSeconds: (Double(sequence) - Double(clock)) / 1e6)
        }
        return state.withLock { s -> ReplayRefusal? in
            guard var w = s.senders[sender] else {
                guard sequence > s.newSenderFloor else { return .beforeStart }
                makeRoom(&s, clock: clock, maxAge: maxAge)
                s.senders[sender] = SenderWindow(highest: sequence, floor: 0, seen: [sequence], order: [sequence], lastAccepted: clock)
                return nil
            }
            let lowest = max(w.floor, w.highest > window ? w.highest - window : 0)
            guard sequence > lowest else { return .tooOld }
            guard w.seen.insert(sequence).inserted else { return .replayed }
            w.order.append(sequence)
            w.highest = max(w.highest, sequence)
            w.lastAccepted = clock
            trim(&w, window: window)
            s.senders[sender] = w
            return nil
        }
    }

    /// Drops sequences no longer needed (at or below the window) and, past
    /// `maxRemembered`, the oldest ones, raising the floor over them.
    private func trim(_ w: inout SenderWindow, window: UInt64) {
        let lowest = w.highest > window ? w.highest - window : 0
        while w.orderStart < w.order.count,
              w.order[w.orderStart] <= lowest || w.order.count - w.orderStart > settings.maxRemembered {
            let dropped = w.order[w.orderStart]
            if dropped > lowest { w.floor = max(w.floor, dropped) }
            w.seen.remove(dropped)
            w.orderStart += 1
        }
        // Compact the arrival list once half of it is dropped entries.
        if w.orderStart > 64 && w.orderStart * 2 > w.order.count {
            w.order.removeFirst(w.orderStart)
            w.orderStart = 0
        }
    }

    /// Forgets senders silent for `maxAge`, then, if still full, the least recently
    /// accepted one (raising the floor for new senders above its highest sequence).
    private func makeRoom(_ s: inout State, clock: UInt64, maxAge: UInt64) {
        guard s.senders.count >= settings.maxSenders else { return }
        s.senders = s.senders.filter { $0.value.lastAccepted &+ maxAge >= clock }
        while s.senders.count >= settings.maxSenders,
              let oldest = s.senders.min(by: { $0.value.lastAccepted < $1.value.lastAccepted }) {
            s.newSenderFloor = max(s.newSenderFloor, oldest.value.highest)
            s.senders[oldest.key] = nil
        }
    }

    private static func microseconds(_ d: Duration) -> UInt64 {
        let c = d.components
        return UInt64(max(0, c.seconds)) * 1_000_000 + UInt64(max(0, c.attoseconds) / 1_000_000_000_000)
    }
}
