import HeedCore
import HeedData

/// The item lists `hybrid` produces around an anchor item, beside the next-item list.
public enum ShopListKind: String, CaseIterable, Codable, Sendable {
    /// Related items from categories other than the anchor's.
    case crossSell = "cross-sell"
    /// Items of the anchor's category at a higher price (price level when an item has no
    /// price); needs a dataset with prices.
    case upsell
    /// Items of the anchor's category at any price: the alternatives list, evaluated against
    /// the also-viewed (substitute) links on data without prices.
    case alternatives
}

/// Which catalogue items may appear in a list around an anchor. Lists are made by ranking
/// only the allowed items, so the rules below hold by construction; `violates` re-checks a
/// produced list independently (from the raw categories and prices) for the reported
/// violation rate and the tests.
public enum ShopListRules {
    /// Whether catalogue item `c` may appear in a `kind` list anchored at catalogue item `a`.
    ///
    /// Categories compare as keys; an item without a category has the "missing" category,
    /// so a cross-sell list from such an anchor holds only items *with* a category, and
    /// vice versa. Upsell: same category and a strictly higher price when both prices are
    /// known, else a strictly higher price level when both levels are known, else not allowed.
    public static func allows(_ kind: ShopListKind, candidate c: Int, anchor a: Int, side: ItemSide) -> Bool {
        guard c != a else { return false }
        switch kind {
        case .crossSell: return side.categories[c] != side.categories[a]
        case .alternatives: return side.categories[c] == side.categories[a]
        case .upsell:
            guard side.categories[c] == side.categories[a] else { return false }
            if let pc = side.prices[c], let pa = side.prices[a] { return pc > pa }
            if !side.levels.isEmpty, side.levels[c] >= 0, side.levels[a] >= 0 { return side.levels[c] > side.levels[a] }
            return false
        }
    }

    /// Sets the score of every item not allowed in a `kind` list around `anchor` to −∞.
    /// - Parameter scores: (C) scores in the catalogue's key order.
    public static func restrict(_ scores: UnsafeMutableBufferPointer<Float>, kind: ShopListKind, anchor: Int, side: ItemSide) {
        precondition(scores.count == side.count, "shop lists: \(scores.count) scores for \(side.count) items")
        for c in 0..<scores.count where !allows(kind, candidate: c, anchor: anchor, side: side) { scores[c] = -Float.infinity }
    }

    /// Whether listing item key `item` in a `kind` list around item key `anchor` breaks the
    /// list's promise: a cross-sell item of the anchor's own category; an upsell item of
    /// another category or not dearer than the anchor (price, or price level without prices);
    /// an alternative of another category. Checked from the item side directly, not through
    /// `allows`.
    public static func violates(_ kind: ShopListKind, item: UInt64, anchor: UInt64, side: ItemSide) -> Bool {
        guard let i = side.index(of: item), let a = side.index(of: anchor) else { return true }
        let sameCategory = side.categories[i] == side.categories[a]
        switch kind {
        case .crossSell: return sameCategory
        case .alternatives: return !sameCategory
        case .upsell:
            if !sameCategory { return true }
            if let pi = side.prices[i], let pa = side.prices[a] { return pi <= pa }
            let li = side.levels.isEmpty ? -1 : side.levels[i], la = side.levels.isEmpty ? -1 : side.levels[a]
            return li < 0 || la < 0 || li <= la
        }
    }

    /// Whether `kind` lists can be made for the dataset of `side`.
    /// - Throws: `HeedError(.config)` for upsell without prices.
    public static func check(_ kind: ShopListKind, side: ItemSide, data: String) throws {
        if kind == .upsell && !side.hasPrices {
            throw HeedError(.config, "upsell needs item prices, and \(data) has none (prepare a dataset with prices: uci-retail, completejourney, generic with prices)")
        }
    }
}
