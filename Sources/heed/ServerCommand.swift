import ArgumentParser

/// `heed server`: Run one parameter-server role.
struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "server", abstract: "Run one parameter-server role. (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "server", issue: "issue 4").exit()
    }
}
