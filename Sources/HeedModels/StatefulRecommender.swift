/// What a trainer needs from a model beyond `RecommenderModel`: the batch fields it reads
/// (so a worker builds `ModelBatch`es of those fields only and pulls only the tables in
/// `tableDims`) and its non-learned running statistics (Dice), which inference uses and
/// checkpoints keep but dense gradients never touch. `base` and `din` conform.
public protocol StatefulRecommender: RecommenderModel {
    /// Names of the `ModelBatch` fields the model reads.
    var inputFields: [String] { get }
    /// Running statistics in a fixed order (empty when the model has none).
    func statistics() -> [Float]
    /// Restores `statistics()` output (e.g. from a checkpoint, before evaluation).
    mutating func loadStatistics(_ flat: [Float])
}

extension BaseModel: StatefulRecommender {}
extension DINModel: StatefulRecommender {}
