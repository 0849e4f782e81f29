import CoreMetrics
import Foundation
import HeedCore
import HeedObserve

/// A worker's training figures as metrics (samples, steps, samples/s, loss, pull and push
/// latency histograms) and as `step` lines of the metrics log, at most one per
/// `eventInterval` seconds (a line per step would cost more than the step at small batches).
public final class WorkerMetrics: @unchecked Sendable {
    private let telemetry: Telemetry
    private let eventInterval: Double
    private let pull: CoreMetrics.Timer
    private let push: CoreMetrics.Timer
    private let samples: Counter
    private let steps: Counter
    private let samplesPerSecond: Gauge
    private let loss: Gauge
    private let lock = NSLock()
    private var pullSeconds = 0.0, pulls = 0, pushSeconds = 0.0, pushes = 0
    private var lastEvent = Date.distantPast

    /// Metrics named for `telemetry`'s role and rank (assign the rank first).
    public init(telemetry: Telemetry, eventInterval: Double = 1) {
        self.telemetry = telemetry
        self.eventInterval = eventInterval
        let d = telemetry.dimensions, f = telemetry.metrics
        pull = CoreMetrics.Timer(label: "heed_pull_seconds", dimensions: d, factory: f)
        push = CoreMetrics.Timer(label: "heed_push_seconds", dimensions: d, factory: f)
        samples = Counter(label: "heed_samples_total", dimensions: d, factory: f)
        steps = Counter(label: "heed_steps_total", dimensions: d, factory: f)
        samplesPerSecond = Gauge(label: "heed_samples_per_second", dimensions: d, factory: f)
        loss = Gauge(label: "heed_train_loss", dimensions: d, factory: f)
    }

    /// Records one pull's or push's wall time (the trainer's `timing`).
    public func record(_ phase: Trainer.Phase, seconds: Double) {
        switch phase {
        case .pull: pull.recordSeconds(seconds)
        case .push: push.recordSeconds(seconds)
        }
        lock.withLock {
            switch phase {
            case .pull: pullSeconds += seconds; pulls += 1
            case .push: pushSeconds += seconds; pushes += 1
            }
        }
    }

    /// Records a finished step (the loop's `stepped` hook); writes a `step` line when one is due
    /// with the mean pull and push time since the last line.
    public func stepped(_ progress: TrainingLoop.Progress, batchSize: Int) {
        samples.increment(by: batchSize)
        steps.increment()
        samplesPerSecond.record(progress.samplesPerSecond)
        if progress.recentLoss.isFinite { loss.record(progress.recentLoss) }
        let now = Date()
        let means: (pull: Double?, push: Double?)? = lock.withLock {
            guard now.timeIntervalSince(lastEvent) >= eventInterval else { return nil }
            lastEvent = now
            defer { pullSeconds = 0; pulls = 0; pushSeconds = 0; pushes = 0 }
            return (pulls > 0 ? 1000 * pullSeconds / Double(pulls) : nil, pushes > 0 ? 1000 * pushSeconds / Double(pushes) : nil)
        }
        guard let means else { return }
        telemetry.events.write("step", ["step": .int(progress.clock), "loss": .number(progress.recentLoss),
                                        "samples_per_s": .number(progress.samplesPerSecond),
                                        "pull_ms": .number(means.pull), "push_ms": .number(means.push)], at: now)
    }

    /// Writes an `epoch` line for an evaluation of `split` after epoch `epoch` (1-based).
    public func evaluated(epoch: Int, split: String, _ evaluation: Evaluation) {
        telemetry.events.write("epoch", ["epoch": .int(epoch), "split": .string(split), "auc": .number(evaluation.auc),
                                         "gauc": .number(evaluation.gauc),
                                         "logloss": evaluation.logLoss < 0 ? .null : .number(evaluation.logLoss)])
    }

    /// Connects these metrics to `trainer` and `hooks`.
    public func attach(to trainer: Trainer, hooks: inout TrainingLoop.Hooks) {
        trainer.timing = { [self] phase, seconds in record(phase, seconds: seconds) }
        let previous = hooks.stepped
        hooks.stepped = { [self] progress, batch in
            previous(progress, batch)
            stepped(progress, batchSize: batch)
        }
    }
}
