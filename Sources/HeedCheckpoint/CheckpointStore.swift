import Foundation
import HeedCore

/// The checkpoints of one run: `<directory>/step-<global step, 10 digits>/`, each a
/// `SavedModel` directory of kind `checkpoint`. A directory without a valid manifest is
/// not a checkpoint (an interrupted save leaves one); `prune` removes it once a newer
/// checkpoint is complete.
public struct CheckpointStore: Sendable {
    /// The directory holding the checkpoints.
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Prefix of every checkpoint directory's name.
    public static let prefix = "step-"

    /// The directory name of the checkpoint at `step` (zero-padded so names sort by step).
    public static func name(step: Int) -> String { prefix + String(format: "%010d", step) }

    /// The path of the checkpoint at `step`.
    public func path(step: Int) -> String { directory + "/" + Self.name(step: step) }

    /// One checkpoint directory as found on disk.
    public struct Entry: Sendable {
        /// Its path.
        public var path: String
        /// The step in its name.
        public var step: Int
        /// Its manifest, or why it has none that loads (missing, damaged, sizes wrong).
        public var manifest: Result<SavedModel, HeedError>
    }

    /// Every `step-*` directory, newest (highest step) first, with its manifest or the
    /// reason it has none. Checksums are not read (see `verify`).
    public func entries() -> [Entry] {
        FileOps.list(directory).compactMap { name -> Entry? in
            guard name.hasPrefix(Self.prefix), let step = Int(name.dropFirst(Self.prefix.count)) else { return nil }
            let path = directory + "/" + name
            guard FileOps.isDirectory(path) else { return nil }
            let manifest: Result<SavedModel, HeedError>
            do { manifest = .success(try SavedModel.load(directory: path)) } catch let e as HeedError {
                manifest = .failure(e)
            } catch {
                manifest = .failure(HeedError(.corrupt, "\(path): \(error)"))
            }
            return Entry(path: path, step: step, manifest: manifest)
        }.sorted { $0.step > $1.step }
    }

    /// Loads the checkpoint at `path` and checks every file's checksum (streamed).
    public static func verify(_ path: String) throws -> SavedModel {
        let model = try SavedModel.load(directory: path)
        guard model.kind == .checkpoint else {
            throw HeedError(.invalidInput, "\(path) is a saved model, not a checkpoint (it holds no data positions to resume from)")
        }
        try model.verifyFiles(directory: path)
        return model
    }

    /// The newest checkpoint whose manifest loads and whose every file matches its
    /// checksum. Each newer one that fails is reported through `skipped` (naming the file
    /// and why) and passed over; nil if none is valid.
    public func latestValid(skipped: (String) -> Void = { _ in }) -> (path: String, model: SavedModel)? {
        for entry in entries() {
            do {
                return (entry.path, try Self.verify(entry.path))
            } catch {
                skipped("skipping checkpoint \(entry.path): \(error)")
            }
        }
        return nil
    }

    /// Keeps the newest `keep` complete checkpoints and deletes older ones, and any
    /// incomplete directory older than the newest complete one (a save that died). Newer
    /// incomplete directories may be a save in progress and are left alone.
    /// - Returns: the paths deleted.
    @discardableResult
    public func prune(keep: Int) -> [String] {
        var kept = 0
        var newestComplete: Int?
        var deleted: [String] = []
        for entry in entries() {
            switch entry.manifest {
            case .success:
                if newestComplete == nil { newestComplete = entry.step }
                kept += 1
                if kept > keep { FileOps.removeTree(entry.path); deleted.append(entry.path) }
            case .failure:
                if let newest = newestComplete, entry.step < newest { FileOps.removeTree(entry.path); deleted.append(entry.path) }
            }
        }
        if !deleted.isEmpty { try? FileOps.syncDirectory(directory) }
        return deleted
    }

    /// Resolves what `--resume` names: `latest` (the newest valid checkpoint in
    /// `directory`) or a checkpoint directory, verified either way.
    public static func resolve(_ what: String, directory: String, skipped: (String) -> Void = { _ in }) throws -> (path: String, model: SavedModel) {
        if what == "latest" {
            guard !directory.isEmpty else {
                throw HeedError(.config, "--resume latest needs the run's checkpoint directory ([checkpoint] dir or --checkpoint-dir)")
            }
            guard let found = CheckpointStore(directory: directory).latestValid(skipped: skipped) else {
                throw HeedError(.notFound, "\(directory) holds no valid checkpoint to resume from")
            }
            return found
        }
        return (what, try verify(what))
    }

    /// The newest valid checkpoint in `directory`, or nil when there is none (or no
    /// directory): what `--resume auto` continues from.
    public static func resolveAuto(directory: String, skipped: (String) -> Void = { _ in }) -> (path: String, model: SavedModel)? {
        guard !directory.isEmpty else { return nil }
        return CheckpointStore(directory: directory).latestValid(skipped: skipped)
    }
}
