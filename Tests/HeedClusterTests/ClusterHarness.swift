import Foundation
import HeedCoordinator
import HeedCore
import HeedData
import HeedLayers
import HeedModels
import HeedObserve
import HeedServer
import HeedTransport
import HeedWorker
@testable import heed

/// Runs whole clusters inside the test process over real nng sockets (ipc), and the
/// in-process reference, on the committed real data samples.
enum ClusterHarness {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Prepares a committed sample once per (dataset, shards) into a temporary directory.
    /// Tests run in parallel: the lock makes a second caller wait for the first
    /// preparation instead of overwriting the directory while the first caller reads it.
    static func prepared(_ dataset: PrepareOptions.Dataset, sample: String, shards: Int) throws -> String {
        try preparing.withLock {
            let out = NSTemporaryDirectory() + "heed-cluster-\(dataset.rawValue)-\(shards)-\(getpid())"
            if FileManager.default.fileExists(atPath: out + "/manifest.json") { return out }
            var options = PrepareOptions(dataset: dataset, input: repository + "/data/" + sample, output: out)
            options.shards = shards
            options.overwrite = true
            _ = try Preparer.prepare(options)
            return out
        }
    }

    private static let preparing = NSLock()

    /// The bundled Amazon Beauty sample prepared in 2 shards, and DIN built for it with
    /// default sizes: what tests that drive a training loop directly need.
    static func dinOnBeautySample() throws -> (directory: String, manifest: DatasetManifest, model: any RecommenderModel,
                                              makeBatch: @Sendable (SampleBatch) -> ModelBatch) {
        let directory = try prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2)
        let manifest = try DatasetManifest.load(directory: directory)
        var config = RunConfig()
        config.model.name = "din"
        config.data.path = directory
        let (model, makeBatch) = try ModelCatalog.make(config, schema: manifest.schema)
        return (directory, manifest, model, makeBatch)
    }

    /// A unique ipc directory for one cluster.
    static func socketDirectory() -> String {
        let dir = NSTemporaryDirectory() + "heed-sock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// What a cluster run leaves behind.
    struct Result {
        var shards: [ParameterShard]
        var evaluation: Evaluation?
        var outcome: CoordinatorService.Outcome
    }

    /// One OpenBLAS thread, as `heed` runs (Heed.swift): the suite's processes share one
    /// BLAS setting, and a test that compares two runs bit for bit needs both to sum in
    /// the same order (two threads block the products differently from one).
    static func oneBLASThread() { setBLASThreads(1) }

    /// Coordinator, S servers and W workers as tasks of this process, talking over ipc.
    static func runCluster(_ config: RunConfig, transport: any Transport = NNGTransport()) async throws -> Result {
        oneBLASThread()
        let (derived, assignment) = try ModelCatalog.deriveLayout(config)
        let dir = socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let settings = CoordinatorService.Settings(
            config: Array(try JSONEncoder().encode(derived)), plan: ShardingPlan(serverCount: derived.cluster.servers, slotCount: derived.cluster.slots),
            workerCount: derived.cluster.workers, dataShards: assignment, mode: derived.cluster.mode, staleness: derived.cluster.staleness,
            failureTimeout: .seconds(20), joinTimeout: .seconds(60))
        let service = CoordinatorService(settings: settings, telemetry: .silent(role: "coordinator"))
        let coordinatorAddress = "ipc://\(dir)/coordinator.ipc"
        let listener = try transport.listen(on: coordinatorAddress, options: ServerOptions(concurrency: 32)) { try service.handle($0) }
        defer { listener.close() }
        let shards = LockedBox<[Int: ParameterShard]>([:])
        let outcome = Task { await service.run(pollInterval: .milliseconds(20)) }
        let servers = (0..<derived.cluster.servers).map { k in
            Task {
                try await ServerRole.run(options: .init(coordinator: coordinatorAddress, listen: "ipc://\(dir)/server-\(k).ipc", advertise: nil, rankHint: k, secret: nil),
                                         transport: transport,
                                         initialDense: { try ModelCatalog.make($0, schema: ModelCatalog.schema(of: $0)).0.denseParameters() },
                                         telemetry: .silent(role: "server"), interrupted: { false },
                                         onReady: { shard in shards.update { $0[shard.rank] = shard } })
            }
        }
        var evaluation: Evaluation?
        try await withThrowingTaskGroup(of: TrainingReport?.self) { group in
            for k in 0..<derived.cluster.workers {
                group.addTask {
                    try await WorkerRole.run(options: .init(coordinator: coordinatorAddress, rankHint: k, secret: nil, metricsOut: nil),
                                             transport: transport, makeModel: { try ModelCatalog.make($0, schema: $1) },
                                             telemetry: .silent(role: "worker"), interrupted: { false })
                }
            }
            for try await e in group where e != nil { evaluation = e!.test }
        }
        for s in servers { try await s.value }
        let byRank = shards.get()
        return Result(shards: (0..<derived.cluster.servers).map { byRank[$0]! }, evaluation: evaluation, outcome: await outcome.value)
    }

    /// The in-process reference run; returns its single shard and test evaluation.
    static func runInProcess(_ config: RunConfig) async throws -> (ParameterShard, Evaluation) {
        oneBLASThread()
        let shard = LockedBox<ParameterShard?>(nil)
        let evaluation = try await InProcessRun.train(config, interrupted: { false }, telemetry: .silent(role: "worker", rank: 0), onShard: { shard.set($0) })
        return (shard.get()!, evaluation.test)
    }

    /// A small, quick run config on prepared data.
    static func config(data: String, model: String = "lr", servers: Int, workers: Int, mode: ConsistencyMode,
                       steps: Int = 0, epochs: Int = 1, batch: Int = 128) -> RunConfig {
        var c = RunConfig()
        c.model.name = model
        c.model.embeddingDim = 8
        c.model.hidden = [32, 16]
        c.model.attentionHidden = [16, 8]
        c.data.path = data
        c.data.batchSize = batch
        c.data.epochs = epochs
        c.data.maxSteps = steps
        c.cluster.servers = servers
        c.cluster.workers = workers
        c.cluster.mode = mode
        c.cluster.heartbeatMilliseconds = 100
        c.sparseOptimizer.learningRate = 0.01
        c.denseOptimizer.learningRate = 0.01
        c.seed = 7
        return c
    }
}
