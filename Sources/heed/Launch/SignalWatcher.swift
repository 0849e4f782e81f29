import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGINT/SIGTERM into a flag (and an optional callback) instead of an abrupt exit,
/// so every role can finish its step and shut down cleanly.
final class SignalWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    /// Watches `signals`; `onSignal` runs on a private queue for each one received.
    init(_ signals: [Int32] = [SIGINT, SIGTERM], onSignal: (@Sendable (Int32) -> Void)? = nil) {
        let queue = DispatchQueue(label: "heed.signals")
        for s in signals {
            Glibc.signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: queue)
            source.setEventHandler { [weak self] in
                self?.lock.withLock { self?.received = s }
                onSignal?(s)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// The last signal received, or 0.
    var signal: Int32 { lock.withLock { received } }
    /// True once a watched signal arrived.
    var isInterrupted: Bool { signal != 0 }
}
