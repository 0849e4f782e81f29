import ArgumentParser

/// `heed worker`: Run one worker role.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one worker role. (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "worker", issue: "issue 4").exit()
    }
}
