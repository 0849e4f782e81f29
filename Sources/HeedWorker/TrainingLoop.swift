import Foundation
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

        public init(epochs: Int, maxSteps: Int = 0, stepsPerEpoch: Int = 0, pipelined: Bool, seed: UInt64, progressInterval: Double = 5,
                    miniBatchL2: Double = 0) {
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
        /// After step `clock` has pushed its gradients (bounded: advance; sync: step barrier).
        public var afterStep: @Sendable (_ clock: Int) async throws -> Void = { _ in }
        /// After an epoch's last step.
        public var afterEpoch: @Sendable (_ epoch: Int) async throws -> Void = { _ in }
        /// A progress line.
        public var progress: @Sendable (String) -> Void = { _ in }
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
        var lastReport = start
        var clock = 0
        var lastEpochLoss = Double.nan
        let totalSteps = settings.maxSteps > 0 ? min(settings.maxSteps, stepsPerEpoch * settings.epochs) : stepsPerEpoch * settings.epochs
        for epoch in 0..<settings.epochs {
            let batches = Array(plan.batches(epoch: epoch, seed: settings.seed).prefix(stepsPerEpoch))
            var lossSum = 0.0, lossCount = 0
            var next: Task<Trainer.Fetched, Error>? = nil
            let fetchBatch: @Sendable (Int) -> Task<Trainer.Fetched, Error> = { [trainer, plan, makeBatch] i in
                Task { try await trainer.fetch(makeBatch(plan.gather(batches[i]))) }
            }
            for i in batches.indices {
                if hooks.shouldStop() || (settings.maxSteps > 0 && clock >= settings.maxSteps) { next?.cancel(); break }
                // The fetch runs in its own task (so it can overlap the previous step); a cancel
                // of this loop must reach it, or a pull to a server that died waits out its timeout.
                let fetch = next ?? fetchBatch(i)
                let fetched = try await withTaskCancellationHandler { try await fetch.value } onCancel: { fetch.cancel() }
                next = settings.pipelined && i + 1 < batches.count ? fetchBatch(i + 1) : nil
                clock += 1
                let out = try await trainer.step(fetched, clock: clock)
                try await hooks.afterStep(clock)
                lossSum += out.loss * Double(fetched.batch.size)
                lossCount += fetched.batch.size
                let elapsed = Date().timeIntervalSince(start)
                progressLock.withLock {
                    _progress.clock = clock
                    _progress.samples += fetched.batch.size
                    _progress.recentLoss = lossSum / Double(max(lossCount, 1))
                    _progress.samplesPerSecond = Double(_progress.samples) / max(elapsed, 1e-9)
                }
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

    /// Predicts every record of `evalPlan` (file order) and computes AUC, GAUC, log loss.
    public func evaluate(_ evalPlan: BatchPlan) async throws -> Evaluation {
        try await Self.evaluate(evalPlan, trainer: trainer, makeBatch: makeBatch)
    }

    /// `evaluate(_:)` for code that has the trainer and batch adapter but no loop yet
    /// (an epoch hook set up before the loop is built).
    public static func evaluate(_ evalPlan: BatchPlan, trainer: Trainer,
                                makeBatch: (SampleBatch) -> ModelBatch) async throws -> Evaluation {
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
