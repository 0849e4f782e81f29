import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Turns a loaded dataset into train/valid/test records under a protocol and split rule.
///
/// `generate` is deterministic: it is run twice by `Preparer` (once to size the shard
/// files, once to write them) and must produce the same records both times. Every
/// random choice comes from a generator seeded by (seed, user id), so a user's
/// records do not depend on other users or on the processing order.
struct SampleBuilder {
    /// The loaded dataset (item tables padded).
    let d: RawDataset
    /// The options records are built with.
    let o: PrepareOptions
    /// Schema of train/valid/test records.
    let schema: SampleSchema
    /// Schema of the item catalog records.
    let catalogSchema: SampleSchema

    /// Event indices grouped by user, each user's events sorted by (time, file order).
    private var ordered: [Int32] = []
    /// `ordered[userStart[u]..<userStart[u+1]]` are user `u`'s events.
    private var userStart: [Int] = []
    /// Users with events, by ascending raw id.
    private(set) var userOrder: [Int] = []
    /// Candidate pool: items with events, by ascending raw id.
    private(set) var pool: [Int32] = []

    private var itemKey: [UInt64] = []
    private var catKey: [UInt64] = []
    private var priceLevelKey: [UInt64] = []
    private var pricePct: [Float] = []
    private var logPrice: [Float] = []
    private var neighborKeys: [[UInt64]] = []
    private var typeKey: [UInt64] = []
    /// Keys of the time-gap buckets 0...64.
    private var gapKey: [UInt64] = []
    /// Per position of `ordered`: the event's item key, category key, type key and time.
    private var ordItemKey: [UInt64] = []
    private var ordCatKey: [UInt64] = []
    private var ordTypeKey: [UInt64] = []
    private var ordTime: [Int64] = []
    /// Time split bounds (Unix seconds).
    private(set) var validFrom: Int64 = 0
    private(set) var testFrom: Int64 = 0
    private var eventTypesPresent: [EventType] = []

    // Slot indices (nil when the dataset lacks the feature).
    private var sUser = 0, sItem = 0
    private var sCategory: Int?, sAttributes: Int?, sText: Int?, sPriceLevel: Int?, sSpendLevel: Int?
    private var sIncome: Int?, sAge: Int?, sNeighbors: Int?, sComplements: Int?, sSubstitutes: Int?
    private var sHistItems = 0
    private var sHistCategories: Int?, sHistEvents: Int?, sHistGaps: Int?
    private var labelOfType: [Int] = [Int](repeating: -1, count: 8)
    private var labelRating: Int?
    private var hasPriceDense = false

    /// Builds the schema and all per-item and per-user lookup tables.
    init(dataset raw: RawDataset, options o: PrepareOptions) throws {
        var d = raw
        d.padItemTables()
        self.d = d
        self.o = o
        guard d.eventCount > 0 else {
            throw HeedError(.invalidInput, "dataset \(d.name): no events left after filtering (\(d.rowsRead) rows read)")
        }
        var present = Set<UInt8>()
        for t in d.eventType { present.insert(t) }
        eventTypesPresent = EventType.allCases.filter { present.contains($0.rawValue) }

        // Schema.
        var slots: [FeatureSlot] = []
        func add(_ s: FeatureSlot) -> Int { slots.append(s); return slots.count - 1 }
        let L = o.maxLength
        sUser = add(FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1))
        sItem = add(FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1))
        if d.hasCategories { sCategory = add(FeatureSlot(name: "category", group: .category, kind: .single, maxLength: 1)) }
        if d.hasAttributes { sAttributes = add(FeatureSlot(name: "attributes", group: .attribute, kind: .sequence, maxLength: o.maxAttributes)) }
        if d.hasText { sText = add(FeatureSlot(name: "text", group: .textToken, kind: .sequence, maxLength: o.maxTextTokens)) }
        if d.hasPrices {
            sPriceLevel = add(FeatureSlot(name: "price_level", group: .priceLevel, kind: .single, maxLength: 1))
            sSpendLevel = add(FeatureSlot(name: "spend_level", group: .spendLevel, kind: .single, maxLength: 1))
        }
        if d.hasDemographics {
            sIncome = add(FeatureSlot(name: "income_band", group: .incomeBand, kind: .single, maxLength: 1))
            sAge = add(FeatureSlot(name: "age_band", group: .ageBand, kind: .single, maxLength: 1))
        }
        if d.hasSocial { sNeighbors = add(FeatureSlot(name: "neighbors", group: .user, kind: .sequence, maxLength: o.maxNeighbors)) }
        if d.hasRelations {
            sComplements = add(FeatureSlot(name: "complements", group: .item, kind: .sequence, maxLength: o.maxRelations))
            sSubstitutes = add(FeatureSlot(name: "substitutes", group: .item, kind: .sequence, maxLength: o.maxRelations))
        }
        sHistItems = add(FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: L))
        if d.hasCategories { sHistCategories = add(FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: L, alignedWith: "hist_items")) }
        if eventTypesPresent.count > 1 { sHistEvents = add(FeatureSlot(name: "hist_events", group: .eventType, kind: .sequence, maxLength: L, alignedWith: "hist_items")) }
        if d.hasTimestamps { sHistGaps = add(FeatureSlot(name: "hist_gaps", group: .timeGap, kind: .sequence, maxLength: L, alignedWith: "hist_items")) }

        var labels = ["click"]
        for t in [EventType.cart, .fav, .purchase] where present.contains(t.rawValue) {
            labelOfType[Int(t.rawValue)] = labels.count
            labels.append(t.name)
        }
        if d.hasRatings { labelRating = labels.count; labels.append("rating") }
        if let r = o.positiveRating, !d.hasRatings {
            throw HeedError(.config, "--positive-rating \(r): dataset \(d.name) has no ratings (the generic schema reads them from a 'rating' column)")
        }
        var dense = ["log_hist_len"]
        hasPriceDense = d.hasPrices
        if d.hasPrices { dense += ["log_price", "price_pct", "user_price_pct", "price_gap"] }
        schema = SampleSchema(slots: slots, labels: labels, dense: dense)

        var catSlots = [FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1)]
        if d.hasCategories { catSlots.append(slots[sCategory!]) }
        if d.hasAttributes { catSlots.append(slots[sAttributes!]) }
        if d.hasText { catSlots.append(slots[sText!]) }
        if d.hasPrices { catSlots.append(slots[sPriceLevel!]) }
        if d.hasRelations { catSlots.append(slots[sComplements!]); catSlots.append(slots[sSubstitutes!]) }
        catalogSchema = SampleSchema(slots: catSlots, labels: [], dense: d.hasPrices ? ["log_price", "price_pct"] : [])

        orderEvents()
        buildItemTables()
        buildUserTables()
        typeKey = (0..<8).map { FeatureGroup.eventType.key(UInt64($0)) }
        gapKey = (0...64).map { FeatureGroup.timeGap.key(UInt64($0)) }
        ordItemKey = ordered.map { itemKey[Int(d.eventItem[Int($0)])] }
        ordCatKey = ordered.map { catKey[Int(d.eventItem[Int($0)])] }
        ordTypeKey = ordered.map { typeKey[Int(d.eventType[Int($0)])] }
        ordTime = ordered.map { d.eventTime[Int($0)] }
        try chooseTimeBounds()
    }

    /// Groups events by user (counting sort, stable) and sorts each user's events by time.
    private mutating func orderEvents() {
        let nu = d.users.count
        var counts = [Int](repeating: 0, count: nu + 1)
        for u in d.eventUser { counts[Int(u) + 1] += 1 }
        for u in 0..<nu { counts[u + 1] += counts[u] }
        userStart = counts
        var fill = counts
        ordered = [Int32](repeating: 0, count: d.eventCount)
        for e in 0..<d.eventCount {
            let u = Int(d.eventUser[e])
            ordered[fill[u]] = Int32(e)
            fill[u] += 1
        }
        let time = d.eventTime
        for u in 0..<nu where userStart[u + 1] - userStart[u] > 1 {
            let r = userStart[u]..<userStart[u + 1]
            var sorted = true
            for i in r.dropFirst() where time[Int(ordered[i - 1])] > time[Int(ordered[i])] { sorted = false; break }
            if !sorted {
                ordered[r].sort { a, b in
                    let ta = time[Int(a)], tb = time[Int(b)]
                    return ta != tb ? ta < tb : a < b
                }
            }
        }
        userOrder = (0..<nu).filter { userStart[$0 + 1] > userStart[$0] }
        userOrder.sort { d.users.rawIDs[$0] < d.users.rawIDs[$1] }
    }

    /// Item keys, prices (median of paid prices when no catalogue price), price levels per category.
    private mutating func buildItemTables() {
        let ni = d.items.count
        itemKey = d.items.rawIDs.map { FeatureGroup.item.key($0) }
        catKey = d.itemCategory.map { FeatureGroup.category.key($0) }
        pool = (0..<ni).filter { d.itemInEvents[$0] }.map { Int32($0) }
        pool.sort { d.items.rawIDs[Int($0)] < d.items.rawIDs[Int($1)] }

        var price = d.itemPrice
        if d.hasEventPrices {
            var pairs: [(Int32, Float)] = []
            pairs.reserveCapacity(d.eventCount)
            for e in 0..<d.eventCount where !d.eventPrice[e].isNaN { pairs.append((d.eventItem[e], d.eventPrice[e])) }
            pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            var a = 0
            while a < pairs.count {
                var b = a
                while b < pairs.count && pairs[b].0 == pairs[a].0 { b += 1 }
                let i = Int(pairs[a].0)
                if price[i].isNaN {
                    let n = b - a
                    price[i] = n % 2 == 1 ? pairs[a + n / 2].1 : (pairs[a + n / 2 - 1].1 + pairs[a + n / 2].1) / 2
                }
                a = b
            }
        }
        pricePct = [Float](repeating: .nan, count: ni)
        logPrice = price.map { $0.isNaN ? 0 : Float(log1p(Double($0))) }
        priceLevelKey = [UInt64](repeating: FeatureGroup.priceLevel.missingKey, count: ni)
        var byCat: [(UInt64, Float, Int32)] = pool.compactMap { i in
            price[Int(i)].isNaN ? nil : (d.itemCategory[Int(i)], price[Int(i)], i)
        }
        byCat.sort { $0.0 != $1.0 ? $0.0 < $1.0 : ($0.1 != $1.1 ? $0.1 < $1.1 : $0.2 < $1.2) }
        var a = 0
        let levels = max(1, o.priceLevels)
        while a < byCat.count {
            var b = a
            while b < byCat.count && byCat[b].0 == byCat[a].0 { b += 1 }
            let n = b - a
            var r = a
            while r < b {
                var s = r
                while s < b && byCat[s].1 == byCat[r].1 { s += 1 }
                // Mid-rank of the tie run, as a fraction in (0, 1).
                let pct = Float(Double((r - a) + (s - a)) / Double(2 * n))
                let level = min(levels - 1, Int(pct * Float(levels)))
                for k in r..<s {
                    let i = Int(byCat[k].2)
                    pricePct[i] = pct
                    priceLevelKey[i] = FeatureGroup.priceLevel.key(UInt64(level))
                }
                r = s
            }
            a = b
        }
    }

    /// Social neighbours: most active first (events), then by raw id; capped.
    private mutating func buildUserTables() {
        guard d.hasSocial else { return }
        neighborKeys = d.userNeighbors.map { list in
            var uniq = Array(Set(list))
            func activity(_ raw: UInt64) -> Int {
                guard let v = d.users.find(raw) else { return 0 }
                return userStart[v + 1] - userStart[v]
            }
            let act = Dictionary(uniqueKeysWithValues: uniq.map { ($0, activity($0)) })
            uniq.sort { act[$0]! != act[$1]! ? act[$0]! > act[$1]! : $0 < $1 }
            return uniq.prefix(o.maxNeighbors).map { FeatureGroup.user.key($0) }
        }
    }

    /// Resolves the time split bounds (defaults: 80 % / 90 % quantiles of event times).
    private mutating func chooseTimeBounds() throws {
        guard case .time(let vf, let tf) = o.split else { return }
        guard d.hasTimestamps else {
            throw HeedError(.config, "dataset \(d.name) has no timestamps (only event order); use the leave-one-out split")
        }
        let times = d.eventTime.sorted()
        validFrom = vf ?? times[min(times.count - 1, times.count * 8 / 10)]
        testFrom = tf ?? times[min(times.count - 1, times.count * 9 / 10)]
        guard validFrom <= testFrom else {
            throw HeedError(.config, "time split: valid-from (\(validFrom)) is after test-from (\(testFrom))")
        }
    }

    /// The bucket of a recency gap in seconds: 0 for ≤ 0, else its bit length (2^(b-1) ≤ gap < 2^b).
    static func gapBucket(_ gap: Int64) -> UInt64 {
        gap <= 0 ? 0 : UInt64(64 - gap.leadingZeroBitCount)
    }

    /// Calls `sink(record, split, shard)` for every record, in a fixed order.
    ///
    /// Users in ascending raw id; per user, positions in time order; for CTR the positive
    /// comes right before its negative.
    func generate(_ sink: (inout SampleRecord, Split, Int) throws -> Void) throws {
        var rec = SampleRecord(schema: schema)
        let shards = UInt64(max(1, o.shards))
        var userItems: [Int32] = []
        var prefixPct: [Double] = []
        var prefixCnt: [Int32] = []
        var eligible: [Int] = []
        for u in userOrder {
            let base = userStart[u]
            let n = userStart[u + 1] - base
            let userRaw = d.users.rawIDs[u]
            var rng = SeededGenerator(seed: KeyHash.mix64(o.seed ^ KeyHash.mix64(userRaw)))
            let heldOutShard = Int(KeyHash.mix64(userRaw &+ o.seed) % shards)

            userItems.removeAll(keepingCapacity: true)
            for j in 0..<n { userItems.append(d.eventItem[Int(ordered[base + j])]) }
            userItems.sort()
            prefixPct.removeAll(keepingCapacity: true); prefixCnt.removeAll(keepingCapacity: true)
            prefixPct.append(0); prefixCnt.append(0)
            for j in 0..<n {
                let p = pricePct[Int(d.eventItem[Int(ordered[base + j])])]
                prefixPct.append(prefixPct[j] + (p.isNaN ? 0 : Double(p)))
                prefixCnt.append(prefixCnt[j] + (p.isNaN ? 0 : 1))
            }

            eligible.removeAll(keepingCapacity: true)
            for k in 1..<max(n, 1) where isTarget(d.eventType[Int(ordered[base + k])]) { eligible.append(k) }
            guard !eligible.isEmpty else { continue }

            func splitOf(_ idx: Int) -> Split {
                switch o.split {
                case .leaveOneOut:
                    if eligible.count < 2 { return .train }
                    if idx == eligible.count - 1 { return .test }
                    if idx == eligible.count - 2 { return .valid }
                    return .train
                case .time:
                    let t = d.eventTime[Int(ordered[base + eligible[idx]])]
                    return t < validFrom ? .train : (t < testFrom ? .valid : .test)
                }
            }

            var lastTrain: Int? = nil
            if o.sampleProtocol == .seq {
                for idx in eligible.indices where splitOf(idx) == .train { lastTrain = idx }
            }
            for idx in eligible.indices {
                let split = splitOf(idx)
                let k = eligible[idx]
                if o.sampleProtocol == .seq && split == .train && idx != lastTrain { continue }
                let e = Int(ordered[base + k])
                let target = Int(d.eventItem[e])
                let shard = split == .train ? Int(rng.next() % shards) : heldOutShard
                fill(&rec, user: u, base: base, k: k, item: target, positiveEvent: e, prefixPct: prefixPct, prefixCnt: prefixCnt)
                try sink(&rec, split, shard)
                if o.sampleProtocol == .ctr {
                    let neg = sampleNegative(&rng, userItems: userItems)
                    let negShard = split == .train ? Int(rng.next() % shards) : heldOutShard
                    fill(&rec, user: u, base: base, k: k, item: neg, positiveEvent: nil, prefixPct: prefixPct, prefixCnt: prefixCnt)
                    try sink(&rec, split, negShard)
                }
            }
        }
    }

    /// Whether an event type may be a target under `--target-events`.
    private func isTarget(_ t: UInt8) -> Bool {
        guard let set = o.targetEvents else { return true }
        return set.contains { $0.rawValue == t }
    }

    /// A uniform pool item the user never interacted with (up to 100 tries, then the last draw).
    private func sampleNegative(_ rng: inout SeededGenerator, userItems: [Int32]) -> Int {
        var pick = 0
        for _ in 0..<100 {
            pick = Int(pool[Int(rng.next() % UInt64(pool.count))])
            if !binaryContains(userItems, Int32(pick)) { break }
        }
        return pick
    }

    private func binaryContains(_ a: [Int32], _ x: Int32) -> Bool {
        var lo = 0, hi = a.count
        while lo < hi {
            let m = (lo + hi) / 2
            if a[m] < x { lo = m + 1 } else { hi = m }
        }
        return lo < a.count && a[lo] == x
    }

    /// Fills `rec` for user `u`, target position `k` of the user's events, target `item`.
    /// `positiveEvent` is the target event for positives, nil for a sampled negative.
    private func fill(_ rec: inout SampleRecord, user u: Int, base: Int, k: Int, item: Int, positiveEvent: Int?,
                      prefixPct: [Double], prefixCnt: [Int32]) {
        rec.clearKeys()
        let targetTime = d.eventTime[Int(ordered[base + k])]
        rec.userID = d.users.rawIDs[u]
        rec.itemID = d.items.rawIDs[item]
        rec.timestamp = d.hasTimestamps ? targetTime : 0
        rec.keys[sUser].append(FeatureGroup.user.key(rec.userID))
        rec.keys[sItem].append(itemKey[item])
        if let s = sCategory { rec.keys[s].append(catKey[item]) }
        if let s = sAttributes { rec.keys[s].append(contentsOf: d.itemAttributes[item]) }
        if let s = sText { rec.keys[s].append(contentsOf: d.itemText[item]) }
        let userPct: Float? = prefixCnt[k] > 0 ? Float(prefixPct[k] / Double(prefixCnt[k])) : nil
        if let s = sPriceLevel { rec.keys[s].append(priceLevelKey[item]) }
        if let s = sSpendLevel {
            if let p = userPct {
                let levels = max(1, o.priceLevels)
                rec.keys[s].append(FeatureGroup.spendLevel.key(UInt64(min(levels - 1, Int(p * Float(levels))))))
            } else {
                rec.keys[s].append(FeatureGroup.spendLevel.missingKey)
            }
        }
        if let s = sIncome { rec.keys[s].append(FeatureGroup.incomeBand.key(d.userIncome[u])) }
        if let s = sAge { rec.keys[s].append(FeatureGroup.ageBand.key(d.userAge[u])) }
        if let s = sNeighbors { rec.keys[s].append(contentsOf: neighborKeys[u]) }
        if let s = sComplements { rec.keys[s].append(contentsOf: d.itemComplements[item].map { FeatureGroup.item.key($0) }) }
        if let s = sSubstitutes { rec.keys[s].append(contentsOf: d.itemSubstitutes[item].map { FeatureGroup.item.key($0) }) }
        let from = base + max(0, k - o.maxLength), to = base + k
        rec.keys[sHistItems].append(contentsOf: ordItemKey[from..<to])
        if let s = sHistCategories { rec.keys[s].append(contentsOf: ordCatKey[from..<to]) }
        if let s = sHistEvents { rec.keys[s].append(contentsOf: ordTypeKey[from..<to]) }
        if let s = sHistGaps {
            for j in from..<to { rec.keys[s].append(gapKey[Int(Self.gapBucket(targetTime - ordTime[j]))]) }
        }
        for i in rec.labels.indices { rec.labels[i] = 0 }
        if let e = positiveEvent {
            // An unrated event (NaN) is an interaction like any other: a positive, rating label 0.
            let rating = labelRating == nil ? Float.nan : d.eventRating[e]
            rec.labels[0] = o.positiveRating.map { rating.isNaN || Double(rating) >= $0 } ?? true ? 1 : 0
            let l = labelOfType[Int(d.eventType[e])]
            if l >= 0 { rec.labels[l] = 1 }
            if let r = labelRating { rec.labels[r] = rating.isNaN ? 0 : rating }
        }
        rec.dense[0] = Float(log1p(Double(k)))
        if hasPriceDense {
            let ip = pricePct[item].isNaN ? 0.5 : pricePct[item]
            let up = userPct ?? 0.5
            rec.dense[1] = logPrice[item]
            rec.dense[2] = ip
            rec.dense[3] = up
            rec.dense[4] = ip - up
        }
    }

    /// Calls `sink` for one catalog record per pool item (ascending raw item id).
    func generateCatalog(_ sink: (inout SampleRecord) throws -> Void) throws {
        var rec = SampleRecord(schema: catalogSchema)
        for i32 in pool {
            let i = Int(i32)
            rec.clearKeys()
            rec.itemID = d.items.rawIDs[i]
            var s = 0
            rec.keys[s].append(itemKey[i]); s += 1
            if d.hasCategories { rec.keys[s].append(catKey[i]); s += 1 }
            if d.hasAttributes { rec.keys[s].append(contentsOf: d.itemAttributes[i]); s += 1 }
            if d.hasText { rec.keys[s].append(contentsOf: d.itemText[i]); s += 1 }
            if d.hasPrices { rec.keys[s].append(priceLevelKey[i]); s += 1 }
            if d.hasRelations {
                rec.keys[s].append(contentsOf: d.itemComplements[i].map { FeatureGroup.item.key($0) }); s += 1
                rec.keys[s].append(contentsOf: d.itemSubstitutes[i].map { FeatureGroup.item.key($0) }); s += 1
            }
            if d.hasPrices {
                rec.dense[0] = logPrice[i]
                rec.dense[1] = pricePct[i].isNaN ? 0.5 : pricePct[i]
            }
            try sink(&rec)
        }
    }

    /// Users with at least one event.
    var userCount: Int { userOrder.count }
}
