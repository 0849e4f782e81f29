import ArgumentParser

/// `heed recommend`: Print top-K recommendations for users from a checkpoint.
struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recommend", abstract: "Print top-K recommendations for users from a checkpoint. (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "recommend", issue: "a later issue").exit()
    }
}
