import ArgumentParser

/// `heed prepare`: Turn raw shop logs into sharded binary training samples.
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prepare", abstract: "Turn raw shop logs into sharded binary training samples. (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "prepare", issue: "issue 3").exit()
    }
}
