import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedData
import HeedModels
import HeedServer

/// A saved next-item model loaded into one local shard, with its dataset.
struct LoadedNextItemModel {
    var saved: SavedModel
    var config: RunConfig
    var manifest: DatasetManifest
    var model: any NextItemModel
    var params: LocalParameterAccess

    /// Loads `modelDirectory` (any server count) onto `data` (default: the training data);
    /// `overrides` replace the saved list settings (they change no parameter).
    static func load(_ modelDirectory: String, data: String?, overrides: ListOverrides = ListOverrides()) throws -> LoadedNextItemModel {
        let saved = try SavedModel.load(directory: modelDirectory)
        var config = saved.config
        if let data { config.data.path = data }
        if let v = overrides.anchorWeight { config.model.anchorWeight = v }
        if let v = overrides.listGateWeights { config.model.listGateWeights = v }
        config.cluster.servers = 1
        config.cluster.workers = 1
        let manifest = try DatasetManifest.load(directory: config.data.path)
        let (made, _) = try ModelCatalog.make(config, schema: manifest.schema)
        guard let model = made as? any NextItemModel else {
            throw HeedError(.config, "\(modelDirectory) holds a \(saved.config.model.name) model, not a next-item model")
        }
        guard model.tableDims == saved.config.layout.tableDims, model.denseParameterCount == saved.config.layout.denseCount else {
            throw HeedError(.config, "\(config.data.path) does not fit the model in \(modelDirectory) (tables or dense size differ)")
        }
        let files = try saved.readFiles(directory: modelDirectory)
        let shard = try ServerRole.makeShard(rank: 0, config: config, initialDense: SavedModel.denseVector(of: files))
        try shard.restore(from: files, slotCount: saved.slots)
        return LoadedNextItemModel(saved: saved, config: config, manifest: manifest, model: model, params: LocalParameterAccess(shard: shard))
    }

    /// The catalogue's item side, when the model reads one (hybrid).
    var side: ItemSide? { (model as? HybridModel)?.side }

    /// Cross-sell, upsell and alternatives figures on `split` (hybrid models).
    func shopLists(split: Split, coldMax: Int) async throws -> ShopListMetrics {
        guard let side else { throw HeedError(.config, "\(saved.config.model.name) makes no cross-sell or upsell lists (hybrid does)") }
        return try await ShopListEvaluation.evaluate(model: model, side: side, params: params,
                                                     shards: try manifest.open(split, directory: config.data.path),
                                                     train: try manifest.open(.train, directory: config.data.path), coldMaxInteractions: coldMax)
    }
}

/// `heed eval` flags that replace a saved hybrid model's list settings (`anchor_weight`,
/// `list_gate_weights`); they change no parameter.
struct ListOverrides {
    var anchorWeight: Double? = nil
    var listGateWeights: [Double]? = nil
}

/// Comma-separated weights of a flag ("" = none).
/// - Throws: `HeedError(.config)` naming the flag for a value that is not a number.
func parseWeights(_ text: String, flag: String) throws -> [Double] {
    guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { return [] }
    return try text.split(separator: ",").map { part in
        guard let v = Double(part.trimmingCharacters(in: .whitespaces)) else {
            throw HeedError(.config, "\(flag) must be comma-separated numbers (mf, seq, mlp), not '\(text)'")
        }
        return v
    }
}

extension EvalCommand {
    /// Prints (and writes, with `--lists-out`) the shop-list figures of a hybrid model.
    static func shopLists(model: String, data: String?, split: Split, coldMax: Int, out: String?, overrides: ListOverrides = ListOverrides()) throws {
        let result = LockedBox<ShopListMetrics?>(nil)
        try runRole("eval") {
            let loaded = try LoadedNextItemModel.load(model, data: data, overrides: overrides)
            result.set(try await loaded.shopLists(split: split, coldMax: coldMax))
        }
        guard let metrics = result.get() else { throw ExitCode(1) }
        print("\(split.rawValue) lists: " + metrics.summary)
        if let out { try writeJSONAtomically(metrics, to: out) }
    }

    /// `heed eval --compare A B` for hybrid models: paired bootstrap by record (user) of
    /// next-item HR@10 / NDCG@10 and of each list's hit rate and NDCG@10. A side may be several
    /// runs of one config (`sides[k]`, seeds): then its value is the mean over its runs and the
    /// interval is `PairedBootstrap.compareRunMeans`'s two-level one (records and runs).
    func runShopListComparison(sides: [[String]], split: Split) throws {
        let evaluated = LockedBox<[[ShopListMetrics]]>([])
        let (data, coldMax) = (self.data, self.coldMax)
        let overrides = ListOverrides(anchorWeight: anchorWeight, listGateWeights: try listGateWeights.map { try parseWeights($0, flag: "--list-gate-weights") })
        try runRole("eval") {
            for side in sides {
                var runs: [ShopListMetrics] = []
                for d in side {
                    runs.append(try await LoadedNextItemModel.load(d, data: data, overrides: overrides).shopLists(split: split, coldMax: coldMax))
                }
                evaluated.update { $0.append(runs) }
            }
        }
        let (a, b) = (evaluated.get()[0], evaluated.get()[1])
        let first = a[0]
        guard (a + b).allSatisfy({ $0.users == first.users }) else {
            throw HeedError(.config, "the compared models were evaluated on different records; pass --data to use one dataset")
        }
        let r = comparison.resamples, seed = comparison.bootstrapSeed
        /// One metric's per-run, per-record values on each side.
        typealias Values = (String, [[Double?]], [[Double?]])
        var metrics: [Values] = [("next HR@\(first.cutoff)", a.map { $0.nextHit }, b.map { $0.nextHit }),
                                 ("next NDCG@\(first.cutoff)", a.map { $0.nextNDCG }, b.map { $0.nextNDCG })]
        // The lists every run was judged on (one dataset gives every run the same kinds).
        for kind in ShopListKind.allCases where (a + b).allSatisfy({ $0.hits[kind.rawValue] != nil && $0.ndcgs[kind.rawValue] != nil }) {
            let k = kind.rawValue
            metrics.append(("\(k) HR@\(first.cutoff)", a.map { $0.hits[k]! }, b.map { $0.hits[k]! }))
            metrics.append(("\(k) NDCG@\(first.cutoff)", a.map { $0.ndcgs[k]! }, b.map { $0.ndcgs[k]! }))
        }
        let rows = metrics.map { PairedBootstrap.compareRunMeans(metric: $0.0, a: $0.1, b: $0.2, resamples: r, seed: seed) }
        func f(_ x: Double?, sign: Bool = false) -> String { x.map { String(format: sign ? "%+.4f" : "%.4f", $0) } ?? "n/a" }
        func name(_ side: [String]) -> String { side.count == 1 ? side[0] : "mean of \(side.count) runs (\(side.joined(separator: ", ")))" }
        let runs = sides.contains { $0.count > 1 }
        var lines = ["A = \(name(sides[0])), B = \(name(sides[1])); \(split.rawValue) split, \(first.users.count) records; paired bootstrap by record (user)"
                     + (runs ? " and by run" : "") + ", \(r) resamples, seed \(seed)", "",
                     "| metric | A | B | B − A | 95% interval | records |", "|---|---|---|---|---|---|"]
        for (m, values) in zip(rows, metrics) {
            let judged = values.1[0].compactMap { $0 }.count
            lines.append("| \(m.metric) | \(f(m.a)) | \(f(m.b)) | \(f(m.difference, sign: true)) | [\(f(m.lower, sign: true)), \(f(m.upper, sign: true))] | \(judged) |")
        }
        if runs {
            // Every run's own mean: the run-to-run spread the interval includes.
            lines += ["", "| metric | A's runs | B's runs |", "|---|---|---|"]
            for (metric, valuesA, valuesB) in metrics {
                func means(_ side: [[Double?]]) -> String {
                    side.map { run in
                        let v = run.compactMap { $0 }
                        return v.isEmpty ? "n/a" : f(v.reduce(0, +) / Double(v.count))
                    }.joined(separator: ", ")
                }
                lines.append("| \(metric) | \(means(valuesA)) | \(means(valuesB)) |")
            }
        }
        print(lines.joined(separator: "\n"))
        if let path = comparison.out { try writeJSONAtomically(rows, to: path) }
    }

    /// Whether every compared model is a hybrid model (compared on lists, not probabilities).
    static func comparesHybrids(_ directories: [String]) -> Bool {
        directories.count >= 2 && directories.allSatisfy { (try? SavedModel.load(directory: $0))?.config.model.name == "hybrid" }
    }
}

/// One cross-sell or upsell answer of `heed recommend`.
struct ShopListAnswer: Codable {
    var mode: String
    /// The anchor item (raw id), its category key and price.
    var anchor: UInt64
    var anchorCategory: String?
    var anchorPrice: Double?
    /// The user whose history was used, if any.
    var user: String?
    /// Best first.
    var items: [RecommendedItem]
}

extension RecommendCommand {
    /// Cross-sell or upsell around `--item` (for `--user` when given) with a hybrid model.
    func shopList(_ loaded: LoadedNextItemModel, kind: ShopListKind) async throws -> String {
        guard let side = loaded.side else {
            throw HeedError(.config, "--mode \(mode) needs a model that produces \(mode) lists (hybrid); \(model) holds \(loaded.saved.config.model.name), which recommends next items (--mode next)")
        }
        try ShopListRules.check(kind, side: side, data: loaded.config.data.path)
        guard let item else { throw HeedError(.invalidInput, "--mode \(mode) needs --item ID (the anchor item)") }
        guard let anchor = side.index(of: FeatureGroup.item.key(FeatureGroup.rawID(item))) else {
            throw HeedError(.invalidInput, "unknown item '\(item)': it is not in the catalogue of \(loaded.config.data.path)")
        }
        var history: [UInt64] = []
        var userID = HybridBatcher.anonymousUser
        if let user {
            let histories = try UserHistories.load(loaded.manifest, directory: loaded.config.data.path)
            userID = FeatureGroup.rawID(user)
            guard let h = histories[userID] else {
                throw HeedError(.invalidInput, "unknown user '\(user)': no record of it in \(loaded.config.data.path)")
            }
            history = h
        }
        history.append(side.keys[anchor])
        var recommender = try await NextItemRecommender(model: loaded.model, params: loaded.params,
                                                        catalog: try loaded.manifest.openCatalog(directory: loaded.config.data.path))
        var scores = try await recommender.listScores(history: history, user: userID)
        for key in history { if let i = side.index(of: key) { scores[i] = -Float.infinity } }
        scores.withUnsafeMutableBufferPointer { ShopListRules.restrict($0, kind: kind, anchor: anchor, side: side) }
        let top = ItemScorer.topK(scores[...], k: k)
        let items = top.map { i in
            RecommendedItem(item: side.rawIDs[i], score: scores[i],
                            category: side.categories[i] == FeatureGroup.category.missingKey ? nil : FeatureKey(rawValue: side.categories[i]).description,
                            price: side.prices[i])
        }
        let answer = ShopListAnswer(mode: mode, anchor: side.rawIDs[anchor],
                                    anchorCategory: side.categories[anchor] == FeatureGroup.category.missingKey ? nil : FeatureKey(rawValue: side.categories[anchor]).description,
                                    anchorPrice: side.prices[anchor], user: user, items: items)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(answer), as: UTF8.self)
        }
        var head = "\(mode) for item \(item)"
        if let c = answer.anchorCategory { head += " (category \(c)" + (answer.anchorPrice.map { String(format: ", price %.2f", $0) } ?? "") + ")" }
        if let user { head += ", user \(user) (\(history.count - 1) items known)" }
        var lines = [head + (items.count < k ? ": only \(items.count) items qualify" : "")]
        for (rank, r) in items.enumerated() {
            var line = String(format: "%2d. item %@  score %.4f", rank + 1, String(r.item), r.score)
            if let c = r.category { line += "  category \(c)" }
            if let p = r.price { line += String(format: "  price %.2f", p) }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
