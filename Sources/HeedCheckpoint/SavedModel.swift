import Foundation
import HeedCore

/// A trained model on disk: a directory with one `ParameterFile` per server
/// (`shard-<rank>.bin`) and `manifest.json`, written last, that lists every file with
/// its size and CRC-32 together with the run config that produced it.
///
/// A directory without a manifest, or whose files do not match it, is not a model:
/// `load` says which file is missing or damaged. The files can be loaded onto any number
/// of servers (rows carry their keys; the dense vector is cut again by range).
public struct SavedModel: Codable, Equatable, Sendable {
    /// Always "heed-model".
    public var format = SavedModel.formatName
    /// Manifest layout version.
    public var version = SavedModel.currentVersion
    /// Training steps of worker 0 when the model was saved.
    public var step: Int
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
    public static let currentVersion = 1
    /// The manifest's file name.
    public static let manifestName = "manifest.json"

    public init(step: Int, config: RunConfig, servers: Int, slots: Int, files: [ParameterFile.Written], statistics: [Float] = []) {
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
        guard model.format == formatName, model.version == currentVersion else {
            throw HeedError(.unsupported, "\(path): \(model.format) version \(model.version); this build reads \(formatName) version \(currentVersion)")
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
