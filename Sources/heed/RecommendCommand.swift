import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedServer
import HeedWorker

/// `heed recommend`: top-K items for a user from a saved model.
struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Print the top-K next items for a user from a saved next-item model (sasrec), with the history items that drew the most attention.",
        discussion: """
            The user's history is read from the prepared dataset the model was trained on (--data to use another): all of \
            the user's known items, oldest first. --item appends an item to it ("what follows this one"). The history's own \
            items are not recommended. Ids are the raw ids of the input files. --latency-users N times N users instead \
            (p50/p99 of one recommendation over the whole catalogue) and prints no lists.
            """)

    @Option(help: "Saved model directory (heed train --save-model).") var model: String
    @Option(help: "Raw user id, as in the input files.") var user: String?
    @Option(help: "Items to recommend.") var k: Int = 10
    @Option(help: "next (sasrec, hybrid); cross-sell and upsell (around --item, for --user when given) need the hybrid model.") var mode: String = "next"
    @Option(help: "Raw item id appended to the user's history (the anchor item).") var item: String?
    @Option(help: "Prepared dataset holding the users' histories (default: the one the model was trained on).") var data: String?
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Benchmark: time this many users (the first ones of the test split) and print p50/p99 latency.") var latencyUsers: Int?

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be >= 1") }
        guard ["next", "cross-sell", "upsell"].contains(mode) else { throw ValidationError("--mode must be next, cross-sell or upsell, not \(mode)") }
        guard user != nil || latencyUsers != nil || (mode != "next" && item != nil) else {
            throw ValidationError("--user is required (or --item for cross-sell/upsell, or --latency-users for the benchmark)")
        }
        if let n = latencyUsers, n < 1 { throw ValidationError("--latency-users must be >= 1") }
    }

    func run() throws {
        let out = LockedBox<String?>(nil)
        let request = self
        try runRole("recommend") { out.set(try await request.answer()) }
        guard let text = out.get() else { throw ExitCode(1) }
        print(text)
    }

    /// Loads the model and answers the request (or runs the latency benchmark).
    func answer() async throws -> String {
        let saved = try SavedModel.load(directory: model)
        if let kind = ShopListKind(rawValue: mode), saved.config.model.name == "hybrid" {
            return try await shopList(try LoadedNextItemModel.load(model, data: data), kind: kind)
        }
        guard mode == "next" else {
            throw HeedError(.config, "--mode \(mode) needs a model that produces \(mode) lists (hybrid); \(model) holds \(saved.config.model.name), which recommends next items (--mode next)")
        }
        var config = saved.config
        if let data { config.data.path = data }
        config.cluster.servers = 1
        config.cluster.workers = 1
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (made, _) = try ModelCatalog.make(config, schema: manifest.schema)
        guard let next = made as? any NextItemModel else {
            throw HeedError(.config, "\(model) holds a \(saved.config.model.name) model, which scores given items rather than recommending; heed recommend needs a next-item model (sasrec)")
        }
        guard next.tableDims == saved.config.layout.tableDims, next.denseParameterCount == saved.config.layout.denseCount else {
            throw HeedError(.config, "\(config.data.path) does not fit the model in \(model)")
        }
        let files = try saved.readFiles(directory: model)
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: SavedModel.denseVector(of: files))
        try shard.restore(from: files, slotCount: saved.slots)
        var recommender = try await NextItemRecommender(model: next, params: LocalParameterAccess(shard: shard),
                                                        catalog: try manifest.openCatalog(directory: config.data.path))
        let histories = try UserHistories.load(manifest, directory: config.data.path)
        if let n = latencyUsers { return try await benchmark(&recommender, histories: histories, manifest: manifest, directory: config.data.path, users: n) }

        let userID = FeatureGroup.rawID(user!)
        guard var history = histories[userID] else {
            throw HeedError(.invalidInput, "unknown user '\(user!)': no record of it in \(config.data.path)")
        }
        if let item {
            guard let key = recommender.itemKey(raw: FeatureGroup.rawID(item)) else {
                throw HeedError(.invalidInput, "unknown item '\(item)': it is not in the catalogue of \(config.data.path)")
            }
            history.append(key)
        }
        let result = try await recommender.recommend(history: history, k: k, user: userID)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(result), as: UTF8.self)
        }
        var lines = ["user \(user!): \(history.count) items known, the model reads the last \(result.history.count)"]
        for (rank, r) in result.items.enumerated() {
            var line = String(format: "%2d. item %@  score %.4f", rank + 1, String(r.item), r.score)
            if let c = r.category { line += "  category \(c)" }
            if let p = r.price { line += String(format: "  price %.2f", p) }
            lines.append(line)
        }
        // Models without attention (hybrid) have no explanation to give.
        if result.because.contains(where: { $0.weight > 0 }) { lines.append("because you bought " + result.because.map { String(format: "%@ (attention %.2f)", String($0.item), $0.weight) }.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }

    /// p50/p99 of one k-item recommendation over the whole catalogue, for the first `users`
    /// users of the test split (each request: forward, one product, top-K).
    func benchmark(_ recommender: inout NextItemRecommender, histories: [UInt64: [UInt64]], manifest: DatasetManifest,
                   directory: String, users: Int) async throws -> String {
        var ids: [UInt64] = []
        for shard in try manifest.open(.test, directory: directory) {
            for r in 0..<shard.count where ids.count < users { ids.append(shard.userID(r)) }
        }
        guard !ids.isEmpty else { throw HeedError(.invalidInput, "\(directory) has no test users to time") }
        _ = try await recommender.recommend(history: histories[ids[0]]!, k: k)   // warm-up
        var seconds: [Double] = []
        for id in ids {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try await recommender.recommend(history: histories[id]!, k: k)
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        seconds.sort()
        let p = { (q: Double) in seconds[min(seconds.count - 1, Int((q * Double(seconds.count)).rounded(.up)) - 1)] * 1000 }
        return String(format: "recommend k=%d over %d items: %d users, p50 %.3f ms, p99 %.3f ms, mean %.3f ms",
                      k, recommender.scorer.count, ids.count, p(0.5), p(0.99), seconds.reduce(0, +) / Double(seconds.count) * 1000)
    }
}
