import Foundation

/// A stop flag with an optional error, shared between a role's loop and its heartbeats.
public final class RoleState: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var _error: HeedError?
    public init() {}
    /// Marks the role stopped, keeping the first error.
    public func stop(_ error: HeedError?) {
        lock.withLock {
            stopped = true
            if _error == nil { _error = error }
        }
    }
    public var isStopped: Bool { lock.withLock { stopped } }
    public var error: HeedError? { lock.withLock { _error } }
}
