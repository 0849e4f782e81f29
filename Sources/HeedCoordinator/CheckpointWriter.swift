import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// Writes one checkpoint once every worker has paused: each server writes its file into
/// `step-<N>/`, then the manifest goes in last (the checkpoint exists from that moment),
/// then retention deletes what is no longer kept.
enum CheckpointWriter {
    /// Generous: a server writes its whole shard before it answers.
    static let serverTimeout = Duration.seconds(900)

    /// - Parameters:
    ///   - positions: every worker's position, in rank order.
    ///   - servers: clients in server-rank order.
    ///   - runConfig: the run config as every role got it (JSON).
    /// - Returns: the global step and the checkpoint's path.
    static func write(generation: Int, positions: [WorkerPosition], servers: [any RequestClient],
                      config: CheckpointConfig, plan: ShardingPlan, runConfig: [UInt8]) async throws -> (step: Int, path: String) {
        let step = positions.reduce(0) { $0 + $1.clock }
        let store = CheckpointStore(directory: config.directory)
        let path = store.path(step: step)
        if (try? SavedModel.load(directory: path)) != nil {
            // No worker has stepped since that checkpoint: it already holds this state.
            return (step, path)
        }
        let run: RunConfig
        do { run = try JSONDecoder().decode(RunConfig.self, from: Data(runConfig)) } catch {
            throw HeedError(.internalError, "the coordinator's run config does not decode: \(error)")
        }
        // A directory without a valid manifest is a save that died (a killed server): start it afresh.
        FileOps.removeTree(path)
        try SavedModel.prepareDirectory(path)
        do {
            return try await writeFiles(step: step, path: path, positions: positions, servers: servers, config: config, plan: plan, run: run)
        } catch {
            // A checkpoint that did not complete leaves nothing behind: its directory has no
            // manifest and would only be skipped (and cleaned up by the next save at this step).
            FileOps.removeTree(path)
            throw error
        }
    }

    /// Asks every server for its file, then writes the manifest and prunes.
    private static func writeFiles(step: Int, path: String, positions: [WorkerPosition], servers: [any RequestClient],
                                   config: CheckpointConfig, plan: ShardingPlan, run: RunConfig) async throws -> (step: Int, path: String) {
        let store = CheckpointStore(directory: config.directory)
        var files = [ParameterFile.Written?](repeating: nil, count: servers.count)
        try await withThrowingTaskGroup(of: (Int, ParameterFile.Written).self) { group in
            for (rank, client) in servers.enumerated() {
                group.addTask {
                    let reply: Control
                    do {
                        reply = try await client.control(Control(name: "checkpoint-save", body: Array("\(step)".utf8)), timeout: serverTimeout)
                    } catch let e as HeedError {
                        throw HeedError(e.code, "server \(rank) (\(client.peerAddress)) did not write its checkpoint file: \(e.message)")
                    }
                    guard reply.name == "saved", let written = try? JSONDecoder().decode(ParameterFile.Written.self, from: Data(reply.body)) else {
                        throw HeedError(.protocolViolation, "server \(rank) answered checkpoint-save with '\(reply.name)'")
                    }
                    guard written.name == ParameterFile.fileName(rank: rank) else {
                        throw HeedError(.protocolViolation, "server \(rank) wrote \(written.name); expected \(ParameterFile.fileName(rank: rank))")
                    }
                    return (rank, written)
                }
            }
            for try await (rank, written) in group { files[rank] = written }
        }
        let model = SavedModel(step: step, config: run, servers: servers.count, slots: plan.slotCount, files: files.map { $0! },
                               statistics: positions.first?.statistics ?? [], kind: .checkpoint, workers: positions)
        try model.write(to: path)
        store.prune(keep: config.keep)
        return (step, path)
    }
}
