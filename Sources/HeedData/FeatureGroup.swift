import HeedCore

/// The feature groups of prepared samples: the top 8 bits of every feature key.
///
/// A key is `FeatureKey(group: g.rawValue, id: rawID)`: group id in bits 56...63, the
/// 56-bit SplitMix64 hash of the raw id below (`KeyHash.mix64`). Textual raw ids are
/// first folded to a 64-bit raw id with `FeatureGroup.rawID(bytes:)` (FNV-1a), so
/// `key(rawID(bytes: s)) == FeatureKey(group:id: s)` for every string `s`.
/// The numbers are part of the on-disk format and of every checkpoint: never renumber.
public enum FeatureGroup: UInt8, Codable, CaseIterable, Sendable {
    /// Reserved: key 0 is the padding key of `SampleBatch`; no real key has group 0.
    case padding = 0
    /// A user (also used for social neighbours, so a neighbour shares its own user row).
    case user = 1
    /// An item (target item, history items, complement/substitute items).
    case item = 2
    /// An item category (leaf category, `product_category`, Taobao category id).
    case category = 3
    /// An item attribute token: brand, category-path token, department, manufacturer.
    case attribute = 4
    /// A behaviour type (`EventType`: view, cart, fav, purchase, rating).
    case eventType = 5
    /// Recency bucket of a history behaviour relative to the target (`TimeGap.bucket`).
    case timeGap = 6
    /// Price level of an item within its category (quantile bucket, 0 = cheapest).
    case priceLevel = 7
    /// A user's spending level: bucket of the mean price level of the user's history.
    case spendLevel = 8
    /// Household income band (Complete Journey `income`, e.g. `50-74K`).
    case incomeBand = 9
    /// Household age band (Complete Journey `age`, e.g. `45-54`).
    case ageBand = 10
    /// A lower-cased word of an item title or product name.
    case textToken = 11
    /// An item's pre-trained text vector (`text-tower`): the item's own raw id in this group,
    /// so the key is the item key with group 12 in the top byte. No prepared slot holds
    /// these keys; the model derives them from `item` and `hist_items`.
    case itemText = 12

    /// Raw id that stands for "missing" (an item without category, a household without
    /// income band); it has its own key so aligned sequences keep their alignment.
    public static let missingRawID: UInt64 = .max

    /// Feature key of a numeric (or already folded) raw id in this group.
    @inlinable
    public func key(_ rawID: UInt64) -> UInt64 {
        FeatureKey(group: rawValue, id: rawID).rawValue
    }

    /// Key standing for a missing value in this group.
    public var missingKey: UInt64 { key(Self.missingRawID) }

    /// Folds a textual id to the 64-bit raw id whose key equals `FeatureKey(group:id: text)`.
    ///
    /// Ids made only of ASCII digits (at most 19 of them) are numbers and are parsed
    /// instead, so `"123"` and `123` give the same key in every dataset.
    @inlinable
    public static func rawID(bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        if let n = ByteParse.uint64(bytes, 0, bytes.count), bytes.count <= 19 { return n }
        return fnv1a(bytes)
    }

    /// `rawID(bytes:)` for a Swift string (slow path for tools and tests).
    public static func rawID(_ text: String) -> UInt64 {
        var s = text
        return s.withUTF8 { rawID(bytes: $0) }
    }

    /// FNV-1a over the bytes: the pre-mix half of `KeyHash.hashBytes`.
    @inlinable
    public static func fnv1a(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// A lower-case human name, as used in schemas and `--describe` output.
    public var name: String {
        switch self {
        case .padding: "padding"
        case .user: "user"
        case .item: "item"
        case .category: "category"
        case .attribute: "attribute"
        case .eventType: "event_type"
        case .timeGap: "time_gap"
        case .priceLevel: "price_level"
        case .spendLevel: "spend_level"
        case .incomeBand: "income_band"
        case .ageBand: "age_band"
        case .textToken: "text_token"
        case .itemText: "item_text"
        }
    }
}
