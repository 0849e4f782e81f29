import ArgumentParser

/// `heed bench dense`: forward+backward GFLOP/s of layers vs raw sgemm on the same shapes.
struct BenchDenseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dense", abstract: "Layer GFLOP/s vs raw cblas_sgemm on the same shapes (not implemented yet).")
    func run() throws { try NotImplemented(command: "bench dense", issue: "issue 2").exit() }
}
