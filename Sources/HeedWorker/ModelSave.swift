import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// Saving the trained model at the end of a run (worker 0 drives it).
public enum ModelSave {
    /// Generous: a server writes its whole shard before it answers (≈ 1 GB/s).
    static let serverTimeout = Duration.seconds(900)

    /// Asks every server to write its parameter file into `config.output.modelDirectory`,
    /// then writes the manifest last. Call only after every worker passed the
    /// end-of-training barrier, so no push changes the parameters while they are written.
    /// - Parameters:
    ///   - servers: clients in server-rank order.
    ///   - statistics: this worker's non-learned model state (`Trainer.modelStatistics`).
    public static func viaServers(_ servers: [any RequestClient], config: RunConfig, step: Int, statistics: [Float]) async throws -> SavedModel {
        let directory = config.output.modelDirectory
        try SavedModel.prepareDirectory(directory)
        var files = [ParameterFile.Written?](repeating: nil, count: servers.count)
        try await withThrowingTaskGroup(of: (Int, ParameterFile.Written).self) { group in
            for (rank, client) in servers.enumerated() {
                group.addTask {
                    let reply = try await client.control(Control(name: "save-model"), timeout: serverTimeout)
                    guard reply.name == "saved", let written = try? JSONDecoder().decode(ParameterFile.Written.self, from: Data(reply.body)) else {
                        throw HeedError(.protocolViolation, "server \(rank) answered save-model with '\(reply.name)'")
                    }
                    guard written.name == ParameterFile.fileName(rank: rank) else {
                        throw HeedError(.protocolViolation, "server \(rank) saved \(written.name); expected \(ParameterFile.fileName(rank: rank)) (rank mix-up?)")
                    }
                    return (rank, written)
                }
            }
            for try await (rank, written) in group { files[rank] = written }
        }
        let model = SavedModel(step: step, config: config, servers: servers.count, slots: config.cluster.slots, files: files.map { $0! }, statistics: statistics)
        try model.write(to: directory)
        return model
    }
}
