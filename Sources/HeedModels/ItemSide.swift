import Foundation
import HeedCore
import HeedData

/// The item side of a prepared dataset's catalogue (`items.heeds`): per item its category,
/// price level, price and its complement / substitute links, in the catalogue's sorted key
/// order. `hybrid` reads categories and price levels as features; cross-sell and upsell
/// filter on categories and prices; their evaluation takes the links as ground truth.
public struct ItemSide: Sendable {
    /// (C) sorted item keys.
    public let keys: [UInt64]
    /// (C) raw item ids as in the input files.
    public let rawIDs: [UInt64]
    /// (C) category key, `FeatureGroup.category.missingKey` when the item has none.
    public let categories: [UInt64]
    /// (C) price-level key (`FeatureGroup.priceLevel`), nil for the whole catalogue when the
    /// dataset has no prices; `priceLevel.missingKey` for an item without a price.
    public let priceLevels: [UInt64]?
    /// (C) price level 0…levels−1, −1 when unknown (empty when the dataset has no prices).
    public let levels: [Int]
    /// (C) unit price, nil when unknown.
    public let prices: [Double?]
    /// (C) also-bought links (`complements` slot), item keys; empty lists without the slot.
    public let complements: [[UInt64]]
    /// (C) also-viewed links (`substitutes` slot), item keys.
    public let substitutes: [[UInt64]]

    /// Whether the dataset has prices (`price_level` in the catalogue).
    public var hasPrices: Bool { priceLevels != nil }
    /// Whether the dataset has complement links.
    public var hasLinks: Bool { complements.contains { !$0.isEmpty } }

    /// Reads the catalogue of the prepared dataset at `directory`.
    /// - Throws: `HeedError` if the manifest or catalogue cannot be read or has no item slot.
    public static func load(dataDirectory directory: String) throws -> ItemSide {
        let manifest = try DatasetManifest.load(directory: directory)
        return try ItemSide(catalog: try manifest.openCatalog(directory: directory), source: directory)
    }

    /// The item side of an opened catalogue shard; `source` names it in errors.
    public init(catalog: SampleShard, source: String) throws {
        let schema = catalog.schema
        guard let itemSlot = schema.slotIndex("item") else { throw HeedError(.corrupt, "\(source): the catalogue has no item slot") }
        let categorySlot = schema.slotIndex("category"), levelSlot = schema.slotIndex("price_level")
        let complementSlot = schema.slotIndex("complements"), substituteSlot = schema.slotIndex("substitutes")
        let priceIndex = schema.denseIndex("log_price")
        let order = (0..<catalog.count).sorted { catalog.keys(slot: itemSlot, record: $0)[0] < catalog.keys(slot: itemSlot, record: $1)[0] }
        keys = order.map { catalog.keys(slot: itemSlot, record: $0)[0] }
        rawIDs = order.map { catalog.itemID($0) }
        categories = order.map { r in categorySlot.flatMap { catalog.keys(slot: $0, record: r).first } ?? FeatureGroup.category.missingKey }
        if let levelSlot {
            let keys = order.map { catalog.keys(slot: levelSlot, record: $0).first ?? FeatureGroup.priceLevel.missingKey }
            priceLevels = keys
            // Keys hash the level; the levels a dataset uses are few, so invert by lookup.
            let byKey = Dictionary(uniqueKeysWithValues: (0..<256).map { (FeatureGroup.priceLevel.key(UInt64($0)), $0) })
            levels = keys.map { byKey[$0] ?? -1 }
        } else {
            priceLevels = nil
            levels = []
        }
        // log_price = ln(1 + price), 0 when unknown.
        prices = order.map { r in
            guard let priceIndex else { return nil }
            let lp = Double(catalog.denseValue(r, priceIndex))
            return lp > 0 ? exp(lp) - 1 : nil
        }
        complements = order.map { r in complementSlot.map { catalog.keys(slot: $0, record: r) } ?? [] }
        substitutes = order.map { r in substituteSlot.map { catalog.keys(slot: $0, record: r) } ?? [] }
        for (a, b) in zip(keys, keys.dropFirst()) where a == b {
            throw HeedError(.corrupt, "\(source): item \(FeatureKey(rawValue: a)) appears twice in the catalogue")
        }
    }

    /// C.
    public var count: Int { keys.count }

    /// Index of `key`, or nil.
    public func index(of key: UInt64) -> Int? {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo < keys.count && keys[lo] == key ? lo : nil
    }

    /// The category key of `key` (missing key for an item outside the catalogue).
    public func category(of key: UInt64) -> UInt64 {
        index(of: key).map { categories[$0] } ?? FeatureGroup.category.missingKey
    }

    /// The price-level key of `key`, or nil when the dataset has no prices.
    public func priceLevel(of key: UInt64) -> UInt64? {
        guard let priceLevels else { return nil }
        return index(of: key).map { priceLevels[$0] } ?? FeatureGroup.priceLevel.missingKey
    }
}

/// A model that reads item-side features (categories, price levels) and so needs the
/// catalogue's `ItemSide` beside its keys. `hybrid` conforms; `ModelCatalog.make` attaches it.
public protocol ItemSideModel {
    /// Gives the model the dataset's item side.
    mutating func attachItemSide(_ side: ItemSide) throws
}
