import Foundation
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

    /// In-memory columns only: event indices grouped by user, each user's events sorted by
    /// (time, file order). With an `EventSpill` the external sort's merge gives that order.
    private var ordered: [Int32] = []
    /// `ordered[userStart[u]..<userStart[u+1]]` are user `u`'s events (in-memory columns only).
    private var userStart: [Int] = []
    /// Users with events, by ascending raw id.
    private(set) var userOrder: [Int] = []
    /// Candidate pool: items with events, by ascending raw id.
    private(set) var pool: [Int32] = []

    /// Per item (empty without prices): percentile of its price in its category (NaN: none),
    /// log(1 + price), and price level (`noLevel`: none). Item and category keys are hashed
    /// when needed instead of stored: at tens of millions of items every byte per item counts.
    private var pricePct: [Float] = []
    private var logPrice: [Float] = []
    private var priceLevel: [UInt16] = []
    private static let noLevel = UInt16.max
    private var neighborKeys: [[UInt64]] = []
    private var typeKey: [UInt64] = []
    /// Keys of the time-gap buckets 0...64.
    private var gapKey: [UInt64] = []
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
        // Side tables stay as short as the loader left them (RawDataset's accessors fill the gaps),
        // so a dataset without attributes, text or relations pays nothing per item for them.
        let d = raw
        self.d = d
        self.o = o
        guard d.eventCount > 0 else {
            throw HeedError(.invalidInput, "dataset \(d.name): no events left after filtering (\(d.rowsRead) rows read)")
        }
        let typesPresent = d.typesPresent
        func present(_ t: EventType) -> Bool { typesPresent & (1 << t.rawValue) != 0 }
        eventTypesPresent = EventType.allCases.filter(present)

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
        for t in [EventType.cart, .fav, .purchase] where present(t) {
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
        try buildItemTables()
        buildUserTables()
        typeKey = (0..<8).map { FeatureGroup.eventType.key(UInt64($0)) }
        gapKey = (0...64).map { FeatureGroup.timeGap.key(UInt64($0)) }
        try chooseTimeBounds()
    }

    /// Groups events by user (counting sort, stable) and sorts each user's events by time;
    /// with an `EventSpill` only lists the users (the merge of its runs gives the order).
    private mutating func orderEvents() {
        let nu = d.users.count
        if let spill = d.spill {
            userOrder = (0..<nu).filter { d.userEventCount[$0] > 0 && spill.keeps(userRaw: d.users.rawIDs[$0]) }
            userOrder.sort { d.users.rawIDs[$0] < d.users.rawIDs[$1] }
            return
        }
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
    private mutating func buildItemTables() throws {
        let ni = d.items.count
        pool = (0..<ni).filter { d.itemInEvents[$0] }.map { Int32($0) }
        pool.sort { d.items.rawIDs[Int($0)] < d.items.rawIDs[Int($1)] }
        guard d.hasPrices || d.hasEventPrices || !d.itemPrice.isEmpty else { return }

        var price = (0..<ni).map { d.catalogPrice(ofItem: $0) }
        if d.hasEventPrices {
            // Items without a catalogue price get the median of their paid prices.
            var current: Int32 = -1
            var paid: [Float] = []
            func settle() {
                let i = Int(current)
                guard current >= 0, price[i].isNaN else { return }
                let n = paid.count
                price[i] = n % 2 == 1 ? paid[n / 2] : (paid[n / 2 - 1] + paid[n / 2]) / 2
            }
            try forEachPriceSample { sample in
                if sample.item != current {
                    settle()
                    current = sample.item
                    paid.removeAll(keepingCapacity: true)
                }
                paid.append(sample.price)
            }
            settle()
        }
        pricePct = [Float](repeating: .nan, count: ni)
        logPrice = price.map { $0.isNaN ? 0 : Float(log1p(Double($0))) }
        priceLevel = [UInt16](repeating: Self.noLevel, count: ni)
        // Priced pool items by (category, price, index): 4 bytes each, where (category, price,
        // index) tuples would take 16.
        var byCat: [Int32] = pool.filter { !price[Int($0)].isNaN }
        let category = d.itemCategory
        byCat.sort { x, y in
            let cx = category[Int(x)], cy = category[Int(y)]
            if cx != cy { return cx < cy }
            let px = price[Int(x)], py = price[Int(y)]
            return px != py ? px < py : x < y
        }
        var a = 0
        let levels = max(1, o.priceLevels)
        while a < byCat.count {
            var b = a
            while b < byCat.count && category[Int(byCat[b])] == category[Int(byCat[a])] { b += 1 }
            let n = b - a
            var r = a
            while r < b {
                var s = r
                while s < b && price[Int(byCat[s])] == price[Int(byCat[r])] { s += 1 }
                // Mid-rank of the tie run, as a fraction in (0, 1).
                let pct = Float(Double((r - a) + (s - a)) / Double(2 * n))
                let level = min(levels - 1, Int(pct * Float(levels)))
                for k in r..<s {
                    let i = Int(byCat[k])
                    pricePct[i] = pct
                    priceLevel[i] = UInt16(level)
                }
                r = s
            }
            a = b
        }
    }

    /// Item `i`'s key.
    @inline(__always) private func itemKey(_ i: Int) -> UInt64 { FeatureGroup.item.key(d.items.rawIDs[i]) }
    /// Item `i`'s category key.
    @inline(__always) private func categoryKey(_ i: Int) -> UInt64 { FeatureGroup.category.key(d.itemCategory[i]) }
    /// Item `i`'s price-level key (the missing key without a price).
    private func priceLevelKey(_ i: Int) -> UInt64 {
        let level = priceLevel.isEmpty ? Self.noLevel : priceLevel[i]
        return level == Self.noLevel ? FeatureGroup.priceLevel.missingKey : FeatureGroup.priceLevel.key(UInt64(level))
    }
    /// Item `i`'s price percentile in its category (NaN without a price).
    @inline(__always) private func percentile(_ i: Int) -> Float { pricePct.isEmpty ? .nan : pricePct[i] }
    /// log(1 + item `i`'s price), 0 without a price.
    private func logPriceOf(_ i: Int) -> Float { logPrice.isEmpty ? 0 : logPrice[i] }

    /// Every paid price, by (item, price): from the external sort, or the columns sorted here.
    private func forEachPriceSample(_ body: (PriceSample) throws -> Void) throws {
        if let spill = d.spill {
            try spill.prices.forEachSorted(body)
            return
        }
        var samples: [PriceSample] = []
        for e in 0..<d.eventCount where !d.eventPrice[e].isNaN { samples.append(PriceSample(item: d.eventItem[e], price: d.eventPrice[e])) }
        samples.sort(by: <)
        for sample in samples { try body(sample) }
    }

    /// Social neighbours: most active first (events), then by raw id; capped.
    private mutating func buildUserTables() {
        guard d.hasSocial else { return }
        neighborKeys = (0..<d.users.count).map { d.neighbors(ofUser: $0) }.map { list in
            var uniq = Array(Set(list))
            func activity(_ raw: UInt64) -> Int {
                guard let v = d.users.find(raw) else { return 0 }
                return Int(d.userEventCount[v])
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
        if vf != nil && tf != nil {
            validFrom = vf!
            testFrom = tf!
        } else if let spill = d.spill {
            guard let times = spill.times else { throw HeedError(.config, "time split: the external sort kept no event times") }
            let n = times.count
            let ranks = (min(n - 1, n * 8 / 10), min(n - 1, n * 9 / 10))
            var at = 0
            var picked: (Int64, Int64) = (0, 0)
            try times.forEachSorted { t in
                if at == ranks.0 { picked.0 = t }
                if at == ranks.1 { picked.1 = t }
                at += 1
            }
            validFrom = vf ?? picked.0
            testFrom = tf ?? picked.1
        } else {
            let times = d.eventTime.sorted()
            validFrom = vf ?? times[min(times.count - 1, times.count * 8 / 10)]
            testFrom = tf ?? times[min(times.count - 1, times.count * 9 / 10)]
        }
        guard validFrom <= testFrom else {
            throw HeedError(.config, "time split: valid-from (\(validFrom)) is after test-from (\(testFrom))")
        }
    }

    /// The bucket of a recency gap in seconds: 0 for ≤ 0, else its bit length (2^(b-1) ≤ gap < 2^b).
    static func gapBucket(_ gap: Int64) -> UInt64 {
        gap <= 0 ? 0 : UInt64(64 - gap.leadingZeroBitCount)
    }

    /// Calls `sink(record, reference, split, shard)` for every record, in a fixed order.
    ///
    /// Users in ascending raw id; per user, positions in time order; for CTR the positive
    /// comes right before its negative. `reference` is what a compact shard stores (the
    /// target's index in the sequence file, the item's catalog record); with `filling:
    /// false` the record itself is left empty but for its user id, which is all a compact
    /// shard needs.
    func generate(filling: Bool = true, _ sink: (inout SampleRecord, RecordRef, Split, Int) throws -> Void) throws {
        let catalogIndex = catalogIndexOfItem()
        var nextSequenceEvent = 0
        var rec = SampleRecord(schema: schema)
        var scratch = GenerateScratch()
        try forEachUser(deriveKeys: filling) { u, ev in
            try generateUser(u, ev, sequenceStart: nextSequenceEvent, catalogIndex: catalogIndex, filling: filling,
                             record: &rec, scratch: &scratch, sink)
            nextSequenceEvent += ev.count
        }
    }

    /// One generated compact record: its user, reference, split and shard.
    struct GeneratedRef {
        var userID: UInt64
        var ref: RecordRef
        var split: Split
        var shard: Int
    }

    /// `generate(filling: false)` on `threads` threads: the users are read in blocks of about
    /// `blockEvents` events, each block's users are split into `threads` contiguous ranges
    /// generated side by side, and `sink` receives the records in `generate`'s order (each
    /// user's records depend only on the user, so the output does not depend on `threads`).
    func generateReferences(threads: Int, blockEvents: Int = 1 << 18, _ sink: (GeneratedRef) throws -> Void) throws {
        let catalogIndex = catalogIndexOfItem()
        let lanes = max(1, threads)
        var block: [(user: Int, events: UserEvents, sequenceStart: Int)] = []
        var eventsInBlock = 0
        var nextSequenceEvent = 0
        var outputs = [[GeneratedRef]](repeating: [], count: lanes)
        func runBlock() throws {
            guard !block.isEmpty else { return }
            // Contiguous ranges of about equal events.
            var bounds = [0]
            var acc = 0
            for (i, b) in block.enumerated() {
                acc += b.events.count
                if bounds.count < lanes && acc * lanes >= eventsInBlock * bounds.count { bounds.append(i + 1) }
            }
            while bounds.count <= lanes { bounds.append(block.count) }
            bounds[lanes] = block.count
            let work = block
            let failure = LockedBox<Error?>(nil)
            outputs.withUnsafeMutableBufferPointer { out in
                let lanesOut = out
                DispatchQueue.concurrentPerform(iterations: lanes) { t in
                    var rec = SampleRecord(schema: schema)
                    var scratch = GenerateScratch()
                    lanesOut[t].removeAll(keepingCapacity: true)
                    do {
                        for b in work[bounds[t]..<bounds[t + 1]] {
                            try generateUser(b.user, b.events, sequenceStart: b.sequenceStart, catalogIndex: catalogIndex, filling: false,
                                             record: &rec, scratch: &scratch) { r, ref, split, shard in
                                lanesOut[t].append(GeneratedRef(userID: r.userID, ref: ref, split: split, shard: shard))
                            }
                        }
                    } catch {
                        failure.set(error)
                    }
                }
            }
            if let e = failure.get() { throw e }
            for t in 0..<lanes { for g in outputs[t] { try sink(g) } }
            block.removeAll(keepingCapacity: true)
            eventsInBlock = 0
        }
        try forEachUser(deriveKeys: false) { u, ev in
            block.append((u, ev, nextSequenceEvent))
            nextSequenceEvent += ev.count
            eventsInBlock += ev.count
            if eventsInBlock >= blockEvents { try runBlock() }
        }
        try runBlock()
    }

    /// Buffers `generateUser` reuses from user to user.
    struct GenerateScratch {
        var userItems: [Int32] = []
        var prefixPct: [Double] = []
        var prefixCnt: [Int32] = []
        var eligible: [Int] = []
    }

    /// User `u`'s records (see `generate`), `sequenceStart` being the index of its first event
    /// in the sequence file.
    private func generateUser(_ u: Int, _ ev: UserEvents, sequenceStart: Int, catalogIndex: [Int32], filling: Bool,
                              record rec: inout SampleRecord, scratch: inout GenerateScratch,
                              _ sink: (inout SampleRecord, RecordRef, Split, Int) throws -> Void) throws {
        let shards = UInt64(max(1, o.shards))
        let n = ev.count
        let userRaw = d.users.rawIDs[u]
        var rng = SeededGenerator(seed: KeyHash.mix64(o.seed ^ KeyHash.mix64(userRaw)))
        let heldOutShard = Int(KeyHash.mix64(userRaw &+ o.seed) % shards)

        scratch.userItems.removeAll(keepingCapacity: true)
        scratch.userItems.append(contentsOf: ev.item)
        scratch.userItems.sort()
        if filling {
            // The user's mean price percentile before each position (only filled records carry it;
            // compact records read it from the sequence file).
            scratch.prefixPct.removeAll(keepingCapacity: true); scratch.prefixCnt.removeAll(keepingCapacity: true)
            scratch.prefixPct.append(0); scratch.prefixCnt.append(0)
            for j in 0..<n {
                let p = percentile(Int(ev.item[j]))
                scratch.prefixPct.append(scratch.prefixPct[j] + (p.isNaN ? 0 : Double(p)))
                scratch.prefixCnt.append(scratch.prefixCnt[j] + (p.isNaN ? 0 : 1))
            }
        }

        scratch.eligible.removeAll(keepingCapacity: true)
        for k in 1..<max(n, 1) where isTarget(ev.type[k]) { scratch.eligible.append(k) }
        let eligible = scratch.eligible
        guard !eligible.isEmpty else { return }

        func splitOf(_ idx: Int) -> Split {
            switch o.split {
            case .leaveOneOut:
                if eligible.count < 2 { return .train }
                if idx == eligible.count - 1 { return .test }
                if idx == eligible.count - 2 { return .valid }
                return .train
            case .time:
                let t = ev.time[eligible[idx]]
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
            let target = Int(ev.item[k])
            let shard = split == .train ? Int(rng.next() % shards) : heldOutShard
            if filling {
                fill(&rec, user: u, events: ev, k: k, item: target, positive: true, prefixPct: scratch.prefixPct, prefixCnt: scratch.prefixCnt)
            } else {
                rec.userID = userRaw
            }
            let event = UInt32(truncatingIfNeeded: sequenceStart + k)
            try sink(&rec, RecordRef(event: event, item: UInt32(catalogIndex[target]), negative: false), split, shard)
            if o.sampleProtocol == .ctr {
                let neg = sampleNegative(&rng, userItems: scratch.userItems)
                let negShard = split == .train ? Int(rng.next() % shards) : heldOutShard
                if filling { fill(&rec, user: u, events: ev, k: k, item: neg, positive: false, prefixPct: scratch.prefixPct, prefixCnt: scratch.prefixCnt) }
                try sink(&rec, RecordRef(event: event, item: UInt32(catalogIndex[neg]), negative: true), split, negShard)
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

    /// Fills `rec` for user `u`, target position `k` of the user's `events`, target `item`;
    /// `positive` is false for a sampled negative.
    private func fill(_ rec: inout SampleRecord, user u: Int, events ev: UserEvents, k: Int, item: Int, positive: Bool,
                      prefixPct: [Double], prefixCnt: [Int32]) {
        rec.clearKeys()
        let targetTime = ev.time[k]
        rec.userID = d.users.rawIDs[u]
        rec.itemID = d.items.rawIDs[item]
        rec.timestamp = d.hasTimestamps ? targetTime : 0
        rec.keys[sUser].append(FeatureGroup.user.key(rec.userID))
        rec.keys[sItem].append(itemKey(item))
        if let s = sCategory { rec.keys[s].append(categoryKey(item)) }
        if let s = sAttributes { rec.keys[s].append(contentsOf: d.attributes(ofItem: item)) }
        if let s = sText { rec.keys[s].append(contentsOf: d.text(ofItem: item)) }
        let userPct: Float? = prefixCnt[k] > 0 ? Float(prefixPct[k] / Double(prefixCnt[k])) : nil
        if let s = sPriceLevel { rec.keys[s].append(priceLevelKey(item)) }
        if let s = sSpendLevel {
            if let p = userPct {
                let levels = max(1, o.priceLevels)
                rec.keys[s].append(FeatureGroup.spendLevel.key(UInt64(min(levels - 1, Int(p * Float(levels))))))
            } else {
                rec.keys[s].append(FeatureGroup.spendLevel.missingKey)
            }
        }
        if let s = sIncome { rec.keys[s].append(FeatureGroup.incomeBand.key(d.income(ofUser: u))) }
        if let s = sAge { rec.keys[s].append(FeatureGroup.ageBand.key(d.age(ofUser: u))) }
        if let s = sNeighbors { rec.keys[s].append(contentsOf: neighborKeys[u]) }
        if let s = sComplements { rec.keys[s].append(contentsOf: d.complements(ofItem: item).map { FeatureGroup.item.key($0) }) }
        if let s = sSubstitutes { rec.keys[s].append(contentsOf: d.substitutes(ofItem: item).map { FeatureGroup.item.key($0) }) }
        let from = max(0, k - o.maxLength), to = k
        rec.keys[sHistItems].append(contentsOf: ev.itemKey[from..<to])
        if let s = sHistCategories { rec.keys[s].append(contentsOf: ev.categoryKey[from..<to]) }
        if let s = sHistEvents { rec.keys[s].append(contentsOf: ev.typeKey[from..<to]) }
        if let s = sHistGaps {
            for j in from..<to { rec.keys[s].append(gapKey[Int(Self.gapBucket(targetTime - ev.time[j]))]) }
        }
        for i in rec.labels.indices { rec.labels[i] = 0 }
        if positive {
            // An unrated event (NaN) is an interaction like any other: a positive, rating label 0.
            let rating = labelRating == nil ? Float.nan : ev.rating[k]
            rec.labels[0] = o.positiveRating.map { rating.isNaN || Double(rating) >= $0 } ?? true ? 1 : 0
            let l = labelOfType[Int(ev.type[k])]
            if l >= 0 { rec.labels[l] = 1 }
            if let r = labelRating { rec.labels[r] = rating.isNaN ? 0 : rating }
        }
        rec.dense[0] = Float(log1p(Double(k)))
        if hasPriceDense {
            let ip = percentile(item).isNaN ? 0.5 : percentile(item)
            let up = userPct ?? 0.5
            rec.dense[1] = logPriceOf(item)
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
            rec.keys[s].append(itemKey(i)); s += 1
            if d.hasCategories { rec.keys[s].append(categoryKey(i)); s += 1 }
            if d.hasAttributes { rec.keys[s].append(contentsOf: d.attributes(ofItem: i)); s += 1 }
            if d.hasText { rec.keys[s].append(contentsOf: d.text(ofItem: i)); s += 1 }
            if d.hasPrices { rec.keys[s].append(priceLevelKey(i)); s += 1 }
            if d.hasRelations {
                rec.keys[s].append(contentsOf: d.complements(ofItem: i).map { FeatureGroup.item.key($0) }); s += 1
                rec.keys[s].append(contentsOf: d.substitutes(ofItem: i).map { FeatureGroup.item.key($0) }); s += 1
            }
            if d.hasPrices {
                rec.dense[0] = logPriceOf(i)
                rec.dense[1] = percentile(i).isNaN ? 0.5 : percentile(i)
            }
            try sink(&rec)
        }
    }

    /// Users with at least one event.
    var userCount: Int { userOrder.count }

    /// Per item index: its record in the catalog (`pool` order), -1 outside the pool.
    private func catalogIndexOfItem() -> [Int32] {
        var index = [Int32](repeating: -1, count: d.items.count)
        for (r, i) in pool.enumerated() { index[Int(i)] = Int32(r) }
        return index
    }

    /// The `click` label of a positive with `rating`: true unless `--positive-rating` rejects it.
    private func clickLabel(rating: Float) -> Bool {
        o.positiveRating.map { rating.isNaN || Double(rating) >= $0 } ?? true
    }

    /// Calls `body(user index, events)` for every user in `userOrder`, each user's events in
    /// (time, file order): from the in-memory columns, or merged from the external sort's runs.
    ///
    /// - Throws: `HeedError(.corrupt)` when the runs do not hold the users the load counted.
    /// - Parameter deriveKeys: whether to fill the events' key columns (histories, the sequence file).
    func forEachUser(deriveKeys derive: Bool = true, _ body: (Int, UserEvents) throws -> Void) throws {
        var ev = UserEvents()
        guard let spill = d.spill else {
            for u in userOrder {
                ev.removeAll()
                for j in userStart[u]..<userStart[u + 1] {
                    let e = Int(ordered[j])
                    ev.append(item: d.eventItem[e], type: d.eventType[e], time: d.eventTime[e], rating: d.hasRatings ? d.eventRating[e] : .nan)
                }
                if derive { deriveKeys(&ev) }
                try body(u, ev)
            }
            return
        }
        var next = 0
        var currentRaw: UInt64 = 0
        func flush() throws {
            guard ev.count > 0 else { return }
            guard next < userOrder.count, d.users.rawIDs[userOrder[next]] == currentRaw,
                  ev.count == Int(d.userEventCount[userOrder[next]]) else {
                throw HeedError(.corrupt, "\(spill.events.directory): the spilled runs disagree with the load at user \(currentRaw) (a run file was changed while preparing?)")
            }
            if derive { deriveKeys(&ev) }
            try body(userOrder[next], ev)
            next += 1
            ev.removeAll()
        }
        try spill.events.forEachSorted { row in
            if row.userRaw != currentRaw || ev.count == 0 {
                if ev.count > 0 { try flush() }
                currentRaw = row.userRaw
            }
            ev.append(item: row.item, type: row.type, time: row.time, rating: row.rating)
        }
        try flush()
        guard next == userOrder.count else {
            throw HeedError(.corrupt, "\(spill.events.directory): the spilled runs hold \(next) users, the load counted \(userOrder.count)")
        }
    }

    /// Fills the key columns of `ev` from its items and types.
    private func deriveKeys(_ ev: inout UserEvents) {
        for j in ev.item.indices {
            let i = Int(ev.item[j])
            ev.itemKey.append(itemKey(i))
            ev.categoryKey.append(categoryKey(i))
            ev.typeKey.append(typeKey[Int(ev.type[j])])
        }
    }

    /// Writes the sequence file (`SequenceFile`) every compact shard of this dataset refers to:
    /// users in `generate`'s order, each user's events in time order.
    ///
    /// - Throws: `HeedError(.config)` past 2^32 − 1 events (a compact record's event index is 32-bit).
    func writeSequences(path: String) throws -> ShardEntry {
        let events = d.eventCount
        guard events < Int(UInt32.max) else {
            throw HeedError(.config, "dataset \(d.name): \(events) events exceed the compact format's 2^32 − 1; prepare it in parts (--part) or with --shard-format 1")
        }
        let info = SequenceInfo(events: events, users: userOrder.count, hasTimestamps: d.hasTimestamps, hasCategories: d.hasCategories,
                                hasRatings: d.hasRatings, hasPrices: d.hasPrices, hasDemographics: d.hasDemographics, hasSocial: d.hasSocial,
                                priceLevels: max(1, o.priceLevels))
        let neighborTotal = d.hasSocial ? userOrder.reduce(0) { $0 + neighborKeys[$1].count } : 0
        let lengths = info.lengths(neighborKeys: neighborTotal)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = Array(try enc.encode(info))
        let layout = ShardLayout(recordCount: events, jsonBytes: json.count, lengths: lengths)
        let w = try SectionedFileWriter(path: path, layout: layout, magic: SequenceFile.magic, version: SequenceFile.version, json: json, flushBytes: 1 << 16)
        func section(_ k: ShardLayout.SectionKind) -> Int { lengths.firstIndex { $0.0 == k }! }
        let sUser = section(.eventUser), sItem = section(.eventItemKey), sTime = section(.eventTime), sCode = section(.eventCode)
        let sCat = d.hasCategories ? section(.eventCategoryKey) : -1
        let sRating = d.hasRatings ? section(.eventRating) : -1
        let sPct = d.hasPrices ? section(.eventUserPricePct) : -1
        var index: UInt32 = 0
        try forEachUser { _, ev in
            var pctSum = 0.0
            var pctCount: Int32 = 0
            for j in 0..<ev.count {
                let item = Int(ev.item[j])
                try w.append(index, to: sUser)
                try w.append(ev.itemKey[j], to: sItem)
                if sCat >= 0 { try w.append(ev.categoryKey[j], to: sCat) }
                try w.append(UInt64(bitPattern: ev.time[j]), to: sTime)
                let rating = labelRating == nil ? Float.nan : ev.rating[j]
                try w.append(ev.type[j] & 0x07 | (clickLabel(rating: rating) ? 0x80 : 0), to: sCode)
                if sRating >= 0 { try w.append(ev.rating[j].bitPattern, to: sRating) }
                if sPct >= 0 {
                    // As `fill`: the mean over the earlier events whose items have a price percentile.
                    let before: Float = pctCount > 0 ? Float(pctSum / Double(pctCount)) : .nan
                    try w.append(before.bitPattern, to: sPct)
                    let p = percentile(item)
                    if !p.isNaN { pctSum += Double(p); pctCount += 1 }
                }
            }
            index += 1
        }
        try w.append(contentsOf: userOrder.map { d.users.rawIDs[$0] }, to: section(.userRawID))
        var start = 0
        try w.append(UInt64(0), to: section(.userStart))
        for u in userOrder {
            start += Int(d.userEventCount[u])
            try w.append(UInt64(start), to: section(.userStart))
        }
        if d.hasDemographics {
            try w.append(contentsOf: userOrder.map { FeatureGroup.incomeBand.key(d.income(ofUser: $0)) }, to: section(.userIncomeKey))
            try w.append(contentsOf: userOrder.map { FeatureGroup.ageBand.key(d.age(ofUser: $0)) }, to: section(.userAgeKey))
        }
        if d.hasSocial {
            var at: UInt64 = 0
            try w.append(at, to: section(.userNeighborOffsets))
            for u in userOrder {
                at += UInt64(neighborKeys[u].count)
                try w.append(at, to: section(.userNeighborOffsets))
            }
            for u in userOrder { try w.append(contentsOf: neighborKeys[u], to: section(.userNeighborKeys)) }
        }
        let (bytes, crc) = try w.finish()
        return ShardEntry(file: FileOps.basename(of: path), records: events, bytes: bytes, crc32: crc)
    }
}

/// One user's events in (time, file order), with the keys histories are sliced from.
struct UserEvents {
    var item: [Int32] = []
    var type: [UInt8] = []
    var time: [Int64] = []
    /// Ratings (NaN when the dataset has none).
    var rating: [Float] = []
    var itemKey: [UInt64] = []
    var categoryKey: [UInt64] = []
    var typeKey: [UInt64] = []

    var count: Int { item.count }

    mutating func append(item i: Int32, type t: UInt8, time: Int64, rating r: Float) {
        item.append(i)
        type.append(t)
        self.time.append(time)
        rating.append(r)
    }

    mutating func removeAll() {
        item.removeAll(keepingCapacity: true)
        type.removeAll(keepingCapacity: true)
        time.removeAll(keepingCapacity: true)
        rating.removeAll(keepingCapacity: true)
        itemKey.removeAll(keepingCapacity: true)
        categoryKey.removeAll(keepingCapacity: true)
        typeKey.removeAll(keepingCapacity: true)
    }
}
