import Foundation
import HeedCore
@testable import HeedTransport

/// A fresh ipc address per test, so parallel tests never share a socket file.
func uniqueIPCAddress(_ name: String = #function) -> String {
    let clean = name.filter { $0.isLetter || $0.isNumber }
    return "ipc:///tmp/heed-transport-\(getpid())-\(clean)-\(UInt32.random(in: 0 ... .max)).ipc"
}

/// The error thrown by an async body, as a HeedError code (nil if it did not throw one).
func asyncErrorCode<T>(_ body: () async throws -> T) async -> HeedError.Code? {
    do { _ = try await body(); return nil } catch let e as HeedError { return e.code } catch { return nil }
}

/// A mutable value shared with @Sendable handlers.
final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
    var get: T { with { $0 } }
}

/// A handler that answers pulls with rows derived from the keys (row i = key * 10 + j),
/// pushes with an ack counting the rows, and control with an echo.
let echoHandler: RequestHandler = { request in
    switch request.message {
    case .pullRows(let pull):
        let dim = 4
        var values = [Float](repeating: 0, count: pull.keys.count * dim)
        for (i, k) in pull.keys.enumerated() { for j in 0..<dim { values[i * dim + j] = Float(k) * 10 + Float(j) } }
        return .rowsReply(RowsReply(tableID: pull.tableID, dim: UInt32(dim), values: values))
    case .pushRows(let push):
        return .ack(Ack(value: UInt64(push.keys.count)))
    case .control(let c):
        return .controlReply(c)
    case .barrier(let b):
        return .barrierRelease(BarrierRelease(name: b.name, generation: b.generation))
    default:
        throw HeedError(.unsupported, "echo handler does not serve \(request.message.kind)")
    }
}

/// Pulls `keys` and checks the rows follow `echoHandler`'s rule.
func pullAndCheck(_ client: any RequestClient, keys: [UInt64], timeout: Duration = .seconds(5)) async throws -> Bool {
    let rows = try await client.pullRows(PullRows(tableID: 3, keys: keys), timeout: timeout)
    for (i, k) in keys.enumerated() {
        for j in 0..<4 where rows.values[i * 4 + j] != Float(k) * 10 + Float(j) { return false }
    }
    return rows.dim == 4 && rows.tableID == 3
}

/// Waits until `condition` holds or `timeout` passes, checking every `interval`; returns
/// whether it held. Tests wait on what they need, not on a guess of how long it takes.
func waitUntil(timeout: Duration, interval: Duration = .milliseconds(2), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return condition() }
        try? await Task.sleep(for: interval)
    }
    return true
}
