import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels

/// Epochs of training steps over a worker's batches, with the consistency hooks the
/// cluster needs, and evaluation. The in-process reference run and every worker run
/// this same loop; only the `ParameterAccess` and the hooks differ.
public final class TrainingLoop: @unchecked Sendable {
    /// What the loop needs to know.
    public struct Settings: Sendable {
        public var epochs: Int
        /// Stop after this many steps in all (0 = no limit).
        public var maxSteps: Int
        /// Cap on steps per epoch (bounded/sync modes give every worker the same count;
        /// 0 = all batches).
        public var stepsPerEpoch: Int
        /// Fetch batch n+1 while computing batch n (async mode only: it reads rows one
        /// step stale).
        public var pipelined: Bool
        /// Seed for the batch order.
        public var seed: UInt64
        /// Seconds between progress lines (0 = none).
        public var progressInterval: Double
        /// λ of DIN's mini-batch aware regularisation of embedding rows (0 = off); the
        /// loop counts its samples' features once before the first epoch.
        public var miniBatchL2: Double
        /// Where to start (a checkpoint's position for this worker); nil = the beginning.
        public var start: WorkerPosition?

        public init(epochs: Int, maxSteps: Int = 0, stepsPerEpoch: Int = 0, pipelined: Bool, seed: UInt64, progressInterval: Double = 5,
                    miniBatchL2: Double = 0, start: WorkerPosition? = nil) {
            self.start = start
            self.epochs = epochs
            self.maxSteps = maxSteps
            self.stepsPerEpoch = stepsPerEpoch
            self.pipelined = pipelined
            self.seed = seed
            self.progressInterval = progressInterval
            self.miniBatchL2 = miniBatchL2
        }
    }

    /// Called around steps and epochs; roles use them for barriers and clocks.
    public struct Hooks: Sendable {
        /// After a step has pushed its gradients (bounded: advance; sync: step barrier;
        /// checkpoints), with where the loop stands then (`clock` is the step's number).
        public var afterStep: @Sendable (_ position: WorkerPosition) async throws -> Void = { _ in }
        /// After an epoch's last step.
        public var afterEpoch: @Sendable (_ epoch: Int) async throws -> Void = { _ in }
        /// A progress line.
        public var progress: @Sendable (String) -> Void = { _ in }
        /// After every step, with the running figures and the step's batch size (metrics).
        public var stepped: @Sendable (_ progress: Progress, _ batchSize: Int) -> Void = { _, _ in }
        /// Stop early (Ctrl-C, coordinator stop).
        public var shouldStop: @Sendable () -> Bool = { false }
        public init() {}
    }

    /// Running figures, readable from heartbeats.
    public struct Progress: Sendable {
        public var clock = 0
        public var samples = 0
        public var recentLoss = Double.nan
        public var samplesPerSecond = 0.0
        /// Seconds spent in the loop so far in this process.
        public var seconds = 0.0
        /// CPU seconds of the whole process (every thread) since the loop started: on a shared
        /// machine, samples per CPU second is steadier than per wall second (`heed bench din`).
        public var cpuSeconds = 0.0
        /// Where the loop stands: after its last step, or at its start.
        public var position = WorkerPosition(rank: 0, epoch: 0, batch: 0, clock: 0, samples: 0)
    }

    public let trainer: Trainer
    public let plan: BatchPlan
    public let settings: Settings
    public let hooks: Hooks
    /// SampleBatch → ModelBatch (chooses the label column and fields).
    public let makeBatch: @Sendable (SampleBatch) -> ModelBatch
    private let progressLock = NSLock()
    private var _progress = Progress()

    public init(trainer: Trainer, plan: BatchPlan, settings: Settings, hooks: Hooks, makeBatch: @escaping @Sendable (SampleBatch) -> ModelBatch) {
        self.trainer = trainer
        self.plan = plan
        self.settings = settings
        self.hooks = hooks
        self.makeBatch = makeBatch
    }

    /// A snapshot of the running figures (thread-safe).
    public var progress: Progress { progressLock.withLock { _progress } }

    /// Steps per epoch after the cap.
    public var stepsPerEpoch: Int {
        settings.stepsPerEpoch > 0 ? min(settings.stepsPerEpoch, plan.batchCount) : plan.batchCount
    }

    /// Runs all epochs; returns the mean training loss of the last epoch.
    @discardableResult
    public func run() async throws -> Double {
        if settings.miniBatchL2 > 0 && trainer.regularizer == nil {
            trainer.regularizer = .counting(lambda: Float(settings.miniBatchL2), plan: plan,
                                            tables: Set(trainer.tableDims.keys), makeBatch: makeBatch)
            hooks.progress("regularising \(trainer.regularizer!.counts.count) features (mini-batch aware L2, λ \(settings.miniBatchL2))")
        }
        let start = Date()
        let cpuStart = Self.processCPUSeconds()
        var lastReport = start
        let from = settings.start ?? WorkerPosition(rank: 0, epoch: 0, batch: 0, clock: 0, samples: 0)
        var clock = from.clock
        let startSamples = from.samples
        progressLock.withLock {
            _progress.clock = clock
            _progress.samples = from.samples
            _progress.position = from
        }
        var lastEpochLoss = Double.nan
        let totalSteps = settings.maxSteps > 0 ? min(settings.maxSteps, stepsPerEpoch * settings.epochs) : stepsPerEpoch * settings.epochs
        for epoch in from.epoch..<max(from.epoch, settings.epochs) {
            let batches = Array(plan.batches(epoch: epoch, seed: settings.seed).prefix(stepsPerEpoch))
            // A resumed run continues its epoch's batches and running loss where the checkpoint left them.
            let resumed = epoch == from.epoch
            var lossSum = resumed ? from.epochLossSum : 0.0, lossCount = resumed ? from.epochLossCount : 0
            let firstBatch = resumed ? min(from.batch, batches.count) : 0
            var next: Task<Trainer.Fetched, Error>? = nil
            let fetchBatch: @Sendable (Int) -> Task<Trainer.Fetched, Error> = { [trainer, plan, makeBatch] i in
                Task { try await trainer.fetch(makeBatch(plan.gather(batches[i]))) }
            }
            for i in firstBatch..<batches.count {
                if hooks.shouldStop() || (settings.maxSteps > 0 && clock >= settings.maxSteps) { next?.cancel(); break }
                // The fetch runs in its own task (so it can overlap the previous step); a cancel
                // of this loop must reach it, or a pull to a server that died waits out its timeout.
                let fetch = next ?? fetchBatch(i)
                let fetched = try await withTaskCancellationHandler { try await fetch.value } onCancel: { fetch.cancel() }
                next = settings.pipelined && i + 1 < batches.count ? fetchBatch(i + 1) : nil
                clock += 1
                let out = try await trainer.step(fetched, clock: clock)
                lossSum += out.loss * Double(fetched.batch.size)
                lossCount += fetched.batch.size
                let samples = progressLock.withLock { _progress.samples } + fetched.batch.size
                let position = WorkerPosition(rank: 0, epoch: epoch, batch: i + 1, clock: clock, samples: samples,
                                              epochLossSum: lossSum, epochLossCount: lossCount)
                // Progress (which heartbeats report) moves on only once the step's hook has
                // run: the coordinator learns a worker's clock from its advance first.
                try await hooks.afterStep(position)
                let elapsed = Date().timeIntervalSince(start)
                progressLock.withLock {
                    _progress.clock = clock
                    _progress.samples = samples
                    _progress.recentLoss = lossSum / Double(max(lossCount, 1))
                    _progress.samplesPerSecond = Double(samples - startSamples) / max(elapsed, 1e-9)
                    _progress.seconds = elapsed
                    _progress.cpuSeconds = Self.processCPUSeconds() - cpuStart
                    _progress.position = position
                }
                hooks.stepped(progress, fetched.batch.size)
                if settings.progressInterval > 0, Date().timeIntervalSince(lastReport) >= settings.progressInterval {
                    lastReport = Date()
                    let p = progress
                    let eta = p.samplesPerSecond > 0 ? Double(totalSteps - clock) * Double(plan.batchSize) / p.samplesPerSecond : 0
                    hooks.progress(String(format: "epoch %d  step %d/%d  loss %.4f  %.0f samples/s  ETA %.0f s",
                                          epoch + 1, clock, totalSteps, p.recentLoss, p.samplesPerSecond, eta))
                }
            }
            lastEpochLoss = lossSum / Double(max(lossCount, 1))
            hooks.progress(String(format: "epoch %d done  train loss %.4f  %d steps", epoch + 1, lastEpochLoss, clock))
            try await hooks.afterEpoch(epoch)
            if hooks.shouldStop() || (settings.maxSteps > 0 && clock >= settings.maxSteps) { break }
        }
        return lastEpochLoss
    }

    /// CPU time of this process, every thread, in seconds.
    static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Predicts every record of `evalPlan` (file order) and computes AUC, GAUC, log loss.
    public func evaluate(_ evalPlan: BatchPlan) async throws -> Evaluation {
        try await Self.evaluate(evalPlan, trainer: trainer, makeBatch: makeBatch)
    }

    /// `evaluate(_:)` for code that has the trainer and batch adapter but no loop yet
    /// (an epoch hook set up before the loop is built).
    public static func evaluate(_ evalPlan: BatchPlan, trainer: Trainer,
                                makeBatch: (SampleBatch) -> ModelBatch) async throws -> Evaluation {
        if let next = trainer.model as? any NextItemModel {
            // Next-item models are ranked over the catalogue (HR, NDCG, MRR), not scored per record.
            return Evaluation(nextItem: try await NextItemEvaluation.evaluate(model: next, params: trainer.params, shards: evalPlan.shards))
        }
        var predictions: [Float] = [], labels: [Float] = [], users: [UInt64] = []
        for b in evalPlan.batches(epoch: 0, seed: 0, shuffle: false) {
            let batch = makeBatch(evalPlan.gather(b))
            predictions += try await trainer.predict(batch)
            labels += batch.labels
            users += batch.users
        }
        return Evaluation(predictions: predictions, labels: labels, users: users)
    }
}
