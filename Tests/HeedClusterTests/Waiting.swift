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
