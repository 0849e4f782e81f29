import ArgumentParser

/// `heed checkpoint`: List, verify and export checkpoints.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "List, verify and export checkpoints. (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "checkpoint", issue: "a later issue").exit()
    }
}
