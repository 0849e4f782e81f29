import ArgumentParser

/// `heed bench`: measures Heed against this machine's physical limits, in one run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput against the machine's limits (sgemm, memory bandwidth, raw nng, disk).",
        subcommands: [BenchDenseCommand.self, BenchClusterCommand.self, BenchPrepareCommand.self, BenchStorageCommand.self,
                      BenchCheckpointCommand.self, BenchChaosCommand.self, BenchFuzzCommand.self, BenchSoakCommand.self,
                      BenchDINCommand.self]
    )
}
