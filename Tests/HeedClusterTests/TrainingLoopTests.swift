import Foundation
import Testing
import HeedCore
import HeedData
import HeedModels
import HeedWorker

@Suite struct TrainingLoopTests {
    /// Parameters whose pulls never answer, as a server that died mid-request; they end
    /// only when the pulling task is cancelled.
    final class SilentServers: ParameterAccess {
        /// Pulls that have started waiting.
        let pulls = LockedBox(0)
        func pullRows(table: UInt8, keys: [UInt64]) async throws -> [Float] {
            pulls.update { $0 += 1 }
            try await Task.sleep(for: .seconds(3600))
            throw HeedError(.timeout, "silent server")
        }
        func pushRowGradients(table: UInt8, keys: [UInt64], gradients: [Float], clock: Int) async throws {}
        func pullDense() async throws -> [Float] {
            pulls.update { $0 += 1 }
            try await Task.sleep(for: .seconds(3600))
            throw HeedError(.timeout, "silent server")
        }
        func pushDenseGradients(_ gradients: [Float], clock: Int) async throws {}
    }

    /// Cancelling a training run reaches the batch fetch it is waiting on (its own task,
    /// so that it can overlap the previous step), in pipelined and plain mode alike; before,
    /// a worker whose server died waited out the pull's timeout before it could exit.
    @Test(arguments: [true, false])
    func cancellingTheRunCancelsTheFetchItWaitsOn(pipelined: Bool) async throws {
        let (directory, manifest, model, makeBatch) = try ClusterHarness.dinOnBeautySample()
        let servers = SilentServers()
        let trainer = Trainer(model: model, params: servers, pushEveryTable: false)
        let loop = TrainingLoop(trainer: trainer, plan: BatchPlan(shards: try manifest.open(.train, directory: directory), batchSize: 64),
                                settings: .init(epochs: 1, maxSteps: 0, pipelined: pipelined, seed: 1),
                                hooks: TrainingLoop.Hooks(), makeBatch: makeBatch)
        let finished = LockedBox(false)
        let run = Task {
            defer { finished.set(true) }
            _ = try await loop.run()
        }
        // Cancel once the run is waiting on its first fetch, the state the fix is about.
        // Generous: the suite's synchronous CPU-bound tests (gradient checks) occupy the
        // cooperative pool's two threads, on a loaded host for more than a minute.
        let waiting = await waitUntil(timeout: .seconds(300)) { servers.pulls.get() > 0 }
        try #require(waiting, "the run never started its first fetch")
        #expect(!finished.get(), "the run cannot finish while its pulls go unanswered")
        run.cancel()
        // The silent pulls would wait an hour: ending within 120 s means the cancel reached them.
        let ended = await waitUntil(timeout: .seconds(120)) { finished.get() }
        try #require(ended, "the run was still waiting on its fetch 120 s after being cancelled")
        await #expect(throws: (any Error).self) { try await run.value }
    }
}
