import Foundation
import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `heed prepare --merge`: joins the N parts of a parted prepare (`--part k/N`) into the one
/// dataset the single-process prepare of the same input and options writes, byte for byte.
///
/// Why this is a merge and not a concatenation: a part holds exactly the whole prepare's
/// records of its users (every user's generator is seeded by (seed, user raw id), its shard
/// chosen from the same), and its catalog, schema, time bounds and negatives are the whole's
/// (every event feeds the global tables in every part). What differs is numbering: the whole
/// prepare lists users by ascending raw id across all parts, so the sequence file interleaves
/// the parts' users, every event gets a new global index, and each shard is the parts' same
/// shard merged by user raw id with its records' event indices remapped.
///
/// Compact (format 2) parts only: a format 1 record stores no event index to remap, and
/// its keys are what format 2 derives, so merging it would be a different program.
public enum DatasetMerge {
    /// One part directory, opened and checked.
    struct Part {
        /// The directory as given.
        let directory: String
        let manifest: DatasetManifest
        /// k of `--part k/N`.
        let index: Int
        /// The part's sequence file, validated (user ranges tile the events).
        let sequences: SequenceFile
        /// The same file's raw sections (for copying event columns).
        let raw: SectionedFile
        /// Byte offset of each section of `raw`.
        let at: [ShardLayout.SectionKind: Int]

        var users: Int { sequences.info.users }

        /// The bytes `[from, to)` elements of `kind` (of `width` bytes each) span, read in place.
        func withElements<R>(_ kind: ShardLayout.SectionKind, _ from: Int, _ to: Int, width: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try raw.file.withBytes { bytes in
                let base = at[kind]!
                return try body(UnsafeRawBufferPointer(rebasing: bytes[(base + from * width)..<(base + to * width)]))
            }
        }

        /// Element `i` of a UInt64 section.
        func word(_ kind: ShardLayout.SectionKind, _ i: Int) -> UInt64 {
            raw.file.withBytes { UInt64(littleEndian: $0.load(fromByteOffset: at[kind]! + i * 8, as: UInt64.self)) }
        }
    }

    /// Merges the part directories `directories` (any order) into `output`.
    ///
    /// Checks first that they are the N distinct parts of one prepare: the same dataset,
    /// settings (apart from the part), schema, item catalog, sources and global counts, each
    /// k in 0..<N exactly once, every file intact (checksums, links). Like `heed prepare` the
    /// output is written under a temporary sibling name and renamed into place, so a failed
    /// merge leaves nothing behind.
    ///
    /// - Throws: `HeedError(.config)` for parts that do not form one prepare, naming the
    ///   directories; `.unsupported` for format 1 parts; `.corrupt` / `.notFound` for damaged
    ///   or missing files, naming the file.
    @discardableResult
    public static func merge(parts directories: [String], output: String, overwrite: Bool = false,
                             progress: (String) -> Void = { _ in }) throws -> DatasetManifest {
        if FileOps.exists(output) && !overwrite {
            throw HeedError(.config, "\(output): output already exists (pass --overwrite to replace it)")
        }
        let parts = try open(directories)
        let manifest = try Preparer.replaceDirectory(output) { tmp in try write(parts, into: tmp, progress: progress) }
        progress("wrote \(output)")
        return manifest
    }

    /// Parses a manifest's `settings.part` (`"k/N"`).
    static func parsePart(_ text: String) -> (index: Int, count: Int)? {
        let f = text.split(separator: "/", omittingEmptySubsequences: false)
        guard f.count == 2, let k = Int(f[0]), let n = Int(f[1]), n >= 1, (0..<n).contains(k) else { return nil }
        return (k, n)
    }

    /// Loads and checks every part; returns them by part index.
    static func open(_ directories: [String]) throws -> [Part] {
        guard !directories.isEmpty else { throw HeedError(.config, "--merge needs the directories of every part (heed prepare --part k/N --out DIR)") }
        var loaded: [(dir: String, m: DatasetManifest, k: Int, n: Int)] = []
        for dir in directories {
            guard FileOps.isDirectory(dir) else { throw HeedError(.notFound, "\(dir): no such part directory") }
            let m = try DatasetManifest.load(directory: dir)
            guard let text = m.settings.part else {
                throw HeedError(.config, "\(dir): not a part (its manifest has no settings.part; prepare each part with --part k/N)")
            }
            guard let kn = parsePart(text) else {
                throw HeedError(.corrupt, "\(dir)/\(DatasetManifest.fileName): settings.part '\(text)' is not k/N")
            }
            let (k, n) = kn
            guard m.formatVersion == 2, m.sequences != nil else {
                throw HeedError(.unsupported, "\(dir): shard format \(m.formatVersion) parts cannot be merged; --merge reads compact shards (prepare the parts with --shard-format 2, the default)")
            }
            loaded.append((dir, m, k, n))
        }
        let ref = loaded[0]
        for p in loaded.dropFirst() {
            guard p.n == ref.n else {
                throw HeedError(.config, "\(p.dir) is part \(p.k)/\(p.n) but \(ref.dir) is part \(ref.k)/\(ref.n): not parts of one prepare")
            }
            if let what = difference(p.m, ref.m) {
                throw HeedError(.config, "\(p.dir) and \(ref.dir) are not parts of the same prepare: their \(what) differ")
            }
        }
        var byIndex = [String?](repeating: nil, count: ref.n)
        for p in loaded {
            if let other = byIndex[p.k] { throw HeedError(.config, "\(other) and \(p.dir) are both part \(p.k)/\(p.n)") }
            byIndex[p.k] = p.dir
        }
        let missing = byIndex.indices.filter { byIndex[$0] == nil }
        guard missing.isEmpty else {
            throw HeedError(.config, "part\(missing.count == 1 ? "" : "s") \(missing.map { "\($0)/\(ref.n)" }.joined(separator: ", ")) missing: \(directories.count) of \(ref.n) part directories given (\(directories.joined(separator: " ")))")
        }
        return try loaded.sorted { $0.k < $1.k }.map { p in
            // Opening every file checks its checksum, its links and every record.
            let m = p.m
            _ = try m.openCatalog(directory: p.dir)
            for split in Split.allCases {
                let shards = try m.open(split, directory: p.dir)
                guard m.stats.records[split.rawValue] ?? 0 == shards.reduce(0, { $0 + $1.count }) else {
                    throw HeedError(.corrupt, "\(p.dir)/\(DatasetManifest.fileName): stats.records.\(split.rawValue) disagrees with its \(split.rawValue) shards")
                }
            }
            let path = p.dir + "/" + m.sequences!.file
            let sequences = try SequenceFile(path: path, verifyChecksum: false)
            guard sequences.payloadCRC == m.sequences!.crc32, sequences.info.events == m.sequences!.records,
                  sequences.info.events == m.stats.eventsKept, sequences.info.users == m.stats.users else {
                throw HeedError(.corrupt, "\(path): does not match its manifest (\(sequences.info.events) events of \(sequences.info.users) users, crc \(hex(sequences.payloadCRC)); manifest says \(m.stats.eventsKept) events of \(m.stats.users) users, crc \(hex(m.sequences!.crc32)))")
            }
            let raw = try SectionedFile(path: path, magic: SequenceFile.magic, what: "sequence file", versions: SequenceFile.version...SequenceFile.version, verifyChecksum: false)
            var at: [ShardLayout.SectionKind: Int] = [:]
            for s in raw.sections { at[s.kind] = s.offset }
            return Part(directory: p.dir, manifest: m, index: p.k, sequences: sequences, raw: raw, at: at)
        }
    }

    /// What differs between two parts' manifests beyond what a part may change (nil: nothing).
    static func difference(_ a: DatasetManifest, _ b: DatasetManifest) -> String? {
        var sa = a.settings, sb = b.settings
        sa.part = nil
        sb.part = nil
        if a.dataset != b.dataset { return "datasets (\(a.dataset), \(b.dataset))" }
        if sa != sb { return "settings" }
        if a.formatVersion != b.formatVersion { return "format versions" }
        if a.schema != b.schema || a.catalogSchema != b.catalogSchema { return "schemas" }
        if a.catalog != b.catalog { return "item catalogs (crc \(hex(a.catalog.crc32)), \(hex(b.catalog.crc32)))" }
        if a.sources != b.sources { return "sources" }
        if a.train.map(\.file) != b.train.map(\.file) || a.valid.map(\.file) != b.valid.map(\.file) || a.test.map(\.file) != b.test.map(\.file) || a.sequences?.file != b.sequences?.file {
            return "shard file names"
        }
        // Every event feeds the global counts in every part.
        if a.stats.rowsRead != b.stats.rowsRead || a.stats.filtered != b.stats.filtered || a.stats.badRows != b.stats.badRows || a.stats.items != b.stats.items {
            return "global counts (rows read, filtered, bad rows, items)"
        }
        return nil
    }

    /// Writes the merged sequence file, shards, catalog and manifest into `directory`.
    static func write(_ parts: [Part], into directory: String, progress: (String) -> Void) throws -> DatasetManifest {
        let ref = parts[0].manifest
        let (sequences, shift) = try writeSequences(parts, path: directory + "/" + ref.sequences!.file)
        progress("merged \(parts.count) parts: \(sequences.records) events of \(parts.reduce(0) { $0 + $1.users }) users (\(sequences.bytes) bytes)")

        // The catalog is the same file in every part (its CRC was compared): copy it.
        let catalog = ref.catalog
        let source = try MappedFile(path: parts[0].directory + "/" + catalog.file)
        let copy = try PosixFile(creating: directory + "/" + catalog.file)
        try source.withBytes { try copy.write($0, at: 0) }
        try copy.syncAndClose()

        let links = ShardLinks(sequencesCRC: sequences.crc32, catalogCRC: catalog.crc32, events: UInt64(sequences.records), items: UInt64(catalog.records))
        var entries: [[ShardEntry]] = []
        for split in Split.allCases {
            entries.append(try ref.shards(split).indices.map { s in
                try mergeShard(parts, split: split, shard: s, shift: shift, links: links, directory: directory)
            })
        }

        var stats = ref.stats
        stats.eventsKept = parts.reduce(0) { $0 + $1.manifest.stats.eventsKept }
        stats.users = parts.reduce(0) { $0 + $1.manifest.stats.users }
        stats.evaluatedUsers = parts.reduce(0) { $0 + $1.manifest.stats.evaluatedUsers }
        for (si, split) in Split.allCases.enumerated() { stats.records[split.rawValue] = entries[si].reduce(0) { $0 + $1.records } }
        var settings = ref.settings
        settings.part = nil
        let manifest = DatasetManifest(
            formatVersion: ref.formatVersion, dataset: ref.dataset, settings: settings,
            schema: ref.schema, catalogSchema: ref.catalogSchema,
            train: entries[0], valid: entries[1], test: entries[2],
            catalog: catalog, sequences: sequences, sources: ref.sources, stats: stats)
        let file = try PosixFile(creating: directory + "/" + DatasetManifest.fileName)
        try file.write(Array(try manifest.encoded()) + [0x0A], at: 0)
        try file.syncAndClose()
        progress("records: train \(stats.records["train"] ?? 0), valid \(stats.records["valid"] ?? 0), test \(stats.records["test"] ?? 0); items \(catalog.records)")
        return manifest
    }

    /// Writes the sequence file of all parts' users by ascending raw id.
    ///
    /// - Returns: its manifest entry, and per part and part user the amount its event indices
    ///   move by (merged index − part index).
    static func writeSequences(_ parts: [Part], path: String) throws -> (ShardEntry, [[Int64]]) {
        var info = parts[0].sequences.info
        for p in parts.dropFirst() {
            var i = p.sequences.info
            i.events = info.events
            i.users = info.users
            guard i == info else { throw HeedError(.config, "\(p.directory) and \(parts[0].directory): their sequence files describe different data (\(p.sequences.info) vs \(parts[0].sequences.info))") }
        }
        info.events = parts.reduce(0) { $0 + $1.sequences.info.events }
        info.users = parts.reduce(0) { $0 + $1.users }
        guard info.events < Int(UInt32.max) else {
            throw HeedError(.config, "\(info.events) events exceed the compact format's 2^32 − 1 (one dataset's event indices are 32-bit)")
        }
        let neighborKeys = info.hasSocial ? parts.reduce(0) { $0 + Int($1.word(.userNeighborOffsets, $1.users)) } : 0
        let lengths = info.lengths(neighborKeys: neighborKeys)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = Array(try enc.encode(info))
        let layout = ShardLayout(recordCount: info.events, jsonBytes: json.count, lengths: lengths)
        let w = try SectionedFileWriter(path: path, layout: layout, magic: SequenceFile.magic, version: SequenceFile.version, json: json, flushBytes: 1 << 16)
        func section(_ k: ShardLayout.SectionKind) -> Int { lengths.firstIndex { $0.0 == k }! }
        // Per-event columns copied as they are (width in bytes); the user column is rewritten.
        var columns: [(ShardLayout.SectionKind, Int)] = [(.eventItemKey, 8), (.eventTime, 8), (.eventCode, 1)]
        if info.hasCategories { columns.append((.eventCategoryKey, 8)) }
        if info.hasRatings { columns.append((.eventRating, 4)) }
        if info.hasPrices { columns.append((.eventUserPricePct, 4)) }
        let columnSections = columns.map { section($0.0) }
        let sUser = section(.eventUser), sRaw = section(.userRawID), sStart = section(.userStart)
        let sIncome = info.hasDemographics ? section(.userIncomeKey) : -1, sAge = info.hasDemographics ? section(.userAgeKey) : -1
        let sOffsets = info.hasSocial ? section(.userNeighborOffsets) : -1, sKeys = info.hasSocial ? section(.userNeighborKeys) : -1

        var shift = parts.map { [Int64](repeating: 0, count: $0.users) }
        var next = [Int](repeating: 0, count: parts.count)
        var heap = UserHeap()
        for (p, part) in parts.enumerated() where part.users > 0 { heap.push(part.sequences.rawID(ofUser: 0), p) }
        var user: UInt32 = 0
        var events = 0, neighbors: UInt64 = 0
        var lastRaw: UInt64? = nil
        var userColumn: [UInt32] = []
        try w.append(UInt64(0), to: sStart)
        if info.hasSocial { try w.append(UInt64(0), to: sOffsets) }
        while let (raw, p) = heap.pop() {
            let part = parts[p], u = next[p]
            if let lastRaw, raw <= lastRaw {
                throw HeedError(.corrupt, "\(part.sequences.path): user \(raw) is out of order or also in another part (after user \(lastRaw))")
            }
            lastRaw = raw
            let from = part.sequences.start(ofUser: u), to = part.sequences.start(ofUser: u + 1)
            shift[p][u] = Int64(events - from)
            userColumn.removeAll(keepingCapacity: true)
            userColumn.append(contentsOf: repeatElement(user.littleEndian, count: to - from))
            try w.append(contentsOf: userColumn, to: sUser)
            for (c, (kind, width)) in columns.enumerated() {
                try part.withElements(kind, from, to, width: width) { try w.append($0, to: columnSections[c]) }
            }
            events += to - from
            try w.append(raw, to: sRaw)
            try w.append(UInt64(events), to: sStart)
            if info.hasDemographics {
                try w.append(part.word(.userIncomeKey, u), to: sIncome)
                try w.append(part.word(.userAgeKey, u), to: sAge)
            }
            if info.hasSocial {
                let a = Int(part.word(.userNeighborOffsets, u)), b = Int(part.word(.userNeighborOffsets, u + 1))
                try part.withElements(.userNeighborKeys, a, b, width: 8) { try w.append($0, to: sKeys) }
                neighbors += UInt64(b - a)
                try w.append(neighbors, to: sOffsets)
            }
            user += 1
            next[p] += 1
            if next[p] < part.users { heap.push(part.sequences.rawID(ofUser: next[p]), p) }
        }
        let (bytes, crc) = try w.finish()
        return (ShardEntry(file: FileOps.basename(of: path), records: info.events, bytes: bytes, crc32: crc), shift)
    }

    /// Writes shard `shard` of `split`: the parts' same shard merged by user raw id, each
    /// record's event index moved into the merged sequence file.
    static func mergeShard(_ parts: [Part], split: Split, shard: Int, shift: [[Int64]], links: ShardLinks, directory: String) throws -> ShardEntry {
        let name = parts[0].manifest.shards(split)[shard].file
        let inputs = try parts.map { part -> SectionedFile in
            let path = part.directory + "/" + part.manifest.shards(split)[shard].file
            return try SectionedFile(path: path, magic: ShardLayout.magic, what: "sample shard", versions: ShardLayout.compactVersion...ShardLayout.compactVersion, verifyChecksum: false)
        }
        func event(_ p: Int, _ r: Int) -> Int {
            inputs[p].file.withBytes { Int(UInt32(littleEndian: $0.load(fromByteOffset: inputs[p].sections[0].offset + r * 4, as: UInt32.self))) }
        }
        func itemWord(_ p: Int, _ r: Int) -> UInt32 {
            inputs[p].file.withBytes { UInt32(littleEndian: $0.load(fromByteOffset: inputs[p].sections[1].offset + r * 4, as: UInt32.self)) }
        }
        let total = inputs.reduce(0) { $0 + $1.recordCount }
        let w = try CompactShardWriter(path: directory + "/" + name, schema: parts[0].manifest.schema, recordCount: total, links: links, flushBytes: 1 << 16)
        var next = [Int](repeating: 0, count: parts.count)
        var heap = UserHeap()
        for p in parts.indices where inputs[p].recordCount > 0 {
            let s = parts[p].sequences
            heap.push(s.rawID(ofUser: s.user(ofEvent: event(p, 0))), p)
        }
        while let (raw, p) = heap.pop() {
            let s = parts[p].sequences
            let u = s.user(ofEvent: event(p, next[p]))
            let move = shift[p][u]
            // A part's records of one user are contiguous and in order.
            while next[p] < inputs[p].recordCount {
                let e = event(p, next[p])
                let v = s.user(ofEvent: e)
                if v != u {
                    let nextRaw = s.rawID(ofUser: v)
                    guard nextRaw > raw else {
                        throw HeedError(.corrupt, "\(inputs[p].file.path): records of user \(nextRaw) come after user \(raw) (a part's shard lists users by ascending raw id)")
                    }
                    heap.push(nextRaw, p)
                    break
                }
                let word = itemWord(p, next[p])
                try w.append(RecordRef(event: UInt32(Int64(e) + move), item: word & ~RecordRef.negativeBit, negative: word & RecordRef.negativeBit != 0))
                next[p] += 1
            }
        }
        let (bytes, crc) = try w.finish()
        return ShardEntry(file: name, records: total, bytes: bytes, crc32: crc)
    }
}

/// A min-heap of (user raw id, part): the part whose next user comes first.
private struct UserHeap {
    private var items: [(UInt64, Int)] = []

    mutating func push(_ raw: UInt64, _ part: Int) {
        items.append((raw, part))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].0 < items[parent].0 else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (UInt64, Int)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].0 < items[m].0 { m = l }
                if r < items.count && items[r].0 < items[m].0 { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
