import Foundation
import HeedCore
import HeedData

/// Turns prepared next-item records (`heed prepare --protocol seq`) into SASRec batches and
/// draws their negatives.
///
/// A record has the user's items before its target (`hist_items`, oldest first) and the
/// target (`item`). Its sequence `s = hist ‖ target` gives, over the last W inputs
/// (W = `window`, SASRec's n):
/// - `seq` (B × W): `s[m − W' ..< m]` with m = |hist|, W' = min(W, m), right-padded;
/// - `pos` (B × W): the item after each input, `s[m − W' + 1 ... m]`;
/// - `neg`: for `bce`, (B × W) one negative per position, uniform over the catalogue and
///   outside the user's items (hist and target; up to 100 draws, then the last is kept);
///   for `sampled-softmax`, `negatives` distinct catalogue items shared by the batch (one
///   row of that length); for `softmax`, the whole catalogue.
///
/// Negatives are seeded per record: the k-th time a record (user, target) is batched, its
/// draws come from `SeededGenerator(seed: mix64(seed ^ mix64(user) ^ mix64(target &+ k)))`;
/// a batch's shared draws from the XOR of its records' seeds. So a record gets the same
/// negatives in its k-th epoch whichever worker reads it and in whatever batch, which is
/// what makes a synchronous cluster equal the single-process run.
/// Not final: `HybridBatcher` adds the user and item-side fields `hybrid` reads.
public class SASRecBatcher: @unchecked Sendable {
    /// W: the most recent items fed to the model.
    public let window: Int
    /// The training loss the negatives are drawn for.
    public let loss: NextItemLoss
    /// Shared negatives per batch (`sampled-softmax`).
    public let negatives: Int
    /// Sorted keys of every candidate item (the prepared dataset's catalogue).
    public let catalog: [UInt64]
    /// Seed of the negative draws.
    public let seed: UInt64
    /// Slot indices of `hist_items` and `item` in the dataset schema.
    let historySlot: Int, targetSlot: Int
    /// Times each record (mix of user and target) has been batched.
    private var uses: [UInt64: UInt64] = [:]
    private let lock = NSLock()

    /// A batcher for records of `schema`.
    /// - Throws: `HeedError(.config)` if the schema lacks `hist_items` or `item`.
    public init(schema: SampleSchema, window: Int, loss: NextItemLoss, negatives: Int, catalog: [UInt64], seed: UInt64) throws {
        guard let h = schema.slotIndex("hist_items"), let t = schema.slotIndex("item") else {
            throw HeedError(.config, "model sasrec needs the slots hist_items and item (prepare the data with --protocol seq); the dataset has \(schema.slots.map(\.name).joined(separator: ", "))")
        }
        self.window = window
        self.loss = loss
        self.negatives = negatives
        self.catalog = catalog.sorted()
        self.seed = seed
        historySlot = h
        targetSlot = t
    }

    /// The same settings with another catalogue (fresh use counts).
    public func with(catalog: [UInt64], schema: SampleSchema) throws -> SASRecBatcher {
        try SASRecBatcher(schema: schema, window: window, loss: loss, negatives: negatives, catalog: catalog, seed: seed)
    }

    /// Record `row`'s history (every stored item, oldest first).
    public func history(_ batch: SampleBatch, row: Int) -> ArraySlice<UInt64> {
        let width = batch.schema.slots[historySlot].maxLength
        let n = Int(batch.lengths[historySlot][row])
        return batch.keys[historySlot][(row * width)..<(row * width + n)]
    }

    /// Record `row`'s target item key.
    public func target(_ batch: SampleBatch, row: Int) -> UInt64 { batch.keys[targetSlot][row] }

    /// The inference batch: `seq` only (the last W history items of every record).
    public func inferenceBatch(_ batch: SampleBatch) -> ModelBatch {
        inferenceBatch(histories: (0..<batch.size).map { history(batch, row: $0) }, users: batch.userIDs)
    }

    /// The inference batch of item histories (oldest first): `seq` = the last W of each.
    public func inferenceBatch(histories: [ArraySlice<UInt64>], users: [UInt64]) -> ModelBatch {
        let b = histories.count, w = window
        var seq = [UInt64](repeating: 0, count: b * w), mask = [Float](repeating: 0, count: b * w)
        for (r, hist) in histories.enumerated() {
            for (t, k) in hist.suffix(w).enumerated() { seq[r * w + t] = k; mask[r * w + t] = 1 }
        }
        return ModelBatch(size: b, labels: [Float](repeating: 1, count: b), users: users,
                          fields: ["seq": SparseField(length: w, keys: seq, mask: mask)])
    }

    /// The training batch: `seq`, `pos` and `neg` with fresh negatives (see the type's doc).
    public func trainingBatch(_ batch: SampleBatch) -> ModelBatch {
        precondition(!catalog.isEmpty, "sasrec: no catalogue to draw negatives from (ModelCatalog.make attaches the dataset's)")
        let b = batch.size, w = window
        var seq = [UInt64](repeating: 0, count: b * w), pos = seq, neg = seq
        var mask = [Float](repeating: 0, count: b * w)
        var batchSeed: UInt64 = 0
        var userItems: [UInt64] = []
        for r in 0..<b {
            let hist = history(batch, row: r), target = target(batch, row: r)
            let s = Array(hist) + [target]
            let m = hist.count, span = min(w, m)
            for t in 0..<span {
                seq[r * w + t] = s[m - span + t]
                pos[r * w + t] = s[m - span + t + 1]
                mask[r * w + t] = 1
            }
            let recordSeed = nextSeed(user: batch.userIDs[r], target: target)
            batchSeed ^= recordSeed
            if loss == .bce && span > 0 {
                userItems = s.sorted()
                var rng = SeededGenerator(seed: recordSeed)
                for t in 0..<span { neg[r * w + t] = drawOutside(userItems, &rng) }
            }
        }
        var fields = ["seq": SparseField(length: w, keys: seq, mask: mask),
                      "pos": SparseField(length: w, keys: pos, mask: mask)]
        switch loss {
        case .bce:
            fields["neg"] = SparseField(length: w, keys: neg, mask: mask)
        case .sampledSoftmax:
            var rng = SeededGenerator(seed: batchSeed)
            let shared = sharedNegatives(&rng)
            fields["neg"] = SparseField(length: shared.count, keys: shared, mask: [Float](repeating: 1, count: shared.count))
        case .softmax:
            fields["neg"] = SparseField(length: catalog.count, keys: catalog, mask: [Float](repeating: 1, count: catalog.count))
        }
        return ModelBatch(size: b, labels: [Float](repeating: 1, count: b), users: batch.userIDs, fields: fields)
    }

    /// The seed of a record's next batching (and counts it).
    private func nextSeed(user: UInt64, target: UInt64) -> UInt64 {
        let record = KeyHash.mix64(user) ^ KeyHash.mix64(target)
        let k: UInt64 = lock.withLock {
            let k = uses[record, default: 0]
            uses[record] = k + 1
            return k
        }
        return KeyHash.mix64(seed ^ KeyHash.mix64(user) ^ KeyHash.mix64(target &+ k))
    }

    /// A uniform catalogue item not in `sortedItems` (up to 100 draws, then the last one).
    private func drawOutside(_ sortedItems: [UInt64], _ rng: inout SeededGenerator) -> UInt64 {
        var pick: UInt64 = 0
        for _ in 0..<100 {
            pick = catalog[Int(rng.next() % UInt64(catalog.count))]
            if !Self.contains(sortedItems, pick) { break }
        }
        return pick
    }

    /// `negatives` distinct uniform catalogue items, sorted (the whole catalogue if it is smaller).
    private func sharedNegatives(_ rng: inout SeededGenerator) -> [UInt64] {
        if negatives >= catalog.count { return catalog }
        var picked = Set<Int>()
        while picked.count < negatives { picked.insert(Int(rng.next() % UInt64(catalog.count))) }
        return picked.sorted().map { catalog[$0] }
    }

    /// Binary search in a sorted array.
    static func contains(_ sorted: [UInt64], _ x: UInt64) -> Bool {
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo < sorted.count && sorted[lo] == x
    }
}
