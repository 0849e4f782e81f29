import Foundation
import Testing
import HeedCore
import HeedData
import HeedModels

/// `heed recommend` end to end: the built binary trains sasrec on the bundled Beauty sample
/// (next-item records), saves it, and answers for users of that sample.
@Suite(.serialized) struct RecommendTests {
    let data: String
    let model: String
    init() throws {
        data = try SASRecClusterTests.preparedSequences()
        model = try Self.trained(data)
    }

    /// Trains and saves a small sasrec model once per test process (in-process, one epoch).
    static func trained(_ data: String) throws -> String {
        try lock.withLock {
            let dir = NSTemporaryDirectory() + "heed-recommend-\(getpid())"
            if FileManager.default.fileExists(atPath: dir + "/model/manifest.json") { return dir + "/model" }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let toml = """
                seed = 3
                [model]
                name = "sasrec"
                embedding_dim = 16
                heads = 2
                max_len = 20
                loss = "sampled-softmax"
                negatives = 128
                [data]
                path = "\(data)"
                batch_size = 128
                epochs = 1
                """
            try toml.write(toFile: dir + "/sasrec.toml", atomically: true, encoding: .utf8)
            let run = try LauncherTests.Run(["train", "--config", dir + "/sasrec.toml", "--in-process", "--save-model", dir + "/model"])
            guard run.wait(seconds: 300) == 0 else { throw HeedError(.io, "training for the recommend tests failed:\n\(run.output)") }
            return dir + "/model"
        }
    }

    private static let lock = NSLock()

    /// Runs `heed recommend` with `arguments`; returns exit status and output.
    func recommend(_ arguments: [String]) async throws -> (Int32?, String) {
        let run = try LauncherTests.Run(["recommend", "--model", model] + arguments)
        let status = await run.exit(within: 120)
        return (status, run.output)
    }

    @Test func listsOnlyRealUnseenItemsWithAnExplanation() async throws {
        let manifest = try DatasetManifest.load(directory: data)
        let catalog = try manifest.openCatalog(directory: data)
        let items = Set((0..<catalog.count).map { catalog.itemID($0) })
        for user in ["1", "17"] {
            let (status, output) = try await recommend(["--user", user, "--k", "15", "--json"])
            #expect(status == 0, "\(output)")
            let json = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") })
            let result = try JSONDecoder().decode(NextItemRecommendations.self, from: Data(json.utf8))
            #expect(result.items.count == 15)
            #expect(result.items.allSatisfy { items.contains($0.item) }, "an item outside the catalogue")
            #expect(Set(result.items.map(\.item)).isDisjoint(with: result.history), "a history item was recommended")
            #expect(zip(result.items, result.items.dropFirst()).allSatisfy { $0.score >= $1.score }, "not best first")
            #expect(!result.because.isEmpty && result.because.allSatisfy { result.history.contains($0.item) })
        }
    }

    @Test func unknownUsersItemsAndModesFailWithAMessage() async throws {
        let (s1, o1) = try await recommend(["--user", "987654321"])
        #expect(s1 != 0 && o1.contains("unknown user '987654321'"), "\(o1)")
        let (s2, o2) = try await recommend(["--user", "1", "--item", "987654321"])
        #expect(s2 != 0 && o2.contains("unknown item '987654321'"), "\(o2)")
        let (s3, o3) = try await recommend(["--user", "1", "--mode", "cross-sell"])
        #expect(s3 != 0 && o3.contains("hybrid"), "\(o3)")
        let (s4, o4) = try await recommend(["--user", "1", "--k", "0"])
        #expect(s4 != 0 && o4.contains("--k"), "\(o4)")
    }

    @Test func anAnchorItemChangesTheList() async throws {
        let (s1, base) = try await recommend(["--user", "1", "--json"])
        let (s2, anchored) = try await recommend(["--user", "1", "--item", "100", "--json"])
        #expect(s1 == 0 && s2 == 0)
        let a = try JSONDecoder().decode(NextItemRecommendations.self, from: Data(base.split(separator: "\n").first { $0.hasPrefix("{") }!.utf8))
        let b = try JSONDecoder().decode(NextItemRecommendations.self, from: Data(anchored.split(separator: "\n").first { $0.hasPrefix("{") }!.utf8))
        #expect(b.history == a.history + [100])   // user 1 has 5 items, fewer than max_len
        #expect(a.items != b.items)
        #expect(!b.items.contains { $0.item == 100 })
    }
}
