import Foundation
import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `heed prepare` as a library call: raw dataset files in, a dataset directory out.
///
/// The output directory is built under a temporary sibling name and renamed into place
/// only when every shard and the manifest are written and synced, so a failed run
/// leaves nothing behind.
public enum Preparer {
    /// Prepares `options.dataset` into `options.output` and returns the manifest written there.
    ///
    /// - Parameters:
    ///   - progress: receives one line per stage (the CLI prints them).
    ///   - meter: follows the phases, bytes and records as they go (the CLI draws it on a terminal).
    @discardableResult
    public static func prepare(_ options: PrepareOptions, meter: PrepareProgress? = nil, progress: (String) -> Void = { _ in }) throws -> DatasetManifest {
        let o = options
        try validate(o)
        let out = o.output
        if FileOps.exists(out) && !o.overwrite {
            throw HeedError(.config, "\(out): output already exists (pass --overwrite to replace it)")
        }
        let meter = meter ?? PrepareProgress(bytesTotal: inputBytes(o))
        return try PrepareProgress.$active.withValue(meter) { try prepare(o, metered: meter, progress: progress) }
    }

    /// `prepare` with its meter active.
    private static func prepare(_ o: PrepareOptions, metered meter: PrepareProgress, progress: (String) -> Void) throws -> DatasetManifest {
        let out = o.output
        let manifest = try replaceDirectory(out) { tmp in
            // Spilled runs live inside the temporary output, so a failure removes them with it.
            var spill: EventSpill? = nil
            if let budget = o.memoryBudget {
                let runs = tmp + "/runs"
                try FileOps.makeDirectory(runs)
                var needsTimes = false
                if case .time(let v, let t) = o.split, v == nil || t == nil { needsTimes = true }
                spill = EventSpill(directory: runs, budget: budget, needsTimes: needsTimes, part: o.part.map { ($0.index, $0.count) }, meter: meter)
            }
            var log = BadRowLog(skip: o.skipBadRows)
            var raw = try load(o, log: &log, spill: spill)
            // Loading is over: building needs the raw ids, not the hash tables that found them
            // (except users' for social links), which are the largest tables at scale.
            raw.items.releaseLookup()
            if !raw.hasSocial { raw.users.releaseLookup() }
            meter.events(raw.eventCount)
            try spill?.finish()
            if let spill, spill.spills > 0 {
                progress("read \(raw.rowsRead) rows, kept \(raw.eventCount) events; sorted them in \(spill.spills) runs on disk (--memory-budget \(spill.budget >= 1 << 20 ? "\(spill.budget >> 20) MiB" : "\(spill.budget) bytes"))\(spill.overBudget ? "; the id tables alone exceed the budget" : "")")
            } else {
                progress("read \(raw.rowsRead) rows, kept \(raw.eventCount) events")
            }
            meter.enter(.sort)
            let builder = try SampleBuilder(dataset: raw, options: o)
            let manifest = try write(builder: builder, raw: raw, log: log, options: o, directory: tmp, meter: meter, progress: progress)
            spill?.removeRuns()
            FileOps.removeTree(tmp + "/runs")
            return manifest
        }
        progress("wrote \(out)")
        return manifest
    }

    /// Builds a directory at `output` by running `build` on an empty temporary sibling, then
    /// renaming it into place (replacing an existing `output` only then); on any failure the
    /// temporary directory is removed and `output` is untouched. `heed prepare` and
    /// `heed prepare --merge` write through this.
    static func replaceDirectory<T>(_ output: String, _ build: (String) throws -> T) throws -> T {
        let parent = FileOps.dirname(of: output)
        try FileOps.makeDirectories(parent)
        let tmp = parent + "/." + FileOps.basename(of: output) + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        FileOps.removeTree(tmp)
        try FileOps.makeDirectory(tmp)
        do {
            let result = try build(tmp)
            if FileOps.exists(output) {
                let old = parent + "/." + FileOps.basename(of: output) + ".old-\(getpid())"
                try FileOps.rename(output, old)
                try FileOps.rename(tmp, output)
                FileOps.removeTree(old)
            } else {
                try FileOps.rename(tmp, output)
            }
            return result
        } catch {
            FileOps.removeTree(tmp)
            throw error
        }
    }

    /// The manifest in `options.output` if it was prepared from the same dataset with the same
    /// settings and its shards open cleanly; otherwise prepares the dataset (replacing the folder).
    ///
    /// `heed train` calls this to prepare the bundled samples on first use.
    public static func loadOrPrepare(_ options: PrepareOptions, progress: (String) -> Void = { _ in }) throws -> DatasetManifest {
        if FileOps.isDirectory(options.output), let m = try? DatasetManifest.load(directory: options.output),
           m.dataset == options.dataset.rawValue, m.settings == settings(options, validFrom: m.settings.validFrom, testFrom: m.settings.testFrom),
           m.sources.allSatisfy({ src in (try? FileOps.size(src.path)) == src.bytes && options.input.map { src.path.hasPrefix($0) || [options.events, options.items, options.social, options.users].contains(src.path) } ?? true }),
           (try? Split.allCases.forEach { _ = try m.open($0, directory: options.output, verifyChecksum: false) }) != nil {
            return m
        }
        var o = options
        o.overwrite = true
        return try prepare(o, progress: progress)
    }

    /// The settings block a manifest records for `o` (time bounds as resolved by the builder).
    static func settings(_ o: PrepareOptions, validFrom: Int64?, testFrom: Int64?) -> PreparedSettings {
        var isTime = false
        var vf = validFrom, tf = testFrom
        if case .time(let v, let t) = o.split {
            isTime = true
            if let v { vf = v }
            if let t { tf = t }
        }
        return PreparedSettings(
            sampleProtocol: o.sampleProtocol.rawValue, split: isTime ? "time" : "loo",
            validFrom: isTime ? vf : nil, testFrom: isTime ? tf : nil,
            shards: o.shards, maxLength: o.maxLength, seed: o.seed, priceLevels: o.priceLevels,
            maxAttributes: o.maxAttributes, maxTextTokens: o.maxTextTokens, maxNeighbors: o.maxNeighbors, maxRelations: o.maxRelations,
            targetEvents: o.targetEvents.map { $0.sorted { $0.rawValue < $1.rawValue }.map(\.name) },
            skipBadRows: o.skipBadRows, positiveRating: o.positiveRating,
            part: o.part.map { "\($0.index)/\($0.count)" })
    }

    /// The input's size in bytes: the `--input` file or every file under the `--input` folder,
    /// plus the override files (what the read phase's bytes are counted against).
    public static func inputBytes(_ o: PrepareOptions) -> Int {
        var total = 0
        var paths = [o.events, o.items, o.social, o.users].compactMap { $0 }
        if let input = o.input {
            if FileOps.isDirectory(input) {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: input)) ?? []
                paths += names.map { input + "/" + $0 }.filter { !FileOps.isDirectory($0) }
            } else {
                paths.append(input)
            }
        }
        for p in Set(paths) { total += (try? FileOps.size(p)) ?? 0 }
        return total
    }

    /// Checks option ranges before any file is touched.
    static func validate(_ o: PrepareOptions) throws {
        guard (1...256).contains(o.shards) else { throw HeedError(.config, "--shards must be in 1...256 (got \(o.shards))") }
        guard (1...10_000).contains(o.maxLength) else { throw HeedError(.config, "--max-len must be in 1...10000 (got \(o.maxLength))") }
        guard (1...1000).contains(o.priceLevels) else { throw HeedError(.config, "--price-levels must be in 1...1000 (got \(o.priceLevels))") }
        guard o.maxAttributes >= 1, o.maxTextTokens >= 1, o.maxNeighbors >= 1, o.maxRelations >= 1 else {
            throw HeedError(.config, "caps on attributes, text tokens, neighbours and relations must be at least 1")
        }
        if let t = o.targetEvents, t.isEmpty { throw HeedError(.config, "--target-events names no event type") }
        if let r = o.positiveRating, !r.isFinite { throw HeedError(.config, "--positive-rating must be a finite number (got \(r))") }
        if let b = o.memoryBudget, b < 1 { throw HeedError(.config, "--memory-budget must be positive (got \(b) bytes)") }
        if let p = o.part {
            guard (1...4096).contains(p.count), (0..<p.count).contains(p.index) else {
                throw HeedError(.config, "--part \(p.index)/\(p.count): expected k/N with N in 1...4096 and k in 0..<N")
            }
            guard o.memoryBudget != nil else { throw HeedError(.config, "--part needs the external sort (a --memory-budget, not 'unbounded')") }
        }
        guard (1...256).contains(o.threads) else { throw HeedError(.config, "--threads must be in 1...256 (got \(o.threads))") }
        guard o.shardFormat == 1 || o.shardFormat == 2 else { throw HeedError(.config, "--shard-format must be 1 or 2 (got \(o.shardFormat))") }
    }

    /// Runs the dataset's loader; its events go to `spill` when given (`--memory-budget`).
    package static func load(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        switch o.dataset {
        case .amazonBeauty, .amazonSports, .amazonToys: return try AmazonLoaders.loadS3Rec(o, log: &log, spill: spill)
        case .amazonVideoGames: return try AmazonLoaders.loadSASRec(o, log: &log, spill: spill)
        case .amazonGrocery: return try AmazonLoaders.loadReChorus(o, log: &log, spill: spill)
        case .taobao: return try TaobaoLoader.load(o, log: &log, spill: spill)
        case .ciao: return try CiaoLoader.load(o, log: &log, spill: spill)
        case .uciRetail: return try RetailLoaders.loadOnlineRetail(o, log: &log, spill: spill)
        case .completeJourney: return try RetailLoaders.loadCompleteJourney(o, log: &log, spill: spill)
        case .generic: return try GenericLoader.load(o, log: &log, spill: spill)
        }
    }

    /// Sizes (pass 1) then writes (pass 2) every shard, the catalog and the manifest into `directory`.
    static func write(builder: SampleBuilder, raw: RawDataset, log: BadRowLog, options o: PrepareOptions,
                      directory: String, meter: PrepareProgress, progress: (String) -> Void) throws -> DatasetManifest {
        let schema = builder.schema
        let n = o.shards
        let splits = Split.allCases
        var counts = [[Int]](repeating: [Int](repeating: 0, count: n), count: splits.count)
        var keys = [[[Int]]](repeating: [[Int]](repeating: [Int](repeating: 0, count: schema.slots.count), count: n), count: splits.count)
        func splitIndex(_ s: Split) -> Int { splits.firstIndex(of: s)! }
        // A user's records come together, so counting changes of user counts each evaluated user once.
        var evaluated = 0
        var lastEvaluated: UInt64? = nil
        let compact = o.shardFormat == 2
        meter.enter(.count)
        if compact {
            try builder.generateReferences(threads: o.threads) { g in
                if g.split != .train && g.userID != lastEvaluated { evaluated += 1; lastEvaluated = g.userID }
                counts[splitIndex(g.split)][g.shard] += 1
            }
        } else {
            try builder.generate(filling: true) { rec, _, split, shard in
                let si = splitIndex(split)
                if split != .train && rec.userID != lastEvaluated { evaluated += 1; lastEvaluated = rec.userID }
                counts[si][shard] += 1
                for s in rec.keys.indices { keys[si][shard][s] += rec.keys[s].count }
            }
        }
        func fileName(_ split: Split, _ shard: Int) -> String {
            "\(split.rawValue)-\(String(format: "%05d", shard))-of-\(String(format: "%05d", n)).heeds"
        }
        meter.recordsTotal(counts.joined().reduce(0, +))
        meter.enter(.write)
        // The catalog streams through twice (key counts, then records): no record array of every item.
        var catalogCount = 0
        var catalogKeys = [Int](repeating: 0, count: builder.catalogSchema.slots.count)
        try builder.generateCatalog { rec in
            catalogCount += 1
            for s in catalogKeys.indices { catalogKeys[s] += rec.keys[s].count }
        }
        let catalogWriter = try SampleShardWriter(path: directory + "/" + CompactRecords.catalogFileName, schema: builder.catalogSchema,
                                                  recordCount: catalogCount, keysPerSlot: catalogKeys, flushBytes: 1 << 16)
        try builder.generateCatalog { try catalogWriter.append($0) }
        let (cBytes, cCRC) = try catalogWriter.finish()
        let catalogEntry = ShardEntry(file: CompactRecords.catalogFileName, records: catalogCount, bytes: cBytes, crc32: cCRC)
        let sequences = compact ? try builder.writeSequences(path: directory + "/" + SequenceFile.fileName) : nil
        if let sequences { progress("wrote \(sequences.records) events of \(builder.userCount) users once (\(sequences.bytes) bytes)") }

        // Compact shards store each record's reference; stored-key shards its filled keys.
        let links = sequences.map { ShardLinks(sequencesCRC: $0.crc32, catalogCRC: cCRC, events: UInt64($0.records), items: UInt64(catalogEntry.records)) }
        // Every section of every open shard buffers its writes: keep the total near 64 MiB.
        let sections = splits.count * n * (compact ? 2 : 5 + 2 * schema.slots.count)
        let flushBytes = max(4096, min(1 << 16, (64 << 20) / sections))
        var writers: [[any RecordShardWriter]] = []
        for (si, split) in splits.enumerated() {
            writers.append(try (0..<n).map { shard -> any RecordShardWriter in
                let path = directory + "/" + fileName(split, shard)
                if let links {
                    return try CompactShardWriter(path: path, schema: schema, recordCount: counts[si][shard], links: links, flushBytes: flushBytes)
                }
                return try SampleShardWriter(path: path, schema: schema, recordCount: counts[si][shard], keysPerSlot: keys[si][shard], flushBytes: flushBytes)
            })
        }
        var written = 0
        if compact {
            let compactWriters = writers.map { $0.map { $0 as! CompactShardWriter } }
            try builder.generateReferences(threads: o.threads) { g in
                try compactWriters[splitIndex(g.split)][g.shard].append(g.ref)
                written += 1
                if written & 0xFFFF == 0 { meter.wrote(records: 0x10000) }
            }
        } else {
            try builder.generate(filling: true) { rec, ref, split, shard in
                try writers[splitIndex(split)][shard].append(rec, ref)
                written += 1
                if written & 0xFFFF == 0 { meter.wrote(records: 0x10000) }
            }
        }
        meter.wrote(records: written & 0xFFFF)
        var entries: [[ShardEntry]] = []
        for (si, split) in splits.enumerated() {
            entries.append(try (0..<n).map { shard in
                let (bytes, crc) = try writers[si][shard].finish()
                return ShardEntry(file: fileName(split, shard), records: counts[si][shard], bytes: bytes, crc32: crc)
            })
        }

        var stats = PrepareStats()
        stats.rowsRead = raw.rowsRead
        stats.eventsKept = raw.eventCount
        stats.users = builder.userCount
        stats.items = builder.pool.count
        stats.filtered = raw.filtered
        stats.badRows = log.countsByName
        for (si, split) in splits.enumerated() { stats.records[split.rawValue] = counts[si].reduce(0, +) }
        stats.evaluatedUsers = evaluated

        let settings = Self.settings(o, validFrom: builder.validFrom, testFrom: builder.testFrom)
        let manifest = DatasetManifest(
            formatVersion: compact ? DatasetManifest.currentVersion : 1, dataset: o.dataset.rawValue, settings: settings,
            schema: schema, catalogSchema: builder.catalogSchema,
            train: entries[0], valid: entries[1], test: entries[2],
            catalog: catalogEntry, sequences: sequences,
            sources: raw.sources, stats: stats)
        let file = try PosixFile(creating: directory + "/" + DatasetManifest.fileName)
        try file.write(Array(try manifest.encoded()) + [0x0A], at: 0)
        try file.syncAndClose()
        progress("records: train \(stats.records["train"] ?? 0), valid \(stats.records["valid"] ?? 0), test \(stats.records["test"] ?? 0); items \(catalogEntry.records)")
        return manifest
    }

    /// A human-readable description of a shard file, or of a dataset directory / manifest.
    public static func describe(path: String) throws -> String {
        if FileOps.isDirectory(path) || path.hasSuffix(DatasetManifest.fileName) {
            let dir = FileOps.isDirectory(path) ? path : FileOps.dirname(of: path)
            return try describeManifest(DatasetManifest.load(directory: dir), directory: dir)
        }
        return try describe(shard: SampleShard(path: path))
    }

    /// Header, counts, labels, dense names and per-slot key statistics of one shard.
    public static func describe(shard: SampleShard) -> String {
        var lines: [String] = []
        lines.append("heed sample shard \(shard.path)")
        lines.append("  format version \(shard.version), \(shard.count) records, \(shard.fileBytes) bytes, payload crc32 \(hex(shard.payloadCRC)) (verified)")
        let labelMeans = shard.withLabels { all -> [Double] in
            let nl = shard.schema.labels.count
            var sums = [Double](repeating: 0, count: nl)
            for r in 0..<shard.count { for l in 0..<nl { sums[l] += Double(all[r * nl + l]) } }
            return sums.map { shard.count > 0 ? $0 / Double(shard.count) : 0 }
        }
        let labelText = zip(shard.schema.labels, labelMeans).map { "\($0.0) (mean \(String(format: "%.4f", $0.1)))" }
        lines.append("  labels: " + (labelText.isEmpty ? "none" : labelText.joined(separator: ", ")))
        lines.append("  dense: " + (shard.schema.dense.isEmpty ? "none" : shard.schema.dense.joined(separator: ", ")))
        lines.append("  feature slots:")
        lines.append("    #   name              key group         kind      max  keys        mean/record")
        for (s, slot) in shard.schema.slots.enumerated() {
            var total = 0
            for r in 0..<shard.count { total += shard.keyCount(slot: s, record: r) }
            let g = slot.featureGroup.map { "\($0.name)(\(slot.group))" } ?? "unknown(\(slot.group))"
            let mean = shard.count > 0 ? Double(total) / Double(shard.count) : 0
            let aligned = slot.alignedWith.map { "  aligned with \($0)" } ?? ""
            lines.append("    " + [pad(String(s), 3), pad(slot.name, 17), pad(g, 17), pad(slot.kind.rawValue, 9), pad(String(slot.maxLength), 4),
                                   pad(String(total), 11), String(format: "%.2f", mean)].joined(separator: " ") + aligned)
        }
        if shard.count > 0 {
            lines.append("  record 0: user \(shard.userID(0)), item \(shard.itemID(0)), time \(shard.timestamp(0)), labels \(shard.labels(0)), dense \(shard.dense(0).map { String(format: "%.3f", $0) })")
        }
        return lines.joined(separator: "\n")
    }

    /// A summary of a dataset directory's manifest.
    static func describeManifest(_ m: DatasetManifest, directory: String) -> String {
        var lines = ["heed dataset \(directory) (\(m.dataset), protocol \(m.settings.sampleProtocol), split \(m.settings.split), \(m.settings.shards) shard(s) per split, max history \(m.settings.maxLength))"]
        for s in Split.allCases {
            lines.append("  \(s.rawValue): \(m.recordCount(s)) records in \(m.shards(s).count) shard(s)")
        }
        if let part = m.settings.part { lines.append("  part \(part) of a parted prepare: this part's users only (join the parts with heed prepare --merge)") }
        lines.append("  catalog: \(m.catalog.records) items (\(m.catalog.file))")
        if let q = m.sequences {
            lines.append("  sequences: \(q.records) events stored once (\(q.file), \(q.bytes) bytes); shard format 2, 8 bytes per record")
        } else {
            lines.append("  shard format 1 (every record stores its keys)")
        }
        lines.append("  events: \(m.stats.rowsRead) rows read, \(m.stats.eventsKept) kept, \(m.stats.users) users, \(m.stats.items) items")
        if !m.stats.filtered.isEmpty { lines.append("  filtered: " + m.stats.filtered.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        if !m.stats.badRows.isEmpty { lines.append("  bad rows skipped: " + m.stats.badRows.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        lines.append("  slots: " + m.schema.slots.map { "\($0.name)[\($0.kind == .single ? "1" : "≤\($0.maxLength)")]" }.joined(separator: " "))
        lines.append("  labels: \(m.schema.labels.joined(separator: ", ")); dense: \(m.schema.dense.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }

    private static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
}
