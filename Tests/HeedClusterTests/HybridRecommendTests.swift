import Foundation
import Testing
import HeedCore
import HeedData
import HeedModels
@testable import heed

/// `heed recommend` and `heed eval` end to end on hybrid models the built binary trains on
/// bundled samples: Grocery (categories, links, no prices) and the UCI Online Retail sample in
/// the generic schema (prices).
@Suite(.serialized) struct HybridRecommendTests {
    /// Trains and saves a small hybrid model on `data` once per test process.
    static func trained(_ data: String, name: String, seed: Int = 3) throws -> String {
        try lock.withLock {
            let dir = NSTemporaryDirectory() + "heed-hybrid-recommend-\(name)\(seed == 3 ? "" : "-seed\(seed)")-\(getpid())"
            if FileManager.default.fileExists(atPath: dir + "/model/manifest.json") { return dir + "/model" }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let toml = """
                seed = \(seed)
                [model]
                name = "hybrid"
                embedding_dim = 8
                hidden = [16]
                max_len = 20
                loss = "sampled-softmax"
                negatives = 64
                [data]
                path = "\(data)"
                batch_size = 128
                epochs = 1
                """
            try toml.write(toFile: dir + "/hybrid.toml", atomically: true, encoding: .utf8)
            let run = try LauncherTests.Run(["train", "--config", dir + "/hybrid.toml", "--in-process", "--save-model", dir + "/model"])
            guard run.wait(seconds: 300) == 0 else { throw HeedError(.io, "training hybrid for the recommend tests failed:\n\(run.output)") }
            return dir + "/model"
        }
    }

    private static let lock = NSLock()

    static func retail() throws -> String { try HybridClusterTests.prepared(.generic, "generic-online-retail-sample", name: "retail") }

    func run(_ arguments: [String]) async throws -> (Int32?, String) {
        let run = try LauncherTests.Run(arguments)
        let status = await run.exit(within: 180)
        return (status, run.output)
    }

    static func json<T: Decodable>(_ output: String, as: T.Type) throws -> T {
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") }, "no JSON in: \(output)")
        return try JSONDecoder().decode(T.self, from: Data(line.utf8))
    }

    @Test func crossSellListsRealItemsOfOtherCategories() async throws {
        let data = try HybridClusterTests.grocery()
        let model = try Self.trained(data, name: "grocery")
        let side = try ItemSide.load(dataDirectory: data)
        let raw = Set(side.rawIDs)
        // Anchors: items with a category, with and without a user.
        let anchors = (0..<side.count).filter { side.categories[$0] != FeatureGroup.category.missingKey }.prefix(40).map { side.rawIDs[$0] }
        for (n, anchor) in anchors.enumerated() where n % 8 == 0 {
            for user in [nil, "1"] as [String?] {
                let args = ["recommend", "--model", model, "--mode", "cross-sell", "--item", String(anchor), "--k", "10", "--json"] + (user.map { ["--user", $0] } ?? [])
                let (status, output) = try await run(args)
                #expect(status == 0, "\(output)")
                let answer = try Self.json(output, as: ShopListAnswer.self)
                #expect(answer.items.count == 10)
                #expect(answer.items.allSatisfy { raw.contains($0.item) }, "an item outside the catalogue")
                let anchorCategory = side.categories[side.index(of: FeatureGroup.item.key(anchor))!]
                for item in answer.items {
                    let c = side.categories[side.index(of: FeatureGroup.item.key(item.item))!]
                    #expect(c != anchorCategory, "cross-sell around \(anchor) lists \(item.item) of the same category")
                }
                #expect(zip(answer.items, answer.items.dropFirst()).allSatisfy { $0.score >= $1.score })
            }
        }
        // Next items from the same model, for a user.
        let (status, output) = try await run(["recommend", "--model", model, "--user", "1", "--json"])
        #expect(status == 0, "\(output)")
        let next = try Self.json(output, as: NextItemRecommendations.self)
        #expect(next.items.count == 10 && next.items.allSatisfy { raw.contains($0.item) })
        #expect(Set(next.items.map(\.item)).isDisjoint(with: next.history))
    }

    /// The list settings of `heed eval`: an anchor weight keeps every list inside its rules,
    /// list weights on a learned gate are refused with a message naming the key.
    @Test func listSettingsKeepTheRulesAndRefuseBadValues() async throws {
        let data = try HybridClusterTests.grocery()
        let model = try Self.trained(data, name: "grocery")
        let out = NSTemporaryDirectory() + "heed-hybrid-anchored-lists-\(getpid()).json"
        let (status, output) = try await run(["eval", "--model", model, "--split", "valid", "--anchor-weight", "0.5", "--lists-out", out])
        #expect(status == 0, "\(output)")
        let metrics = try JSONDecoder().decode(ShopListMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: out)))
        let crossSell = try #require(metrics.figures["cross-sell"])
        #expect(crossSell.lists > 100 && crossSell.judged > 10 && crossSell.violationRate == 0)
        let (refused, message) = try await run(["eval", "--model", model, "--split", "valid", "--list-gate-weights", "1,1,1"])
        #expect(refused != 0 && message.contains("list_gate_weights needs gate = fixed"), "\(message)")
        let (bad, text) = try await run(["eval", "--model", model, "--split", "valid", "--anchor-weight=-1"])
        #expect(bad != 0 && text.contains("anchor_weight must be"), "\(text)")
    }

    /// `heed eval --compare A1,A2 B`: side A is the mean of its two runs (seeds), the table
    /// lists each run's own value, and a side that is not all hybrid models is refused.
    @Test func compareAveragesSeveralRunsPerSide() async throws {
        let data = try HybridClusterTests.grocery()
        let (one, two) = (try Self.trained(data, name: "grocery"), try Self.trained(data, name: "grocery", seed: 4))
        var single: [Double] = []
        for model in [one, two] {
            let out = NSTemporaryDirectory() + "heed-hybrid-run-\(single.count)-\(getpid()).json"
            let (status, output) = try await run(["eval", "--model", model, "--split", "valid", "--lists-out", out])
            #expect(status == 0, "\(output)")
            let m = try JSONDecoder().decode(ShopListMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: out)))
            single.append(m.nextNDCG.reduce(0, +) / Double(m.nextNDCG.count))
        }
        #expect(single[0] != single[1], "two seeds gave one model")
        let out = NSTemporaryDirectory() + "heed-hybrid-compare-runs-\(getpid()).json"
        let (status, output) = try await run(["eval", "--compare", "\(one),\(two)", two, "--split", "valid", "--resamples", "200", "--out", out])
        #expect(status == 0 && output.contains("mean of 2 runs") && output.contains("A's runs"), "\(output)")
        let rows = try JSONDecoder().decode([PairedBootstrap.Comparison].self, from: Data(contentsOf: URL(fileURLWithPath: out)))
        let ndcg = try #require(rows.first { $0.metric == "next NDCG@10" })
        #expect(abs(ndcg.a! - (single[0] + single[1]) / 2) < 1e-12 && abs(ndcg.b! - single[1]) < 1e-12, "\(ndcg) vs \(single)")
        #expect(ndcg.lower! <= ndcg.difference! && ndcg.difference! <= ndcg.upper!)
        let (refused, message) = try await run(["eval", "--compare", "\(one),/nonexistent-heed-model", two, "--split", "valid"])
        #expect(refused != 0 && message.contains("for hybrid models only"), "\(message)")
    }

    @Test func upsellListsDearerItemsOfTheSameCategory() async throws {
        let data = try Self.retail()
        let model = try Self.trained(data, name: "retail")
        let side = try ItemSide.load(dataDirectory: data)
        // Anchors across the price range (cheap ones have many dearer items).
        let priced = (0..<side.count).filter { side.prices[$0] != nil }.sorted { side.prices[$0]! < side.prices[$1]! }
        for a in stride(from: 0, to: priced.count * 9 / 10, by: priced.count / 6).map({ priced[$0] }) {
            let (status, output) = try await run(["recommend", "--model", model, "--mode", "upsell", "--item", String(side.rawIDs[a]), "--json"])
            #expect(status == 0, "\(output)")
            let answer = try Self.json(output, as: ShopListAnswer.self)
            #expect(!answer.items.isEmpty)
            #expect(answer.anchorPrice == side.prices[a])
            for item in answer.items {
                let i = try #require(side.index(of: FeatureGroup.item.key(item.item)), "item \(item.item) is not in the catalogue")
                #expect(side.categories[i] == side.categories[a])
                #expect((item.price ?? -1) > side.prices[a]!, "upsell around \(side.rawIDs[a]) (price \(side.prices[a]!)) lists \(item.item) at \(String(describing: item.price))")
            }
        }
        // heed eval reports the lists with no violation.
        let (status, output) = try await run(["eval", "--model", model, "--lists-out", NSTemporaryDirectory() + "heed-hybrid-lists-\(getpid()).json"])
        #expect(status == 0, "\(output)")
        let metrics = try JSONDecoder().decode(ShopListMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: NSTemporaryDirectory() + "heed-hybrid-lists-\(getpid()).json")))
        let upsell = try #require(metrics.figures["upsell"])
        #expect(upsell.lists > 100 && upsell.meanLength > 5 && upsell.violationRate == 0)
    }

    @Test func badRequestsFailWithAMessage() async throws {
        let data = try HybridClusterTests.grocery()
        let model = try Self.trained(data, name: "grocery")
        let cases: [([String], String)] = [
            (["--mode", "cross-sell", "--item", "987654321"], "unknown item '987654321'"),
            (["--mode", "cross-sell", "--item", "1", "--user", "987654321"], "unknown user '987654321'"),
            (["--mode", "next", "--user", "987654321"], "unknown user '987654321'"),
            (["--mode", "upsell", "--item", "1"], "needs item prices"),
            (["--mode", "cross-sell", "--user", "1"], "--item"),
        ]
        for (args, message) in cases {
            let (status, output) = try await run(["recommend", "--model", model] + args)
            #expect(status != 0 && output.contains(message), "\(args): \(output)")
        }
    }
}
