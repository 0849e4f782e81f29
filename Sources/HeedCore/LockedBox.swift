import Foundation

/// A value behind a lock, for handing results out of tasks.
public final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    public init(_ value: T) { self.value = value }
    public func set(_ v: T) { lock.withLock { value = v } }
    public func get() -> T { lock.withLock { value } }
}

extension LockedBox {
    /// Mutates the value under the lock.
    public func update(_ body: (inout T) -> Void) { lock.withLock { body(&value) } }
}
