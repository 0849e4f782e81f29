import HeedData

/// A model that scores every catalogue item as a user's next item from the user's history:
/// a user vector `u` (D) per record, and the score of item i is `u · E[i]` with `E` the rows
/// of `itemTable`. That form lets evaluation and `heed recommend` score the whole catalogue
/// with one matrix product per block of users (`ItemScorer`). `sasrec` conforms.
public protocol NextItemModel: StatefulRecommender {
    /// The embedding table holding the candidate items' rows.
    var itemTable: UInt8 { get }
    /// Width D of user vectors and item rows.
    var embeddingDim: Int { get }
    /// Reads records into batches (training with negatives, inference without).
    var batcher: SASRecBatcher { get }
    /// Gives the model the dataset's catalogue (sorted item keys): the candidates of
    /// evaluation and the pool negatives are drawn from.
    mutating func attachCatalog(_ keys: [UInt64], schema: SampleSchema) throws
    /// (B × D) user vectors of an inference batch (`batcher.inferenceBatch`), row-major.
    mutating func userVectors(_ batch: ModelBatch, rows: BatchRows) -> [Float]
    /// (B × W) how much each input position drew the last position's attention (last block,
    /// mean over heads; 0 at padding), from the last `userVectors` call: explanations.
    func lastAttention() -> [Float]
}
