/// Where one worker stood in its data when a checkpoint was taken: enough to continue
/// exactly there (the batch order is a function of the seed, the rank and the epoch).
public struct WorkerPosition: Codable, Equatable, Sendable {
    public var rank: Int
    /// The epoch to continue in.
    public var epoch: Int
    /// Index of the next batch of that epoch's order.
    public var batch: Int
    /// Steps taken so far (the worker's clock).
    public var clock: Int
    /// Samples trained on so far.
    public var samples: Int
    /// The running loss sum and sample count of the current epoch, so the curve continues.
    public var epochLossSum: Double
    public var epochLossCount: Int
    /// The worker's non-learned model state (Dice's moving averages).
    public var statistics: [Float]

    public init(rank: Int, epoch: Int, batch: Int, clock: Int, samples: Int, epochLossSum: Double = 0, epochLossCount: Int = 0,
                statistics: [Float] = []) {
        self.rank = rank
        self.epoch = epoch
        self.batch = batch
        self.clock = clock
        self.samples = samples
        self.epochLossSum = epochLossSum
        self.epochLossCount = epochLossCount
        self.statistics = statistics
    }
}

/// What a worker sends when it pauses for a checkpoint (`checkpoint-arrive`, JSON).
public struct CheckpointArrival: Codable, Equatable, Sendable {
    /// The checkpoint generation the coordinator asked for.
    public var generation: Int
    public var position: WorkerPosition
    public init(generation: Int, position: WorkerPosition) {
        self.generation = generation
        self.position = position
    }
}
