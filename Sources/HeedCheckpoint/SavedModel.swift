import Foundation
import HeedCore

/// A trained model or a checkpoint on disk (one format for both): a directory with one
/// `ParameterFile` per server (`shard-<rank>.bin`) and `manifest.json`, written last, that
/// lists every file with its size and CRC-32 together with the run config that produced
/// it and, for a checkpoint, every worker's data position.
///
/// A directory without a manifest, or whose files do not match it, is not a model:
/// `load` says which file is missing or damaged. The files can be loaded onto any number
/// of servers (rows carry their keys; the dense vector is cut again by range).
public struct SavedModel: Codable, Equatable, Sendable {
    /// Always "heed-model".
    public var format = SavedModel.formatName
    /// Manifest layout version.
    public var version = SavedModel.currentVersion
    /// `model` (saved at the end of a run) or `checkpoint` (taken by the coordinator).
    public var kind = Kind.model
    /// Training steps when saved: worker 0's for a model, all workers' together for a checkpoint.
    public var step: Int
    /// Seconds since 1970 when the manifest was written.
    public var createdAt: Double = 0
    /// Every worker's position in its data when the checkpoint was taken, in rank order
    /// (empty for a final model: nothing resumes from it).
    public var workers: [WorkerPosition] = []
    /// The run config (with its derived layout) of the run that trained the model.
    public var config: RunConfig
    /// Servers and virtual slots of the run.
    public var servers: Int
    public var slots: Int
    /// One entry per server, in rank order.
    public var files: [ParameterFile.Written]
    /// The saving worker's non-learned model state (e.g. Dice's moving averages, which
    /// inference uses), in the model's fixed order; empty when the model has none.
    public var statistics: [Float]
    /// CRC-32 of `statistics`' little-endian bytes (the manifest is text; this catches edits).
    public var statisticsCRC32: UInt32

    public static let formatName = "heed-model"
    /// Version 2 added `kind`, `createdAt` and `workers`; version 1 manifests still load.
    public static let currentVersion = 2
    public static let readableVersions: ClosedRange<Int> = 1...2

    /// What a directory holds.
    public enum Kind: String, Codable, Sendable { case model, checkpoint }

    private enum CodingKeys: String, CodingKey {
        case format, version, kind, step, createdAt, workers, config, servers, slots, files, statistics, statisticsCRC32
    }

    /// Decodes a manifest; keys a version 1 manifest lacks take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        version = try c.decode(Int.self, forKey: .version)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .model
        step = try c.decode(Int.self, forKey: .step)
        createdAt = try c.decodeIfPresent(Double.self, forKey: .createdAt) ?? 0
        workers = try c.decodeIfPresent([WorkerPosition].self, forKey: .workers) ?? []
        config = try c.decode(RunConfig.self, forKey: .config)
        servers = try c.decode(Int.self, forKey: .servers)
        slots = try c.decode(Int.self, forKey: .slots)
        files = try c.decode([ParameterFile.Written].self, forKey: .files)
        statistics = try c.decode([Float].self, forKey: .statistics)
        statisticsCRC32 = try c.decode(UInt32.self, forKey: .statisticsCRC32)
    }
    /// The manifest's file name.
    public static let manifestName = "manifest.json"

    public init(step: Int, config: RunConfig, servers: Int, slots: Int, files: [ParameterFile.Written], statistics: [Float] = [],
                kind: Kind = .model, workers: [WorkerPosition] = [], createdAt: Double = Date().timeIntervalSince1970) {
        self.kind = kind
        self.workers = workers
        self.createdAt = createdAt
        self.statistics = statistics
        self.statisticsCRC32 = Self.checksum(statistics)
        self.step = step
        self.config = config
        self.servers = servers
        self.slots = slots
        self.files = files
    }

    /// Removes an existing manifest first, so that while new parameter files replace old
    /// ones the directory never holds a manifest that vouches for them.
    public static func prepareDirectory(_ directory: String) throws {
        try FileOps.makeDirectories(directory)
        let manifest = directory + "/" + manifestName
        if FileOps.exists(manifest), unlink(manifest) != 0 {
            throw HeedError(.io, "\(manifest): cannot remove the old manifest (\(String(cString: strerror(errno))))")
        }
    }

    /// Writes the manifest atomically (temporary name, fsync, rename, directory fsync).
    public func write(to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileOps.writeAtomically(Array(try encoder.encode(self)) + [10], to: directory + "/" + Self.manifestName)
    }

    /// Reads the manifest of `directory` and checks that every file it lists is there
    /// with the recorded size (checksums are verified when the files are read).
    public static func load(directory: String) throws -> SavedModel {
        let path = directory + "/" + manifestName
        guard FileOps.exists(path) else {
            throw HeedError(.notFound, "\(directory) holds no saved model (no \(manifestName); an interrupted save leaves none)")
        }
        let model: SavedModel
        do {
            model = try JSONDecoder().decode(SavedModel.self, from: Data(try ParameterFile.readAll(path)))
        } catch let error as HeedError {
            throw error
        } catch {
            throw HeedError(.corrupt, "\(path): not a Heed model manifest", cause: error)
        }
        guard model.format == formatName, readableVersions.contains(model.version) else {
            throw HeedError(.unsupported, "\(path): \(model.format) version \(model.version); this build reads \(formatName) versions \(readableVersions.lowerBound)-\(readableVersions.upperBound)")
        }
        guard model.statisticsCRC32 == checksum(model.statistics) else {
            throw HeedError(.corrupt, "\(path): the model statistics do not match their checksum")
        }
        guard model.files.count == model.servers else {
            throw HeedError(.corrupt, "\(path): lists \(model.files.count) files for \(model.servers) servers")
        }
        for f in model.files {
            let size = try FileOps.size(directory + "/" + f.name)
            guard size == f.bytes else {
                throw HeedError(.corrupt, "\(directory)/\(f.name): \(size) bytes, the manifest says \(f.bytes)")
            }
        }
        return model
    }

    /// Checks every file's bytes against its own trailing checksum and the manifest's, without
    /// parsing rows (streams the file); throws `.corrupt` naming the first bad file.
    public func verifyFiles(directory: String) throws {
        for f in files {
            let path = directory + "/" + f.name
            let (stored, computed) = try ParameterFile.checksums(path: path)
            guard stored == computed else {
                throw HeedError(.corrupt, "\(path): checksum mismatch (stored \(ParameterFile.hex(stored)), computed \(ParameterFile.hex(computed))): the file is damaged")
            }
            guard stored == f.crc32 else {
                throw HeedError(.corrupt, "\(path): checksum \(ParameterFile.hex(stored)) does not match the manifest's \(ParameterFile.hex(f.crc32)) (a file from another save?)")
            }
        }
    }

    static func checksum(_ values: [Float]) -> UInt32 {
        var crc = CRC32()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { crc.update($0) } }
        return crc.value
    }

    /// Reads every parameter file, checking each against the manifest's checksum and the
    /// run's layout: tables, dims and the dense vector must cover the model exactly once.
    public func readFiles(directory: String) throws -> [ParameterFile.Contents] {
        var out: [ParameterFile.Contents] = []
        var denseCovered = 0
        for (rank, f) in files.enumerated() {
            let path = directory + "/" + f.name
            let contents = try ParameterFile.read(path: path)
            guard contents.crc32 == f.crc32 else {
                throw HeedError(.corrupt, "\(path): checksum \(ParameterFile.hex(contents.crc32)) does not match the manifest's \(ParameterFile.hex(f.crc32)) (a file from another save?)")
            }
            let h = contents.header
            guard h.rank == rank, h.serverCount == servers, h.denseTotal == config.layout.denseCount, h.denseStart == denseCovered else {
                throw HeedError(.corrupt, "\(path): header (rank \(h.rank) of \(h.serverCount), dense from \(h.denseStart) of \(h.denseTotal)) does not fit the manifest (rank \(rank) of \(servers), dense from \(denseCovered) of \(config.layout.denseCount))")
            }
            for t in contents.tables where config.layout.tableDims[t.id] != t.dim {
                throw HeedError(.corrupt, "\(path): table \(t.id) has dim \(t.dim); the run config says \(config.layout.tableDims[t.id].map(String.init) ?? "no such table")")
            }
            denseCovered += h.denseChunk
            out.append(contents)
        }
        guard denseCovered == config.layout.denseCount else {
            throw HeedError(.corrupt, "\(directory): the files hold \(denseCovered) dense values, the model has \(config.layout.denseCount)")
        }
        return out
    }
}

extension SavedModel {
    /// Every parameter file's layout (headers only, no rows or checksums read), checked
    /// against the manifest and the run's layout as `readFiles` checks the contents: rank
    /// order, server count, the dense vector covered exactly once, table dims as configured,
    /// and one width per table across files.
    public func layouts(directory: String) throws -> [ParameterFile.Layout] {
        var out: [ParameterFile.Layout] = []
        var denseCovered = 0
        var widths: [UInt8: Int] = [:]
        for (rank, f) in files.enumerated() {
            let path = directory + "/" + f.name
            let layout = try ParameterFile.layout(path: path)
            let h = layout.header
            guard h.rank == rank, h.serverCount == servers, h.denseTotal == config.layout.denseCount, h.denseStart == denseCovered else {
                throw HeedError(.corrupt, "\(path): header (rank \(h.rank) of \(h.serverCount), dense from \(h.denseStart) of \(h.denseTotal)) does not fit the manifest (rank \(rank) of \(servers), dense from \(denseCovered) of \(config.layout.denseCount))")
            }
            for t in layout.tables {
                guard config.layout.tableDims[t.id] == t.dim else {
                    throw HeedError(.corrupt, "\(path): table \(t.id) has dim \(t.dim); the run config says \(config.layout.tableDims[t.id].map(String.init) ?? "no such table")")
                }
                if let w = widths[t.id], w != t.width {
                    throw HeedError(.corrupt, "\(path): table \(t.id) has width \(t.width); an earlier file has \(w)")
                }
                widths[t.id] = t.width
            }
            denseCovered += h.denseChunk
            out.append(layout)
        }
        guard denseCovered == config.layout.denseCount else {
            throw HeedError(.corrupt, "\(directory): the files hold \(denseCovered) dense values, the model has \(config.layout.denseCount)")
        }
        return out
    }
}
