import ArgumentParser

/// `heed coordinator`: Run the coordinator role (membership, plan, barriers, checkpoints).
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinator", abstract: "Run the coordinator role (membership, plan, barriers, checkpoints). (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "coordinator", issue: "issue 4").exit()
    }
}
