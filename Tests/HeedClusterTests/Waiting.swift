import Foundation

/// Waits until `condition` holds or `timeout` passes, checking every `interval`; returns
/// whether it held. Tests wait on what they need, not on a guess of how long it takes.
func waitUntil(timeout: Duration, interval: Duration = .milliseconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return condition() }
        try? await Task.sleep(for: interval)
    }
    return true
}

/// The blocking form of `waitUntil`, for synchronous tests that watch processes.
func waitUntil(seconds timeout: Double, interval: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() >= deadline { return condition() }
        Thread.sleep(forTimeInterval: interval)
    }
    return true
}
