import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// `heed checkpoint`: list, verify and take checkpoints.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "List, verify, export and take checkpoints.",
        subcommands: [CheckpointListCommand.self, CheckpointVerifyCommand.self, CheckpointNowCommand.self,
                      CheckpointExportCommand.self, CheckpointRowsCommand.self])
}

/// `heed checkpoint list DIR`: every checkpoint of a run, newest first.
struct CheckpointListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List a run's checkpoints (step, time, size, state), newest first.")

    @Argument(help: "The run's checkpoint directory ([checkpoint] dir).") var directory: String

    func run() throws {
        guard FileOps.isDirectory(directory) else { throw HeedError(.notFound, "\(directory) is not a directory") }
        let entries = CheckpointStore(directory: directory).entries()
        if entries.isEmpty { print("\(directory): no checkpoints") }
        let formatter = ISO8601DateFormatter()
        for e in entries {
            switch e.manifest {
            case .success(let m):
                let bytes = m.files.reduce(0) { $0 + $1.bytes }
                let rows = m.files.reduce(0) { $0 + $1.rows }
                print(String(format: "%@  step %d  %@  %.1f MiB  %d rows  %d servers  %d workers",
                             FileOps.basename(of: e.path), m.step, formatter.string(from: Date(timeIntervalSince1970: m.createdAt)),
                             Double(bytes) / 1_048_576, rows, m.servers, m.workers.count))
            case .failure(let error):
                print("\(FileOps.basename(of: e.path))  incomplete or damaged: \(error.message)")
            }
        }
    }
}

/// `heed checkpoint verify DIR`: checks every checksum of one checkpoint, or of every
/// checkpoint in a run's directory; exits 1 if any is damaged.
struct CheckpointVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Verify every file checksum of a checkpoint (or of every checkpoint in a directory).")

    @Argument(help: "A checkpoint directory (holds manifest.json), or a run's checkpoint directory.") var directory: String

    func run() throws {
        let paths: [String]
        if FileOps.exists(directory + "/" + SavedModel.manifestName) {
            paths = [directory]
        } else {
            paths = CheckpointStore(directory: directory).entries().map(\.path)
            guard !paths.isEmpty else { throw HeedError(.notFound, "\(directory) holds no checkpoint") }
        }
        var bad = 0
        for path in paths {
            do {
                let m = try SavedModel.load(directory: path)
                try m.verifyFiles(directory: path)
                print("\(path): ok (\(m.kind.rawValue), step \(m.step), \(m.files.count) files)")
            } catch {
                bad += 1
                print("\(path): BAD: \(error)")
            }
        }
        if bad > 0 {
            printError("checkpoint verify: \(bad) of \(paths.count) damaged")
            throw ExitCode(1)
        }
    }
}

/// `heed checkpoint now --coordinator ADDR`: asks a running cluster for a checkpoint and
/// waits until it is written.
struct CheckpointNowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "now", abstract: "Ask a running cluster's coordinator for a checkpoint and wait for it.")

    @Option(help: "Coordinator address (printed by the coordinator at start).") var coordinator: String
    @Option(help: "Cluster secret file.") var secretFile: String?
    @Option(help: "Seconds to wait for the checkpoint.") var timeout: Int = 900

    func run() throws {
        let secret = try readSecret(secretFile)
        let path = LockedBox<String?>(nil)
        let coordinator = coordinator, timeout = timeout
        try runRole("checkpoint now") {
            let client = try NNGTransport().connect(to: coordinator, options: ClientOptions(secret: secret))
            defer { client.close() }
            let reply = try await client.control(Control(name: "checkpoint-now", body: Array("heed checkpoint now (pid \(getpid()))".utf8)),
                                                 timeout: .seconds(timeout))
            guard reply.name == "checkpoint-done" else {
                throw HeedError(.peerFailed, "the coordinator answered '\(reply.name)': \(String(decoding: reply.body, as: UTF8.self))")
            }
            path.set(String(decoding: reply.body, as: UTF8.self))
        }
        print(path.get() ?? "")
    }
}

/// `heed checkpoint export DIR --out FILE.safetensors`: a checkpoint or saved model as one
/// safetensors file (tensor names in docs/checkpoints.md, Export).
struct CheckpointExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a checkpoint or saved model to a safetensors file (verified first; written atomically).",
        discussion: """
            Tensors: dense.weight (F32 [denseTotal]); per table table.<id>.keys (U64 [rows], ascending) and \
            table.<id>.weight (F32 [rows, dim]); with --with-optimizer-state also dense.adam_m, dense.adam_v, \
            table.<id>.adam_m, table.<id>.adam_v (F32) and table.<id>.steps (U32 [rows]). See docs/checkpoints.md, Export.
            """)

    @Argument(help: "A checkpoint or saved model directory (holds manifest.json).") var directory: String
    @Option(help: "The safetensors file to write.") var out: String
    @Flag(help: "Also export the optimizer state (Adam moments, per-row update counts).") var withOptimizerState = false

    func run() throws {
        let summary = try SafetensorsExport(directory: directory, withOptimizerState: withOptimizerState).write(to: out)
        print("\(summary.path): \(summary.bytes) bytes, \(summary.tensors.count) tensors "
              + "(\(summary.metadata["kind"] ?? "?") of \(summary.metadata["model"] ?? "?") at step \(summary.metadata["step"] ?? "?"))")
        for t in summary.tensors {
            print("  \(t.name)  \(t.dtype)  [\(t.shape.map(String.init).joined(separator: ", "))]")
        }
    }
}

/// `heed checkpoint rows DIR --table ID --keys K1,K2`: saved rows as JSON lines, one per
/// key, for checking an export against the checkpoint it came from (scripts/check-export.py).
struct CheckpointRowsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rows", abstract: "Print saved embedding rows (w, optimizer state, step) as JSON lines.",
        discussion: """
            One line per key, in the order given: {"table":ID,"key":K,"step":S,"w":[...],"state":[...]} \
            ("state" is the optimizer state after w: Adam's m then v), or {"table":ID,"key":K,"missing":true}. \
            Floats are printed with the shortest decimal that reads back to the same float32.
            """)

    @Argument(help: "A checkpoint or saved model directory (holds manifest.json).") var directory: String
    @Option(help: "Table id (feature group).") var table: UInt8
    @Option(help: "Comma-separated feature keys (decimal).") var keys: String

    func run() throws {
        let wanted = try keys.split(separator: ",").map { text -> UInt64 in
            guard let k = UInt64(text.trimmingCharacters(in: .whitespaces)) else {
                throw HeedError(.invalidInput, "--keys: '\(text)' is not a decimal 64-bit key")
            }
            return k
        }
        let model = try SavedModel.load(directory: directory)
        try model.verifyFiles(directory: directory)
        guard let dim = model.config.layout.tableDims[table] else {
            throw HeedError(.invalidInput, "\(directory): the model has no table \(table) (tables: \(model.config.layout.tableDims.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        let rows = try model.rows(directory: directory, table: table, keys: Set(wanted))
        for k in wanted {
            guard let r = rows[k] else {
                print("{\"table\":\(table),\"key\":\(k),\"missing\":true}")
                continue
            }
            print("{\"table\":\(table),\"key\":\(k),\"step\":\(r.step),\"w\":\(Self.floats(r.values[..<dim])),\"state\":\(Self.floats(r.values[dim...]))}")
        }
    }

    /// A JSON array of floats (non-finite values as Python's json reads them).
    static func floats(_ values: ArraySlice<Float>) -> String {
        "[" + values.map { v -> String in
            if v.isNaN { return "NaN" }
            if v.isInfinite { return v < 0 ? "-Infinity" : "Infinity" }
            return "\(v)"
        }.joined(separator: ",") + "]"
    }
}
