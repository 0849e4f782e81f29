import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// `heed checkpoint`: list, verify and take checkpoints.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "List, verify, export and take checkpoints.",
        subcommands: [CheckpointListCommand.self, CheckpointVerifyCommand.self, CheckpointNowCommand.self])
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
