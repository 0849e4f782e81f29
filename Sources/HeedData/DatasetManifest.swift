import Foundation
import HeedCore

/// A data split of a prepared dataset.
public enum Split: String, Codable, CaseIterable, Sendable {
    /// Training records.
    case train
    /// Validation records (model selection, early stopping).
    case valid
    /// Test records (reported metrics).
    case test
}

/// One shard file listed in a manifest.
public struct ShardEntry: Codable, Equatable, Sendable {
    /// File name relative to the dataset directory.
    public var file: String
    /// Records in the shard.
    public var records: Int
    /// File size in bytes.
    public var bytes: Int
    /// Payload CRC-32 (as in the shard header).
    public var crc32: UInt32
}

/// An input file a dataset was prepared from.
public struct SourceFile: Codable, Equatable, Sendable {
    /// What the file was read as (`events`, `items`, `social`, `users`).
    public var role: String
    /// Path as given on the command line.
    public var path: String
    /// Size in bytes on disk.
    public var bytes: Int
}

/// Counts of what `heed prepare` read, dropped and wrote.
public struct PrepareStats: Codable, Equatable, Sendable {
    /// Data rows read from the event file(s) (interactions for one-user-per-line files).
    public var rowsRead = 0
    /// Events kept after filtering.
    public var eventsKept = 0
    /// Distinct users among kept events.
    public var users = 0
    /// Distinct items among kept events (the candidate pool).
    public var items = 0
    /// Events dropped per documented filter rule.
    public var filtered: [String: Int] = [:]
    /// Bad rows skipped per class (only with `--skip-bad-rows`).
    public var badRows: [String: Int] = [:]
    /// Records written per split.
    public var records: [String: Int] = [:]
    /// Users that contributed at least one valid/test record.
    public var evaluatedUsers = 0

    /// Empty counts.
    public init() {}
}

/// The options a dataset was prepared with, as recorded in its manifest.
public struct PreparedSettings: Codable, Equatable, Sendable {
    /// `ctr` or `seq`.
    public var sampleProtocol: String
    /// `loo` (leave-one-out) or `time`.
    public var split: String
    /// Time split boundaries (Unix seconds), when `split == "time"`.
    public var validFrom: Int64?
    /// Start of the test period for a time split.
    public var testFrom: Int64?
    /// Shards per split.
    public var shards: Int
    /// History cap.
    public var maxLength: Int
    /// Seed for negatives and shard assignment.
    public var seed: UInt64
    /// Price-level buckets per category.
    public var priceLevels: Int
    /// Cap on attribute tokens per item.
    public var maxAttributes: Int
    /// Cap on title words per item.
    public var maxTextTokens: Int
    /// Cap on social neighbours per user.
    public var maxNeighbors: Int
    /// Cap on complement / substitute items per item.
    public var maxRelations: Int
    /// Event types that become targets (nil = all).
    public var targetEvents: [String]?
    /// Whether bad rows were skipped.
    public var skipBadRows: Bool
    /// The rating threshold of a positive (`--positive-rating`), if one was set.
    public var positiveRating: Double? = nil
    /// `"k/N"` for one part of a parted prepare (`--part k/N`); nil for a whole dataset,
    /// including one merged from its parts (`heed prepare --merge`).
    public var part: String? = nil
}

/// `manifest.json` of a prepared dataset: schema, shards per split, sources, counts.
public struct DatasetManifest: Codable, Equatable, Sendable {
    /// Name of the manifest file inside a dataset directory.
    public static let fileName = "manifest.json"
    /// Manifest format version this build writes: 2 = compact shards with a sequence file.
    public static let currentVersion = 2
    /// Manifest versions this build reads (1: every key stored per record).
    public static let readableVersions = 1...2

    /// Manifest format version.
    public var formatVersion: Int
    /// Dataset name (`PrepareOptions.Dataset.rawValue`).
    public var dataset: String
    /// Options used.
    public var settings: PreparedSettings
    /// Schema of train/valid/test records.
    public var schema: SampleSchema
    /// Schema of the item catalog shard.
    public var catalogSchema: SampleSchema
    /// Train shards.
    public var train: [ShardEntry]
    /// Validation shards.
    public var valid: [ShardEntry]
    /// Test shards.
    public var test: [ShardEntry]
    /// The item catalog shard: one record per item of the candidate pool.
    public var catalog: ShardEntry
    /// Version 2: the sequence file every compact shard refers to (nil for version 1).
    public var sequences: ShardEntry? = nil
    /// Input files.
    public var sources: [SourceFile]
    /// Counts.
    public var stats: PrepareStats

    /// The shards of `split`.
    public func shards(_ split: Split) -> [ShardEntry] {
        switch split {
        case .train: train
        case .valid: valid
        case .test: test
        }
    }

    /// Total records of `split`.
    public func recordCount(_ split: Split) -> Int { shards(split).reduce(0) { $0 + $1.records } }

    /// Reads `directory/manifest.json`.
    public static func load(directory: String) throws -> DatasetManifest {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HeedError(.notFound, "\(path): no dataset manifest (run heed prepare first)")
        }
        let m: DatasetManifest
        do { m = try JSONDecoder().decode(DatasetManifest.self, from: data) } catch {
            throw HeedError(.corrupt, "\(path): manifest does not decode", cause: error)
        }
        guard readableVersions.contains(m.formatVersion) else {
            throw HeedError(.unsupported, "\(path): manifest format version \(m.formatVersion) is not supported (this build reads versions \(readableVersions.lowerBound)-\(readableVersions.upperBound); prepare the dataset again with this build's heed prepare)")
        }
        return m
    }

    /// Opens the shards of `split` in `directory`, checking each against its manifest entry.
    public func open(_ split: Split, directory: String, verifyChecksum: Bool = true) throws -> [SampleShard] {
        try shards(split).map { try open($0, directory: directory, schema: schema, verifyChecksum: verifyChecksum) }
    }

    /// Opens the item catalog shard.
    public func openCatalog(directory: String, verifyChecksum: Bool = true) throws -> SampleShard {
        try open(catalog, directory: directory, schema: catalogSchema, verifyChecksum: verifyChecksum)
    }

    private func open(_ e: ShardEntry, directory: String, schema: SampleSchema, verifyChecksum: Bool) throws -> SampleShard {
        let shard = try SampleShard(path: directory + "/" + e.file, verifyChecksum: verifyChecksum)
        guard shard.count == e.records, shard.payloadCRC == e.crc32, shard.schema == schema else {
            throw HeedError(.corrupt, "\(shard.path): does not match its manifest entry (\(shard.count) records, crc \(hex(shard.payloadCRC)); manifest says \(e.records), \(hex(e.crc32)))")
        }
        return shard
    }

    /// The manifest as pretty, key-sorted JSON (stable bytes for equal manifests).
    public func encoded() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(self)
    }
}
