import Foundation
import HeedCore

extension WorkerFigures {
    /// The figures of `progress` for worker `rank`.
    public init(rank: Int, progress: TrainingLoop.Progress) {
        self.init(rank: rank, steps: progress.clock, samples: progress.samples, samplesPerSecond: progress.samplesPerSecond,
                  seconds: progress.seconds)
    }
}

/// What a training run reports: the whole run's throughput (every worker), each worker's
/// figures, and the test metrics.
public struct TrainingReport: Codable, Sendable {
    public var model: String
    /// Steps and samples of all workers together.
    public var steps: Int
    public var samples: Int
    /// Samples per second of all workers together: the sum of the workers' rates (they
    /// train side by side; each rate is over that worker's own training time).
    public var samplesPerSecond: Double
    /// Mean training loss of worker 0's last epoch.
    public var trainLoss: Double
    /// Metrics on the test split.
    public var test: Evaluation
    /// Every worker's figures, by rank (nil in reports written before they were kept).
    public var workers: [WorkerFigures]?

    /// A one-worker report (the in-process run; a worker's own view before `heed train`
    /// adds the others with `withWorkers(_:)`).
    public init(model: String, progress: TrainingLoop.Progress, trainLoss: Double, test: Evaluation, rank: Int = 0) {
        self.model = model
        self.trainLoss = trainLoss.isFinite ? trainLoss : -1
        self.test = test
        steps = 0
        samples = 0
        samplesPerSecond = 0
        self = withWorkers([WorkerFigures(rank: rank, progress: progress)])
    }

    /// This report with `workers` as the run's workers and the totals summed over them.
    public func withWorkers(_ workers: [WorkerFigures]) -> TrainingReport {
        var r = self
        r.workers = workers.sorted { $0.rank < $1.rank }
        r.steps = workers.reduce(0) { $0 + $1.steps }
        r.samples = workers.reduce(0) { $0 + $1.samples }
        r.samplesPerSecond = workers.reduce(0) { $0 + $1.samplesPerSecond }
        return r
    }

    /// Lines for the terminal: the totals, one line per worker when there are several, the test metrics.
    public var summary: String {
        let workers = workers ?? []
        var lines: [String] = []
        if workers.count > 1 {
            lines.append(String(format: "%@: %d workers, %d steps, %d samples, %.0f samples/s in all, train loss %.4f (worker 0)",
                                model, workers.count, steps, samples, samplesPerSecond, trainLoss))
            for w in workers {
                lines.append(String(format: "  worker %d: %d steps, %d samples, %.0f samples/s over %.1f s",
                                    w.rank, w.steps, w.samples, w.samplesPerSecond, w.seconds))
            }
        } else {
            lines.append(String(format: "%@: %d steps, %d samples, %.0f samples/s, train loss %.4f", model, steps, samples, samplesPerSecond, trainLoss))
        }
        lines.append("test \(test.summary)")
        return lines.joined(separator: "\n")
    }
}
