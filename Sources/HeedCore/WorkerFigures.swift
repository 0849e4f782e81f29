import Foundation

/// One worker's training figures: what `heed train` sums into the cluster's totals.
public struct WorkerFigures: Codable, Sendable, Equatable {
    public var rank: Int
    /// Steps and samples this worker trained on (a resumed run counts from the start of training).
    public var steps: Int
    public var samples: Int
    /// Samples per second over this worker's training time in this process (evaluation excluded).
    public var samplesPerSecond: Double
    /// Seconds this worker spent in its training loop in this process.
    public var seconds: Double

    public init(rank: Int, steps: Int, samples: Int, samplesPerSecond: Double, seconds: Double) {
        self.rank = rank
        self.steps = steps
        self.samples = samples
        self.samplesPerSecond = samplesPerSecond
        self.seconds = seconds
    }
}
