import ArgumentParser

/// `heed train`: train a model; by default a local cluster of processes.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a model, by default as a local cluster of processes (not implemented yet).")

    func run() throws {
        try NotImplemented(command: "train", issue: "issue 4").exit()
    }
}
