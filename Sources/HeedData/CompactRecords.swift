import Foundation
import HeedCore

/// How a version 2 shard's records are read: each stores its target event (global index in
/// the dataset's sequence file) and target item (catalog record); every key, label and dense
/// value is derived here exactly as `SampleBuilder.fill` computes it for version 1.
///
/// Histories are slices `[e - min(position, L), e)` of the sequence file's columns, where
/// `position` is the target's index within its user's events and `L` the slot's cap.
final class CompactRecords: @unchecked Sendable {
    // Sendable: immutable after init; the mappings are read-only.
    /// Where one slot's keys come from.
    enum SlotSource {
        /// `FeatureGroup.user.key` of the record's user.
        case user
        /// The catalog slot of the same name, for the target item.
        case catalog(Int)
        /// The user's spend level before the target (from the mean price percentile).
        case spendLevel
        /// The user's income band.
        case income
        /// The user's age band.
        case age
        /// The user's social neighbours.
        case neighbors
        /// Item keys of the history (a slice of the sequence file).
        case histItems
        /// Category keys of the history (a slice of the sequence file).
        case histCategories
        /// Event-type keys of the history (computed from the event codes).
        case histEvents
        /// Time-gap bucket keys of the history relative to the target's time (computed).
        case histGaps
    }

    /// Where one label comes from (all labels of a negative are 0).
    enum LabelSource {
        /// Bit 7 of the target's event code.
        case click
        /// 1 when the target event has this type.
        case type(UInt8)
        /// The target's rating (0 when unrated).
        case rating
    }

    /// Where one dense value comes from.
    enum DenseSource {
        /// log(1 + position of the target in the user's events).
        case logHistoryLength
        /// A catalog dense value of the target item.
        case catalog(Int)
        /// The user's mean price percentile before the target (0.5 when none).
        case userPricePct
        /// The item's price percentile minus the user's.
        case priceGap(Int)
    }

    let sequences: SequenceFile
    let catalog: SampleShard
    private let file: MappedFile
    private let eventsOffset: Int, itemsOffset: Int
    private let slots: [SlotSource]
    private let slotCaps: [Int]
    private let labels: [LabelSource]
    private let dense: [DenseSource]
    private let itemSlot: Int
    private let typeKeys: [UInt64]
    private let gapKeys: [UInt64]
    private let hasTimestamps: Bool

    /// Reads a compact shard's sections, opens its side files (`SequenceFile.fileName`,
    /// `items.heeds` in the shard's directory), checks the links and every record.
    init(shardPath path: String, file: MappedFile, sections: [ShardLayout.Section], count: Int, schema: SampleSchema, verifyChecksum: Bool) throws {
        func corrupt(_ what: String) -> HeedError { HeedError(.corrupt, "\(path): \(what)") }
        self.file = file
        eventsOffset = sections[0].offset
        itemsOffset = sections[1].offset
        let links = file.withBytes { ShardLinks($0, at: sections[2].offset) }
        let directory = FileOps.dirname(of: path)
        let seqPath = directory + "/" + SequenceFile.fileName
        guard FileOps.exists(seqPath) else {
            throw HeedError(.notFound, "\(path): compact (version 2) shard needs its dataset's \(SequenceFile.fileName) beside it, and \(seqPath) does not exist")
        }
        sequences = try SequenceFile.shared(path: seqPath, crc: links.sequencesCRC, verifyChecksum: verifyChecksum)
        catalog = try Self.sharedCatalog(path: directory + "/" + Self.catalogFileName, crc: links.catalogCRC, verifyChecksum: verifyChecksum)
        guard sequences.payloadCRC == links.sequencesCRC, UInt64(sequences.info.events) == links.events else {
            throw corrupt("was written against a sequence file with crc \(hex(links.sequencesCRC)) and \(links.events) events; \(seqPath) has \(hex(sequences.payloadCRC)) and \(sequences.info.events)")
        }
        guard catalog.payloadCRC == links.catalogCRC, UInt64(catalog.count) == links.items else {
            throw corrupt("was written against an item catalog with crc \(hex(links.catalogCRC)) and \(links.items) items; \(catalog.path) has \(hex(catalog.payloadCRC)) and \(catalog.count)")
        }
        let catSlots = catalog.schema.slots.map(\.name)
        guard let itemSlot = catSlots.firstIndex(of: "item") else { throw corrupt("the item catalog has no 'item' slot") }
        self.itemSlot = itemSlot
        let info = sequences.info
        slots = try schema.slots.map { slot in
            switch slot.name {
            case "user": return .user
            case "spend_level" where info.hasPrices: return .spendLevel
            case "income_band" where info.hasDemographics: return .income
            case "age_band" where info.hasDemographics: return .age
            case "neighbors" where info.hasSocial: return .neighbors
            case "hist_items": return .histItems
            case "hist_categories" where info.hasCategories: return .histCategories
            case "hist_events": return .histEvents
            case "hist_gaps" where info.hasTimestamps: return .histGaps
            default:
                guard let c = catSlots.firstIndex(of: slot.name) else { throw corrupt("slot '\(slot.name)' cannot be derived from the sequence file and catalog") }
                return .catalog(c)
            }
        }
        slotCaps = schema.slots.map(\.maxLength)
        labels = try schema.labels.map { name in
            if name == "click" { return .click }
            if name == "rating" && info.hasRatings { return .rating }
            guard let t = EventType.allCases.first(where: { $0.name == name }) else { throw corrupt("label '\(name)' cannot be derived") }
            return .type(t.rawValue)
        }
        let catDense = catalog.schema.dense
        dense = try schema.dense.map { name in
            switch name {
            case "log_hist_len": return .logHistoryLength
            case "user_price_pct" where info.hasPrices: return .userPricePct
            case "price_gap" where info.hasPrices:
                guard let c = catDense.firstIndex(of: "price_pct") else { throw corrupt("dense 'price_gap' needs the catalog's 'price_pct'") }
                return .priceGap(c)
            default:
                guard let c = catDense.firstIndex(of: name) else { throw corrupt("dense value '\(name)' cannot be derived") }
                return .catalog(c)
            }
        }
        typeKeys = (0..<8).map { FeatureGroup.eventType.key(UInt64($0)) }
        gapKeys = (0...64).map { FeatureGroup.timeGap.key(UInt64($0)) }
        hasTimestamps = info.hasTimestamps
        let events = UInt32(info.events), items = UInt32(catalog.count)
        let bad: Int? = file.withBytes { raw -> Int? in
            for r in 0..<count {
                let e = UInt32(littleEndian: raw.load(fromByteOffset: eventsOffset + r * 4, as: UInt32.self))
                let i = UInt32(littleEndian: raw.load(fromByteOffset: itemsOffset + r * 4, as: UInt32.self)) & ~RecordRef.negativeBit
                if e >= events || i >= items { return r }
            }
            return nil
        }
        if let bad { throw corrupt("record \(bad) refers to an event or item outside the sequence file (\(events) events) or catalog (\(items) items)") }
    }

    /// File name of the item catalog inside a dataset directory.
    static let catalogFileName = "items.heeds"

    /// The record's reference.
    @inline(__always)
    func ref(_ r: Int) -> RecordRef {
        file.withBytes { raw in
            let e = UInt32(littleEndian: raw.load(fromByteOffset: eventsOffset + r * 4, as: UInt32.self))
            let i = UInt32(littleEndian: raw.load(fromByteOffset: itemsOffset + r * 4, as: UInt32.self))
            return RecordRef(event: e, item: i & ~RecordRef.negativeBit, negative: i & RecordRef.negativeBit != 0)
        }
    }

    /// Raw user id of record `r`.
    func userID(_ r: Int) -> UInt64 { sequences.rawID(ofUser: sequences.user(ofEvent: Int(ref(r).event))) }

    /// Raw target item id of record `r`.
    func itemID(_ r: Int) -> UInt64 { catalog.itemID(Int(ref(r).item)) }

    /// Target time of record `r` (0 without timestamps).
    func timestamp(_ r: Int) -> Int64 { hasTimestamps ? sequences.time(Int(ref(r).event)) : 0 }

    /// Label `l` of record `r`.
    func label(_ r: Int, _ l: Int) -> Float {
        let x = ref(r)
        if x.negative { return 0 }
        let e = Int(x.event)
        switch labels[l] {
        case .click: return sequences.code(e) & 0x80 != 0 ? 1 : 0
        case .type(let t): return sequences.code(e) & 0x07 == t ? 1 : 0
        case .rating:
            let v = sequences.rating(e)
            return v.isNaN ? 0 : v
        }
    }

    /// Dense value `d` of record `r`.
    func denseValue(_ r: Int, _ d: Int) -> Float {
        let x = ref(r)
        let e = Int(x.event)
        switch dense[d] {
        case .logHistoryLength:
            return Float(log1p(Double(e - sequences.start(ofUser: sequences.user(ofEvent: e)))))
        case .catalog(let c): return catalog.denseValue(Int(x.item), c)
        case .userPricePct:
            let p = sequences.userPricePct(e)
            return p.isNaN ? 0.5 : p
        case .priceGap(let c):
            let p = sequences.userPricePct(e)
            return catalog.denseValue(Int(x.item), c) - (p.isNaN ? 0.5 : p)
        }
    }

    /// The history range of record `r` for a slot capped at `cap`.
    @inline(__always)
    private func history(_ e: Int, cap: Int) -> Range<Int> {
        let position = e - sequences.start(ofUser: sequences.user(ofEvent: e))
        return (e - min(position, cap))..<e
    }

    /// Keys of record `r` in `slot`.
    func keyCount(slot: Int, record r: Int) -> Int {
        let x = ref(r)
        switch slots[slot] {
        case .catalog(let c): return catalog.keyCount(slot: c, record: Int(x.item))
        case .neighbors: return sequences.withNeighbors(ofUser: sequences.user(ofEvent: Int(x.event))) { $0.count }
        case .histItems, .histCategories, .histEvents, .histGaps: return history(Int(x.event), cap: slotCaps[slot]).count
        case .user, .spendLevel, .income, .age: return 1
        }
    }

    /// Runs `body` with the keys of record `r` in `slot`.
    func withKeys<R>(slot: Int, record r: Int, _ body: (UnsafeBufferPointer<UInt64>) throws -> R) rethrows -> R {
        let x = ref(r)
        let e = Int(x.event)
        var single: UInt64
        switch slots[slot] {
        case .user: single = FeatureGroup.user.key(sequences.rawID(ofUser: sequences.user(ofEvent: e)))
        case .spendLevel:
            let p = sequences.userPricePct(e)
            let levels = sequences.info.priceLevels
            single = p.isNaN ? FeatureGroup.spendLevel.missingKey : FeatureGroup.spendLevel.key(UInt64(min(levels - 1, Int(p * Float(levels)))))
        case .income: single = sequences.incomeKey(ofUser: sequences.user(ofEvent: e))
        case .age: single = sequences.ageKey(ofUser: sequences.user(ofEvent: e))
        default: single = 0
        }
        switch slots[slot] {
        case .user, .spendLevel, .income, .age:
            return try withUnsafePointer(to: &single) { try body(UnsafeBufferPointer(start: $0, count: 1)) }
        case .catalog(let c): return try catalog.withKeys(slot: c, record: Int(x.item), body)
        case .neighbors: return try sequences.withNeighbors(ofUser: sequences.user(ofEvent: e), body)
        case .histItems: return try sequences.withKeys(.eventItemKey, history(e, cap: slotCaps[slot]), body)
        case .histCategories: return try sequences.withKeys(.eventCategoryKey, history(e, cap: slotCaps[slot]), body)
        case .histEvents:
            let h = history(e, cap: slotCaps[slot])
            return try withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(1, h.count)) { buf in
                for (j, ev) in h.enumerated() { buf[j] = typeKeys[Int(sequences.code(ev) & 0x07)] }
                return try body(UnsafeBufferPointer(rebasing: buf[0..<h.count]))
            }
        case .histGaps:
            let h = history(e, cap: slotCaps[slot])
            let t = sequences.time(e)
            return try withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(1, h.count)) { buf in
                for (j, ev) in h.enumerated() { buf[j] = gapKeys[Int(SampleBuilder.gapBucket(t - sequences.time(ev)))] }
                return try body(UnsafeBufferPointer(rebasing: buf[0..<h.count]))
            }
        }
    }

    /// Catalogs are shared by every shard of a dataset: one mapping per path and process.
    private static let catalogs = LockedBox<[String: WeakShard]>([:])

    /// The open catalog at `path` whose payload CRC is `crc`.
    static func sharedCatalog(path: String, crc: UInt32, verifyChecksum: Bool) throws -> SampleShard {
        var hit: SampleShard?
        catalogs.update { hit = $0[path]?.shard }
        if let hit, hit.payloadCRC == crc { return hit }
        guard FileOps.exists(path) else {
            throw HeedError(.notFound, "compact (version 2) shards need their dataset's item catalog, and \(path) does not exist")
        }
        let s = try SampleShard(path: path, verifyChecksum: verifyChecksum)
        guard s.version == Int(ShardLayout.version) else { throw HeedError(.corrupt, "\(path): an item catalog must be a version 1 shard (found version \(s.version))") }
        catalogs.update { $0[path] = WeakShard(shard: s) }
        return s
    }
}

/// A cache entry that does not keep a shard open.
struct WeakShard {
    /// The shard while something holds it.
    weak var shard: SampleShard?
}
