import HeedCore
/// Everything a loader reads from the source files, before samples are built.
///
/// Events are columnar (one entry per interaction, in file order). Users and items get
/// dense indices in order of first appearance; side information is stored per index.
/// Items seen only in metadata (never in an event) stay out of the candidate pool.
package struct RawDataset {
    /// Dataset name for messages and the manifest.
    package var name: String

    /// An empty dataset called `name`, for a loader to fill; events go to `spill` when given.
    package init(name: String, spill: EventSpill? = nil) {
        self.name = name
        self.spill = spill
    }

    /// Raw user id ↔ dense user index.
    package var users = IdIndex(capacity: 1 << 12)
    /// Raw item id ↔ dense item index.
    package var items = IdIndex(capacity: 1 << 14)

    /// Per event: dense user index.
    package var eventUser: [Int32] = []
    /// Per event: dense item index.
    package var eventItem: [Int32] = []
    /// Per event: behaviour type.
    package var eventType: [UInt8] = []
    /// Per event: Unix seconds (the position within the user's line when `hasTimestamps` is false).
    package var eventTime: [Int64] = []
    /// Per event: rating (only when `hasRatings`).
    var eventRating: [Float] = []
    /// Per event: unit price paid (only when `hasEventPrices`; NaN if unknown).
    var eventPrice: [Float] = []

    /// Whether `eventTime` holds real timestamps.
    var hasTimestamps = true
    /// Whether `eventRating` is filled.
    var hasRatings = false
    /// Whether `eventPrice` is filled.
    var hasEventPrices = false

    /// Per item: raw category id, `FeatureGroup.missingRawID` if unknown.
    var itemCategory: [UInt64] = []
    /// Per item: attribute keys (already in `FeatureGroup.attribute`).
    var itemAttributes: [[UInt64]] = []
    /// Per item: title word keys (already in `FeatureGroup.textToken`).
    var itemText: [[UInt64]] = []
    /// Per item: catalogue price (NaN if unknown; filled from event prices later).
    var itemPrice: [Float] = []
    /// Per item: raw ids of complement items (also bought).
    var itemComplements: [[UInt64]] = []
    /// Per item: raw ids of substitute items (also viewed).
    var itemSubstitutes: [[UInt64]] = []
    /// Per item: whether it occurs in at least one kept event.
    var itemInEvents: [Bool] = []

    /// Per user: raw income band id (missing if unknown).
    var userIncome: [UInt64] = []
    /// Per user: raw age band id (missing if unknown).
    var userAge: [UInt64] = []
    /// Per user: raw ids of trusted users (directed links).
    var userNeighbors: [[UInt64]] = []

    /// Whether items have categories (slots `category`, `hist_categories`).
    var hasCategories = false
    /// Whether items have attribute tokens (slot `attributes`).
    var hasAttributes = false
    /// Whether items have title words (slot `text`).
    var hasText = false
    /// Whether prices exist (slots `price_level`, `spend_level`; price dense features).
    var hasPrices = false
    /// Whether users have social links (slot `neighbors`).
    var hasSocial = false
    /// Whether items have complement/substitute lists.
    var hasRelations = false
    /// Whether users have income and age bands.
    var hasDemographics = false

    /// Extra labels beyond `click` (e.g. `cart`, `fav`, `purchase`, `rating`).
    var extraLabels: [String] = []

    /// Input files read.
    var sources: [SourceFile] = []
    /// Rows read from event files.
    var rowsRead = 0
    /// Events dropped per rule name.
    var filtered: [String: Int] = [:]

    /// The dense index of item `raw`, creating its category and pool rows if new.
    ///
    /// The other per-item tables are grown by `padItemTables` (kept off this hot path).
    @inline(__always)
    mutating func item(_ raw: UInt64) -> Int {
        let i = items.index(of: raw)
        if i == itemCategory.count {
            itemCategory.append(FeatureGroup.missingRawID)
            itemInEvents.append(false)
        }
        return i
    }

    /// Grows the attribute, text, price and relation tables to one row per item.
    mutating func padItemTables() {
        let n = items.count
        if itemAttributes.count < n { itemAttributes.append(contentsOf: repeatElement([], count: n - itemAttributes.count)) }
        if itemText.count < n { itemText.append(contentsOf: repeatElement([], count: n - itemText.count)) }
        if itemPrice.count < n { itemPrice.append(contentsOf: repeatElement(.nan, count: n - itemPrice.count)) }
        if itemComplements.count < n { itemComplements.append(contentsOf: repeatElement([], count: n - itemComplements.count)) }
        if itemSubstitutes.count < n { itemSubstitutes.append(contentsOf: repeatElement([], count: n - itemSubstitutes.count)) }
    }

    /// The dense index of user `raw`, creating its side-information rows if new.
    mutating func user(_ raw: UInt64) -> Int {
        let u = users.index(of: raw)
        if u == userEventCount.count {
            userEventCount.append(0)
        }
        return u
    }

    /// Grows the income and age tables to one row per user (loaders with demographics).
    mutating func padUserTables() {
        let n = users.count
        if userIncome.count < n { userIncome.append(contentsOf: repeatElement(FeatureGroup.missingRawID, count: n - userIncome.count)) }
        if userAge.count < n { userAge.append(contentsOf: repeatElement(FeatureGroup.missingRawID, count: n - userAge.count)) }
    }

    /// Adds a directed social link from user index `u` to raw user id `friend`.
    mutating func addNeighbor(user u: Int, _ friend: UInt64) {
        if userNeighbors.count <= u { userNeighbors.append(contentsOf: repeatElement([], count: u + 1 - userNeighbors.count)) }
        userNeighbors[u].append(friend)
    }

    // Side tables are filled only by loaders that have them, so a table may be shorter than
    // the ids it describes: reads go through these, which give the missing value past its end.

    /// Item `i`'s attribute keys.
    func attributes(ofItem i: Int) -> [UInt64] { i < itemAttributes.count ? itemAttributes[i] : [] }
    /// Item `i`'s title word keys.
    func text(ofItem i: Int) -> [UInt64] { i < itemText.count ? itemText[i] : [] }
    /// Item `i`'s catalogue price (NaN if unknown).
    func catalogPrice(ofItem i: Int) -> Float { i < itemPrice.count ? itemPrice[i] : .nan }
    /// Raw ids of item `i`'s complements.
    func complements(ofItem i: Int) -> [UInt64] { i < itemComplements.count ? itemComplements[i] : [] }
    /// Raw ids of item `i`'s substitutes.
    func substitutes(ofItem i: Int) -> [UInt64] { i < itemSubstitutes.count ? itemSubstitutes[i] : [] }
    /// User `u`'s raw income band id.
    func income(ofUser u: Int) -> UInt64 { u < userIncome.count ? userIncome[u] : FeatureGroup.missingRawID }
    /// User `u`'s raw age band id.
    func age(ofUser u: Int) -> UInt64 { u < userAge.count ? userAge[u] : FeatureGroup.missingRawID }
    /// Raw ids user `u` links to.
    func neighbors(ofUser u: Int) -> [UInt64] { u < userNeighbors.count ? userNeighbors[u] : [] }

    /// Appends one event (`time` in Unix seconds or a sequence position; `rating` and `price`
    /// for loaders whose events carry them, NaN when a row leaves them empty).
    ///
    /// Item, type and per-user counts are kept for every event. With an `EventSpill` the event
    /// goes to its external sort (and is dropped when `--part` gives its user to another part);
    /// otherwise to the in-memory columns.
    ///
    /// - Throws: `HeedError(.io)` when a full run cannot be spilled.
    mutating func addEvent(user u: Int, item i: Int, type: EventType, time: Int64, rating: Float? = nil, price: Float? = nil) throws {
        eventsSeen += 1
        if eventsSeen & 0xFFFF == 0 { PrepareProgress.active?.events(eventsSeen) }
        itemInEvents[i] = true
        typesPresent |= 1 << type.rawValue
        userEventCount[u] &+= 1
        if let spill {
            let raw = users.rawIDs[u]
            if let p = price, !p.isNaN { spill.prices.append(PriceSample(item: Int32(i), price: p)) }
            spill.times?.append(time)
            if spill.keeps(userRaw: raw) {
                spill.events.append(EventRow(userRaw: raw, time: time, order: UInt32(truncatingIfNeeded: spill.events.count), item: Int32(i),
                                             rating: rating ?? .nan, type: type.rawValue))
            }
            if spill.isFull { try spill.spill() }
            return
        }
        eventUser.append(Int32(u))
        eventItem.append(Int32(i))
        eventType.append(type.rawValue)
        eventTime.append(time)
        if let rating { eventRating.append(rating) }
        if let price { eventPrice.append(price) }
    }

    /// Reserves room for about `n` events.
    mutating func reserveEvents(_ n: Int) {
        guard spill == nil else { return }
        eventUser.reserveCapacity(n)
        eventItem.reserveCapacity(n)
        eventType.reserveCapacity(n)
        eventTime.reserveCapacity(n)
    }

    /// Counts a dropped event under `rule`.
    mutating func drop(_ rule: String, _ n: Int = 1) { filtered[rule, default: 0] += n }

    /// Records an input file.
    mutating func addSource(role: String, path: String) throws {
        sources.append(SourceFile(role: role, path: path, bytes: try FileOps.size(path)))
    }

    /// Number of events kept for this dataset (in `--part k/N`, those of the part's users).
    package var eventCount: Int { spill?.events.count ?? eventUser.count }

    /// Where events go when preparing within a memory budget; nil keeps them in the columns above.
    package var spill: EventSpill?
    /// Events added so far, kept or not (the running row number of timestamp-less data).
    package private(set) var eventsSeen = 0
    /// Event types seen: bit `EventType.rawValue`.
    package private(set) var typesPresent: UInt8 = 0
    /// Per user index: events added (every event, whichever part keeps it).
    package private(set) var userEventCount: [UInt32] = []
}

/// Splits text into lower-cased ASCII-alphanumeric words and keys them in `FeatureGroup.textToken`.
///
/// Non-ASCII bytes count as letters (so UTF-8 words stay whole); words shorter than
/// two bytes are dropped; at most `limit` words are kept, in order, duplicates removed.
func textTokenKeys(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, limit: Int) -> [UInt64] {
    var keys: [UInt64] = []
    var word = [UInt8]()
    word.reserveCapacity(32)
    func flush() {
        if word.count >= 2 {
            let k = word.withUnsafeBufferPointer { FeatureGroup.textToken.key(FeatureGroup.fnv1a($0)) }
            if !keys.contains(k) { keys.append(k) }
        }
        word.removeAll(keepingCapacity: true)
    }
    var i = start
    while i < end && keys.count < limit {
        var c = b[i]
        if c >= 65 && c <= 90 { c += 32 }
        let isWordByte = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c >= 128
        if isWordByte { word.append(c) } else { flush() }
        i += 1
    }
    if keys.count < limit { flush() }
    return keys
}

/// Keys `field=value` as an attribute token (so equal values of different fields differ).
func attributeKey(field: String, _ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt64? {
    guard end > start else { return nil }
    var bytes = Array(field.utf8)
    bytes.append(UInt8(ascii: "="))
    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<end]))
    return bytes.withUnsafeBufferPointer { FeatureGroup.attribute.key(FeatureGroup.fnv1a($0)) }
}
