import Foundation
import HeedCore

/// What a dataset's sequence file holds, stored as its JSON blob.
struct SequenceInfo: Codable, Equatable {
    /// Events (all users' sequences, concatenated).
    var events: Int
    /// Users with events.
    var users: Int
    /// Whether `eventTime` holds Unix seconds (else the position in the user's line).
    var hasTimestamps: Bool
    /// Whether `eventCategoryKey` exists.
    var hasCategories: Bool
    /// Whether `eventRating` exists.
    var hasRatings: Bool
    /// Whether `eventUserPricePct` exists.
    var hasPrices: Bool
    /// Whether `userIncomeKey` and `userAgeKey` exist.
    var hasDemographics: Bool
    /// Whether the neighbour sections exist.
    var hasSocial: Bool
    /// Price-level buckets (for the `spend_level` key).
    var priceLevels: Int

    /// The section kinds, in file order, with their unpadded byte lengths.
    func lengths(neighborKeys: Int) -> [(ShardLayout.SectionKind, Int, Int)] {
        var l: [(ShardLayout.SectionKind, Int, Int)] = [(.eventUser, 0, events * 4), (.eventItemKey, 0, events * 8)]
        if hasCategories { l.append((.eventCategoryKey, 0, events * 8)) }
        l += [(.eventTime, 0, events * 8), (.eventCode, 0, events)]
        if hasRatings { l.append((.eventRating, 0, events * 4)) }
        if hasPrices { l.append((.eventUserPricePct, 0, events * 4)) }
        l += [(.userRawID, 0, users * 8), (.userStart, 0, (users + 1) * 8)]
        if hasDemographics { l += [(.userIncomeKey, 0, users * 8), (.userAgeKey, 0, users * 8)] }
        if hasSocial { l += [(.userNeighborOffsets, 0, (users + 1) * 8), (.userNeighborKeys, 0, neighborKeys * 8)] }
        return l
    }
}

/// A dataset's behaviour sequences, stored once (`sequences.heedq`, format in `ShardLayout`):
/// every user's events in time order, users by ascending raw id, and the per-user side
/// tables. Compact (version 2) shards refer to it by global event index; histories are
/// slices of its columns, read through the mapping without a copy.
final class SequenceFile: @unchecked Sendable {
    // Sendable: immutable after init; the mapping is read-only.
    /// File name inside a dataset directory.
    static let fileName = "sequences.heedq"
    /// File magic.
    static let magic: [UInt8] = Array("HEEDSEQS".utf8)
    /// Format version written and read.
    static let version: UInt32 = 1

    /// Path of the file.
    let path: String
    /// The description stored in the header.
    let info: SequenceInfo
    /// Payload CRC-32 (what compact shards link to).
    let payloadCRC: UInt32
    private let file: MappedFile
    private let offsets: [ShardLayout.SectionKind: Int]
    // The hot sections' offsets, resolved once (a dictionary lookup per access would cost more than the read).
    private let userAt: Int, startAt: Int, itemKeyAt: Int, categoryKeyAt: Int, rawIDAt: Int, timeAt: Int, codeAt: Int, ratingAt: Int, pricePctAt: Int

    /// Opens and validates `path`: container, layout, and every user's event range.
    init(path: String, verifyChecksum: Bool = true) throws {
        self.path = path
        let c = try SectionedFile(path: path, magic: Self.magic, what: "sequence file", versions: Self.version...Self.version, verifyChecksum: verifyChecksum)
        func corrupt(_ what: String) -> HeedError { HeedError(.corrupt, "\(path): \(what)") }
        let info: SequenceInfo
        do { info = try JSONDecoder().decode(SequenceInfo.self, from: c.json) } catch {
            throw HeedError(.corrupt, "\(path): description JSON in the header does not decode", cause: error)
        }
        guard info.events == c.recordCount, info.events >= 0, info.users >= 0, info.events < Int(UInt32.max), info.priceLevels >= 1 else {
            throw corrupt("header counts (\(c.recordCount) events; description \(info.events) events, \(info.users) users) are inconsistent")
        }
        let neighborKeys = c.sections.first { $0.kind == .userNeighborKeys }.map { $0.length / 8 } ?? 0
        let expected = ShardLayout(recordCount: info.events, jsonBytes: c.json.count, lengths: info.lengths(neighborKeys: neighborKeys))
        guard expected.sections == c.sections, expected.headerBytes == c.headerBytes, expected.fileBytes == c.file.count else {
            throw corrupt("section table does not match \(info.events) events and \(info.users) users of the stored description")
        }
        self.info = info
        self.file = c.file
        self.payloadCRC = c.payloadCRC
        var o: [ShardLayout.SectionKind: Int] = [:]
        for s in c.sections { o[s.kind] = s.offset }
        offsets = o
        userAt = o[.eventUser]!
        startAt = o[.userStart]!
        itemKeyAt = o[.eventItemKey]!
        categoryKeyAt = o[.eventCategoryKey] ?? -1
        rawIDAt = o[.userRawID]!
        timeAt = o[.eventTime]!
        codeAt = o[.eventCode]!
        ratingAt = o[.eventRating] ?? -1
        pricePctAt = o[.eventUserPricePct] ?? -1
        try validate()
    }

    /// Checks that user ranges tile the events and that every event names its range's user.
    private func validate() throws {
        let n = info.events, nu = info.users
        let bad: String? = file.withBytes { raw -> String? in
            let starts = offsets[.userStart]!, users = offsets[.eventUser]!, codes = offsets[.eventCode]!
            var prev: UInt64 = 0
            for u in 0...nu {
                let s = UInt64(littleEndian: raw.load(fromByteOffset: starts + u * 8, as: UInt64.self))
                if u == 0 { if s != 0 { return "user 0 starts at event \(s), not 0" }; continue }
                guard s >= prev, s <= UInt64(n) else { return "user \(u - 1)'s events end at \(s), out of order or past \(n) events" }
                for e in Int(prev)..<Int(s) where UInt32(littleEndian: raw.load(fromByteOffset: users + e * 4, as: UInt32.self)) != UInt32(u - 1) {
                    return "event \(e) lies in user \(u - 1)'s range but names another user"
                }
                prev = s
            }
            if prev != UInt64(n) { return "user ranges end at event \(prev), not \(n)" }
            for e in 0..<n where raw[codes + e] & 0x78 != 0 { return "event \(e) has an invalid code \(raw[codes + e])" }
            if info.hasSocial {
                let no = offsets[.userNeighborOffsets]!
                let total = UInt64((file.count - offsets[.userNeighborKeys]!) / 8)
                var p: UInt64 = 0
                for u in 0...nu {
                    let v = UInt64(littleEndian: raw.load(fromByteOffset: no + u * 8, as: UInt64.self))
                    if u == 0 ? v != 0 : v < p { return "neighbour offsets are invalid at user \(max(0, u - 1))" }
                    p = v
                }
                if p > total { return "neighbour offsets run past the keys" }
            }
            return nil
        }
        if let bad { throw HeedError(.corrupt, "\(path): \(bad)") }
    }

    @inline(__always)
    private func load<T: FixedWidthInteger>(_ at: Int, _ index: Int, as: T.Type) -> T {
        file.withBytes { T(littleEndian: $0.load(fromByteOffset: at + index * MemoryLayout<T>.size, as: T.self)) }
    }

    /// The user index of event `e`.
    @inline(__always)
    func user(ofEvent e: Int) -> Int { Int(load(userAt, e, as: UInt32.self)) }
    /// The first event of user `u`.
    @inline(__always)
    func start(ofUser u: Int) -> Int { Int(load(startAt, u, as: UInt64.self)) }
    /// The raw id of user `u`.
    func rawID(ofUser u: Int) -> UInt64 { load(rawIDAt, u, as: UInt64.self) }
    /// The time of event `e`.
    @inline(__always)
    func time(_ e: Int) -> Int64 { Int64(bitPattern: load(timeAt, e, as: UInt64.self)) }
    /// The code of event `e`: type in bits 0-2, bit 7 = click label.
    @inline(__always)
    func code(_ e: Int) -> UInt8 { file.withBytes { $0[codeAt + e] } }
    /// The rating of event `e` (NaN when unrated or without ratings).
    func rating(_ e: Int) -> Float {
        guard ratingAt >= 0 else { return .nan }
        return Float(bitPattern: load(ratingAt, e, as: UInt32.self))
    }
    /// The mean price percentile of the user's events before `e` (NaN when none or without prices).
    func userPricePct(_ e: Int) -> Float {
        guard pricePctAt >= 0 else { return .nan }
        return Float(bitPattern: load(pricePctAt, e, as: UInt32.self))
    }
    /// Income band key of user `u`.
    func incomeKey(ofUser u: Int) -> UInt64 { load(offsets[.userIncomeKey]!, u, as: UInt64.self) }
    /// Age band key of user `u`.
    func ageKey(ofUser u: Int) -> UInt64 { load(offsets[.userAgeKey]!, u, as: UInt64.self) }

    /// Runs `body` with the keys of a per-event UInt64 column (`eventItemKey`, `eventCategoryKey`)
    /// for events `range`: a view into the mapping, not a copy.
    @inline(__always)
    func withKeys<R>(_ kind: ShardLayout.SectionKind, _ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt64>) throws -> R) rethrows -> R {
        try file.withBytes { raw in
            // Safe: the section holds `events` 8-byte values, 64-byte aligned; `range` lies within 0..<events.
            let at = kind == .eventItemKey ? itemKeyAt : kind == .eventCategoryKey ? categoryKeyAt : offsets[kind]!
            let p = (raw.baseAddress! + at + range.lowerBound * 8).assumingMemoryBound(to: UInt64.self)
            return try body(UnsafeBufferPointer(start: p, count: range.count))
        }
    }

    /// Runs `body` with user `u`'s neighbour keys (a view into the mapping).
    func withNeighbors<R>(ofUser u: Int, _ body: (UnsafeBufferPointer<UInt64>) throws -> R) rethrows -> R {
        let no = offsets[.userNeighborOffsets]!
        let a = Int(load(no, u, as: UInt64.self)), b = Int(load(no, u + 1, as: UInt64.self))
        return try file.withBytes { raw in
            // Safe: offsets were validated at open to be non-decreasing and within the keys section.
            let p = (raw.baseAddress! + offsets[.userNeighborKeys]! + a * 8).assumingMemoryBound(to: UInt64.self)
            return try body(UnsafeBufferPointer(start: p, count: b - a))
        }
    }

    /// Side files are shared by every shard of a dataset: one mapping per path and process.
    private static let cache = LockedBox<[String: WeakSequenceFile]>([:])

    /// The open sequence file at `path` whose payload CRC is `crc`, mapped once per process
    /// while any shard uses it (a file replaced since is opened afresh).
    static func shared(path: String, crc: UInt32, verifyChecksum: Bool) throws -> SequenceFile {
        var hit: SequenceFile?
        cache.update { hit = $0[path]?.file }
        if let hit, hit.payloadCRC == crc { return hit }
        let f = try SequenceFile(path: path, verifyChecksum: verifyChecksum)
        cache.update { $0[path] = WeakSequenceFile(file: f) }
        return f
    }
}

/// A cache entry that does not keep a sequence file open.
struct WeakSequenceFile {
    /// The file while some shard holds it.
    weak var file: SequenceFile?
}
