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
        func pullRows(table: UInt8, keys: [UInt64]) async throws -> [Float] {
            try await Task.sleep(for: .seconds(3600))
            throw HeedError(.timeout, "silent server")
        }
        func pushRowGradients(table: UInt8, keys: [UInt64], gradients: [Float], clock: Int) async throws {}
        func pullDense() async throws -> [Float] {
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
        let trainer = Trainer(model: model, params: SilentServers(), pushEveryTable: false)
        let loop = TrainingLoop(trainer: trainer, plan: BatchPlan(shards: try manifest.open(.train, directory: directory), batchSize: 64),
                                settings: .init(epochs: 1, maxSteps: 0, pipelined: pipelined, seed: 1),
                                hooks: TrainingLoop.Hooks(), makeBatch: makeBatch)
        let finished = LockedBox(false)
        let run = Task {
            defer { finished.set(true) }
            _ = try await loop.run()
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!finished.get(), "the run cannot finish while its pulls go unanswered")
        run.cancel()
        for _ in 0..<500 where !finished.get() { try await Task.sleep(for: .milliseconds(10)) }
        try #require(finished.get(), "the run was still waiting on its fetch 5 s after being cancelled")
        await #expect(throws: (any Error).self) { try await run.value }
    }
}
