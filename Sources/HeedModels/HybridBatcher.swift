import HeedCore
import HeedData

/// `SASRecBatcher` plus the fields `hybrid` reads: `user` (B) the record's user key, and for
/// every item field `f` of the batch (`seq`, `pos`, `neg`) the aligned `f_cat` (category
/// keys) and, when the data has prices, `f_price` (price-level keys), read from the
/// catalogue's `ItemSide`. Putting them in fields is what makes a worker pull their rows.
///
/// A record of the anonymous user (`HybridBatcher.anonymousUser`, used for an anchor item
/// without a user) gets a padding `user` entry: its MF and user-tower inputs are zero.
public final class HybridBatcher: SASRecBatcher, @unchecked Sendable {
    /// Raw user id standing for "no user".
    public static let anonymousUser = UInt64.max
    /// The catalogue's item side (nil until attached).
    public let side: ItemSide?
    /// The dataset schema (to rebuild with another item side).
    let schema: SampleSchema

    /// A batcher for records of `schema` (see `SASRecBatcher.init`) with `side`.
    public init(schema: SampleSchema, window: Int, loss: NextItemLoss, negatives: Int, catalog: [UInt64], seed: UInt64,
                side: ItemSide?) throws {
        self.side = side
        self.schema = schema
        try super.init(schema: schema, window: window, loss: loss, negatives: negatives, catalog: catalog, seed: seed)
    }

    override public func with(catalog: [UInt64], schema: SampleSchema) throws -> SASRecBatcher {
        try HybridBatcher(schema: schema, window: window, loss: loss, negatives: negatives, catalog: catalog, seed: seed, side: side)
    }

    /// The same settings with `side` attached.
    public func with(side: ItemSide) throws -> HybridBatcher {
        try HybridBatcher(schema: schema, window: window, loss: loss, negatives: negatives, catalog: catalog, seed: seed, side: side)
    }

    override public func trainingBatch(_ batch: SampleBatch) -> ModelBatch {
        decorate(super.trainingBatch(batch))
    }

    override public func inferenceBatch(histories: [ArraySlice<UInt64>], users: [UInt64]) -> ModelBatch {
        decorate(super.inferenceBatch(histories: histories, users: users))
    }

    /// Adds `user` and the item-side fields.
    func decorate(_ batch: ModelBatch) -> ModelBatch {
        precondition(side != nil, "hybrid: no item side attached (ModelCatalog.make attaches the dataset's)")
        let side = side!
        var out = batch
        out.fields["user"] = SparseField(length: 1, keys: batch.users.map { $0 == Self.anonymousUser ? 0 : FeatureGroup.user.key($0) },
                                         mask: batch.users.map { $0 == Self.anonymousUser ? 0 : 1 })
        for name in ["seq", "pos", "neg"] {
            guard let f = batch.fields[name] else { continue }
            // Padding keeps key 0 (mask 0), so no row is pulled for it.
            out.fields[name + "_cat"] = SparseField(length: f.length, keys: zip(f.keys, f.mask).map { $1 != 0 ? side.category(of: $0) : 0 }, mask: f.mask)
            if side.hasPrices {
                out.fields[name + "_price"] = SparseField(length: f.length, keys: zip(f.keys, f.mask).map { $1 != 0 ? side.priceLevel(of: $0)! : 0 }, mask: f.mask)
            }
        }
        return out
    }
}
