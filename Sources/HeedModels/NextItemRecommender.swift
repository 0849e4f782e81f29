#if canImport(Glibc)
import Glibc
#endif
import HeedCore
import HeedData

/// One recommended item.
public struct RecommendedItem: Codable, Equatable, Sendable {
    /// The item's raw id as in the input files (numeric ids; textual ids are their 64-bit fold).
    public var item: UInt64
    /// The model's score `u · E[item]`.
    public var score: Float
    /// The item's category feature key (`group:hash`), when the catalogue has categories.
    public var category: String?
    /// Unit price, when the dataset has prices.
    public var price: Double?

    public init(item: UInt64, score: Float, category: String?, price: Double?) {
        self.item = item
        self.score = score
        self.category = category
        self.price = price
    }
}

/// A history item and the attention it drew from the last position (the explanation).
public struct AttendedItem: Codable, Equatable, Sendable {
    /// Raw item id.
    public var item: UInt64
    /// Mean attention weight over heads in the last block.
    public var weight: Float
}

/// Top-K next items for a history, with the items that drew the most attention.
public struct NextItemRecommendations: Codable, Equatable, Sendable {
    /// Items of the history the model read (its last W), oldest first, as raw ids.
    public var history: [UInt64]
    /// Best first.
    public var items: [RecommendedItem]
    /// History items by attention, highest first ("because you bought …").
    public var because: [AttendedItem]
}

/// Ranks the whole catalogue for one history with a trained `NextItemModel`: one forward,
/// one (1 × D)·(D × C) product, top-K without the history's items.
public struct NextItemRecommender {
    var model: any NextItemModel
    let params: any ParameterAccess
    /// Every catalogue row.
    public let scorer: ItemScorer
    /// Item key → raw id, category key, price.
    let rawItem: [UInt64: UInt64], category: [UInt64: UInt64], price: [UInt64: Double]

    /// Loads the dense vector and every catalogue row of `model` from `params`, and the
    /// catalogue's raw ids, categories and prices.
    public init(model: any NextItemModel, params: any ParameterAccess, catalog: SampleShard) async throws {
        var m = model
        m.loadDenseParameters(try await params.pullDense())
        self.model = m
        self.params = params
        scorer = try await ItemScorer.catalog(of: m, params: params)
        let itemSlot = catalog.schema.slotIndex("item"), categorySlot = catalog.schema.slotIndex("category")
        let priceIndex = catalog.schema.denseIndex("log_price")
        var raw: [UInt64: UInt64] = [:], cat: [UInt64: UInt64] = [:], prices: [UInt64: Double] = [:]
        for r in 0..<catalog.count {
            guard let itemSlot else { break }
            let key = catalog.keys(slot: itemSlot, record: r)[0]
            raw[key] = catalog.itemID(r)
            if let categorySlot, let c = catalog.keys(slot: categorySlot, record: r).first, c != FeatureGroup.category.missingKey { cat[key] = c }
            // log_price = ln(1 + price), 0 when unknown.
            if let priceIndex { let lp = Double(catalog.denseValue(r, priceIndex)); if lp > 0 { prices[key] = exp(lp) - 1 } }
        }
        rawItem = raw; category = cat; price = prices
    }

    /// (C) scores of every catalogue item after `history` for raw user `userID` (models that
    /// read users, e.g. hybrid; `HybridBatcher.anonymousUser` for none).
    public mutating func scores(history: [UInt64], user userID: UInt64) async throws -> [Float] {
        let batch = model.batcher.inferenceBatch(histories: [history[...]], users: [userID])
        let user = model.userVectors(batch, rows: try await ItemScorer.pullInputRows(of: model, batch: batch, params: params))
        return scorer.scores(users: user, count: 1)
    }

    /// (C) scores of every catalogue item for a list around `history`'s last item (the
    /// anchor): `ShopListEvaluation.listScores` (hybrid with `anchor_weight` > 0), else `scores`.
    public mutating func listScores(history: [UInt64], user userID: UInt64) async throws -> [Float] {
        let batch = model.batcher.inferenceBatch(histories: [history[...]], users: [userID])
        let rows = try await ItemScorer.pullInputRows(of: model, batch: batch, params: params)
        if let anchored = ShopListEvaluation.listScores(model: model, batch: batch, rows: rows, anchors: [history.last!], scorer: scorer) {
            return anchored
        }
        return scorer.scores(users: model.userVectors(batch, rows: rows), count: 1)
    }

    /// The item key of a raw id, if it is in the catalogue.
    public func itemKey(raw id: UInt64) -> UInt64? {
        let key = FeatureGroup.item.key(id)
        return scorer.index(of: key) == nil ? nil : key
    }

    /// The `k` best next items after `history` (item keys, oldest first), leaving out the
    /// history's own items unless `keepHistory`; `explain` history items by attention.
    public mutating func recommend(history: [UInt64], k: Int, keepHistory: Bool = false, explain: Int = 3,
                                   user userID: UInt64 = 0) async throws -> NextItemRecommendations {
        var scores = try await scores(history: history, user: userID)
        if !keepHistory {
            for key in history { if let i = scorer.index(of: key) { scores[i] = -Float.infinity } }
        }
        let top = ItemScorer.topK(scores[...], k: k)
        let items = top.map { i in
            let key = scorer.keys[i]
            return RecommendedItem(item: rawItem[key] ?? key, score: scores[i], category: category[key].map { FeatureKey(rawValue: $0).description },
                                   price: price[key])
        }
        // The window the model read, and the attention of its last position over it.
        let window = Array(history.suffix(model.batcher.window))
        let weights = model.lastAttention()
        let attended = window.indices.map { AttendedItem(item: rawItem[window[$0]] ?? window[$0], weight: $0 < weights.count ? weights[$0] : 0) }
        let because = attended.sorted { $0.weight > $1.weight }.prefix(explain)
        return NextItemRecommendations(history: window.map { rawItem[$0] ?? $0 }, items: items, because: Array(because))
    }
}

/// Every user's known item sequence in a prepared next-item dataset: per raw user id, the
/// longest history + target among its records (the test record's, in leave-one-out data),
/// as item keys, oldest first.
public enum UserHistories {
    /// Reads every split of the dataset at `directory`.
    public static func load(_ manifest: DatasetManifest, directory: String) throws -> [UInt64: [UInt64]] {
        var out: [UInt64: [UInt64]] = [:]
        for split in Split.allCases {
            for shard in try manifest.open(split, directory: directory) {
                guard let h = shard.schema.slotIndex("hist_items"), let t = shard.schema.slotIndex("item") else {
                    throw HeedError(.config, "\(directory) has no hist_items/item slots (prepare it with --protocol seq)")
                }
                for r in 0..<shard.count {
                    let user = shard.userID(r)
                    let n = shard.keyCount(slot: h, record: r) + 1
                    if (out[user]?.count ?? 0) < n { out[user] = shard.keys(slot: h, record: r) + shard.keys(slot: t, record: r) }
                }
            }
        }
        return out
    }
}
