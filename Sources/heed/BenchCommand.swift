import ArgumentParser

/// `heed bench`: measures Heed against this machine's physical limits, in one run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput against the machine's limits (sgemm, memory bandwidth, raw nng).",
        subcommands: [BenchDenseCommand.self, BenchClusterCommand.self, BenchPrepareCommand.self]
    )
}

/// `heed bench cluster`: transport and server throughput against raw nng and memory bandwidth.
struct BenchClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Pull/push goodput vs raw nng; sparse Adam vs memory bandwidth (not implemented yet).")
    func run() throws { try NotImplemented(command: "bench cluster", issue: "issue 4").exit() }
}
