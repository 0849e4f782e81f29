import Foundation
import Testing
import HeedCore
import HeedTransport
@testable import heed

/// Bounded staleness (SSP) with bound K: a worker that has finished step c may start step
/// c + 1 only while c − (the slowest worker's finished steps) ≤ K. Observed on a real
/// 3-worker cluster whose worker 2 is held back by the test: its clock advances only once
/// the other workers have gone K steps ahead of it, so a correct coordinator lets them
/// reach exactly K ahead, one that behaved like sync never does, and one that behaved
/// like async lets them further.
@Suite(.serialized) struct BoundedStalenessTests {
    let beauty: String
    init() throws { beauty = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 6) }

    static let steps = 12
    static let slowRank = 2

    @Test(arguments: [0, 2])
    func noWorkerRunsMoreThanKStepsAheadOfTheSlowest(staleness: Int) async throws {
        var config = ClusterHarness.config(data: beauty, model: "lr", servers: 2, workers: 3, mode: .bounded, steps: Self.steps, batch: 64)
        config.cluster.staleness = staleness
        let trace = ClockTrace(workers: 3, staleness: staleness)
        let transport = TracingTransport(inner: NNGTransport()) { rank, clock in
            // After one failure the others go unheld, so a broken mode fails in one deadline.
            guard rank == Self.slowRank, trace.problems.isEmpty else { return }
            // Hold the slow worker's report of `clock` until every other worker has asked
            // to go past clock + K (or reached the last step): only then is it K ahead.
            let target = min(clock + staleness, Self.steps)
            let reached = await waitUntil(timeout: .seconds(60)) {
                (0..<3).allSatisfy { $0 == Self.slowRank || trace.highestSent(by: $0) >= target }
            }
            if !reached {
                trace.note("the other workers never reached clock \(target) while worker \(Self.slowRank) was at \(clock - 1) (K = \(staleness))")
            }
        }
        transport.trace = trace
        let run = try await ClusterHarness.runCluster(config, transport: transport)
        #expect(run.outcome == .completed)
        #expect(trace.problems.isEmpty, "\(trace.problems)")
        // Every worker asked to advance after every step.
        #expect((0..<3).allSatisfy { trace.released(of: $0) == Self.steps })
        // The bound is reached, not only respected: a sync-like mode would stay at 0 ahead.
        #expect(trace.largestLead == staleness, "largest lead \(trace.largestLead), K = \(staleness)")
    }
}

/// The workers' clocks as they reported them to the coordinator and were let go.
final class ClockTrace: @unchecked Sendable {
    let workers: Int
    let staleness: Int
    private let lock = NSLock()
    /// Per rank, the highest clock sent in an `advance` (huge once the worker finished:
    /// the coordinator then stops counting it as the slowest).
    private var sent: [Int: Int] = [:]
    private var goes: [Int: Int] = [:]
    private var lead = 0
    private var notes: [String] = []

    init(workers: Int, staleness: Int) {
        self.workers = workers
        self.staleness = staleness
    }

    /// Before an `advance` of `clock` leaves `rank`: the coordinator can know no more.
    func willSend(rank: Int, clock: Int) { lock.withLock { sent[rank] = max(sent[rank] ?? 0, clock) } }

    /// Before `finished` leaves `rank`.
    func willFinish(rank: Int) { lock.withLock { sent[rank] = Int.max / 2 } }

    /// After `rank` was told to go past `clock`: at that moment no worker can have been
    /// known (by the coordinator) to be further than what it had sent, so
    /// `clock − min(sent)` is at least the lead the coordinator allowed.
    func wentAhead(rank: Int, clock: Int) {
        lock.withLock {
            let slowest = (0..<workers).map { sent[$0] ?? 0 }.min()!
            lead = max(lead, clock - slowest)
            goes[rank] = max(goes[rank] ?? 0, clock)
            if clock - slowest > staleness {
                notes.append("worker \(rank) went past clock \(clock) while the slowest had reported \(slowest) (K = \(staleness))")
            }
        }
    }

    func note(_ s: String) { lock.withLock { notes.append(s) } }
    func highestSent(by rank: Int) -> Int { lock.withLock { sent[rank] ?? 0 } }
    func released(of rank: Int) -> Int { lock.withLock { goes[rank] ?? 0 } }
    var largestLead: Int { lock.withLock { lead } }
    var problems: [String] { lock.withLock { notes } }
}

/// A transport that hands every client's `advance` and `finished` requests to a trace,
/// and lets the test hold a worker's `advance` back before it is sent.
final class TracingTransport: Transport, @unchecked Sendable {
    let inner: any Transport
    let beforeAdvance: @Sendable (_ rank: Int, _ clock: Int) async -> Void
    var trace: ClockTrace!

    init(inner: any Transport, beforeAdvance: @escaping @Sendable (_ rank: Int, _ clock: Int) async -> Void) {
        self.inner = inner
        self.beforeAdvance = beforeAdvance
    }

    func connect(to address: String, options: ClientOptions) throws -> any RequestClient {
        TracingClient(inner: try inner.connect(to: address, options: options), transport: self)
    }

    func listen(on address: String, options: ServerOptions, handler: @escaping RequestHandler) throws -> any RequestServer {
        try inner.listen(on: address, options: options, handler: handler)
    }
}

/// A client that reports `advance` and `finished` to its transport's trace; everything
/// else passes through untouched.
final class TracingClient: RequestClient, @unchecked Sendable {
    let inner: any RequestClient
    let transport: TracingTransport

    init(inner: any RequestClient, transport: TracingTransport) {
        self.inner = inner
        self.transport = transport
    }

    var senderID: UInt64 { inner.senderID }
    var peerAddress: String { inner.peerAddress }
    var retryPolicy: RetryPolicy { inner.retryPolicy }
    func makeRequestID() -> UInt64 { inner.makeRequestID() }
    func close() { inner.close() }
    @available(macOS 15.0, *)
    var completionExecutor: (any TaskExecutor)? { inner.completionExecutor }
    func withPulledRows<R>(_ pull: PullRows, timeout: Duration, _ body: (PulledRows) throws -> R) async throws -> R {
        try await inner.withPulledRows(pull, timeout: timeout, body)
    }

    func send(_ envelope: Envelope, timeout: Duration) async throws -> Envelope {
        guard case .control(let c) = envelope.message, c.name == "advance" || c.name == "finished" else {
            return try await inner.send(envelope, timeout: timeout)
        }
        let numbers = String(decoding: c.body, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        if c.name == "finished" {
            transport.trace.willFinish(rank: numbers[0])
            return try await inner.send(envelope, timeout: timeout)
        }
        let (rank, clock) = (numbers[0], numbers[1])
        await transport.beforeAdvance(rank, clock)
        transport.trace.willSend(rank: rank, clock: clock)
        let reply = try await inner.send(envelope, timeout: timeout)
        if case .controlReply(let r) = reply.message, r.name == "go" { transport.trace.wentAhead(rank: rank, clock: clock) }
        return reply
    }
}
