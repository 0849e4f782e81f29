/// A user behaviour kind, stored per history position and keyed in `FeatureGroup.eventType`.
public enum EventType: UInt8, Codable, CaseIterable, Sendable {
    /// Item page view or click (Taobao `pv`).
    case view = 1
    /// Add to cart (Taobao `cart`).
    case cart = 2
    /// Add to favourites (Taobao `fav`).
    case fav = 3
    /// Purchase (Taobao `buy`, invoice or basket lines).
    case purchase = 4
    /// Rating or review (Amazon reviews, Ciao ratings).
    case rating = 5

    /// The canonical name written in schemas and accepted in generic event files.
    public var name: String {
        switch self {
        case .view: "view"
        case .cart: "cart"
        case .fav: "fav"
        case .purchase: "purchase"
        case .rating: "rating"
        }
    }

    /// The names accepted in event files, as documented in docs/data-format.md.
    public static let acceptedNames = "pv|view|click, cart, fav, buy|purchase|order, rating|rate|review"

    /// Parses an event name (case-sensitive, as the sources write them); nil if unknown.
    @inlinable
    public static func parse(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> EventType? {
        // Safe: the caller passes start <= end <= b.count.
        let n = end - start
        func eq(_ s: StaticString) -> Bool {
            guard s.utf8CodeUnitCount == n else { return false }
            let p = s.utf8Start
            for i in 0..<n where b[start + i] != p[i] { return false }
            return true
        }
        switch n {
        case 2: if eq("pv") { return .view }
        case 3: if eq("buy") { return .purchase }; if eq("fav") { return .fav }
        case 4: if eq("cart") { return .cart }; if eq("view") { return .view }; if eq("rate") { return .rating }
        case 5: if eq("click") { return .view }; if eq("order") { return .purchase }
        case 6: if eq("rating") { return .rating }; if eq("review") { return .rating }
        case 8: if eq("purchase") { return .purchase }
        default: break
        }
        return nil
    }
}
