import ArgumentParser

/// `heed eval`: Evaluate a checkpoint on a prepared dataset (AUC, GAUC, log loss, HR@K, NDCG@K).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "Evaluate a checkpoint on a prepared dataset (AUC, GAUC, log loss, HR@K, NDCG@K). (not implemented yet)")

    func run() throws {
        try NotImplemented(command: "eval", issue: "issue 4").exit()
    }
}
