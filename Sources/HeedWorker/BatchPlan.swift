import HeedCore
import HeedData

/// The order in which a worker visits its records: every epoch the shards and the
/// records inside each shard are shuffled with a seeded generator (seed, epoch), and
/// records are cut into batches that never span two shards (a shard's last batch may
/// be smaller). Same seed, same order, on any machine.
public struct BatchPlan: Sendable {
    /// One batch: which shard and which of its records.
    public struct Batch: Sendable {
        public var shard: Int
        public var records: [Int]
    }

    /// The worker's shards.
    public let shards: [SampleShard]
    /// Records per batch.
    public let batchSize: Int

    public init(shards: [SampleShard], batchSize: Int) {
        precondition(batchSize >= 1, "batch size must be >= 1")
        self.shards = shards
        self.batchSize = batchSize
    }

    /// Batches per epoch.
    public var batchCount: Int {
        shards.reduce(0) { $0 + ($1.count + batchSize - 1) / batchSize }
    }

    /// Total records.
    public var recordCount: Int { shards.reduce(0) { $0 + $1.count } }

    /// The batches of `epoch`; `shuffle: false` keeps file order (evaluation).
    public func batches(epoch: Int, seed: UInt64, shuffle: Bool = true) -> [Batch] {
        var rng = SeededGenerator(seed: KeyHash.mix64(seed ^ (UInt64(epoch) &* 0x9E37_79B9)))
        var shardOrder = Array(shards.indices)
        if shuffle { shardOrder.shuffle(using: &rng) }
        var out: [Batch] = []
        out.reserveCapacity(batchCount)
        for s in shardOrder {
            var records = Array(0..<shards[s].count)
            if shuffle { records.shuffle(using: &rng) }
            var start = 0
            while start < records.count {
                let end = min(start + batchSize, records.count)
                out.append(Batch(shard: s, records: Array(records[start..<end])))
                start = end
            }
        }
        return out
    }

    /// Gathers a batch's records.
    public func gather(_ batch: Batch) -> SampleBatch {
        SampleBatch.gather(from: shards[batch.shard], records: batch.records)
    }
}
