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

    /// `heed eval --compare A B` for two hybrid models: paired bootstrap by record (user) of
    /// next-item HR@10 / NDCG@10 and of each list's hit rate and NDCG@10.
    func runShopListComparison(split: Split) throws {
        let directories = comparison.compare
        let both = LockedBox<[ShopListMetrics]>([])
        let (data, coldMax) = (self.data, self.coldMax)
        let overrides = ListOverrides(anchorWeight: anchorWeight, listGateWeights: try listGateWeights.map { try parseWeights($0, flag: "--list-gate-weights") })
        try runRole("eval") {
            for d in directories {
                let m = try await LoadedNextItemModel.load(d, data: data, overrides: overrides).shopLists(split: split, coldMax: coldMax)
                both.update { $0.append(m) }
            }
        }
        let (a, b) = (both.get()[0], both.get()[1])
        guard a.users == b.users else { throw HeedError(.config, "the two models were evaluated on different records; pass --data to use one dataset") }
        let r = comparison.resamples, seed = comparison.bootstrapSeed
        var rows = [PairedBootstrap.compareMeans(metric: "next HR@\(a.cutoff)", a: a.nextHit, b: b.nextHit, resamples: r, seed: seed),
                    PairedBootstrap.compareMeans(metric: "next NDCG@\(a.cutoff)", a: a.nextNDCG, b: b.nextNDCG, resamples: r, seed: seed)]
        for kind in ShopListKind.allCases {
            guard let ha = a.hits[kind.rawValue], let hb = b.hits[kind.rawValue] else { continue }
            rows.append(PairedBootstrap.compareMeans(metric: "\(kind.rawValue) HR@\(a.cutoff)", a: ha, b: hb, resamples: r, seed: seed))
            rows.append(PairedBootstrap.compareMeans(metric: "\(kind.rawValue) NDCG@\(a.cutoff)", a: a.ndcgs[kind.rawValue]!, b: b.ndcgs[kind.rawValue]!,
                                                     resamples: r, seed: seed))
        }
        func f(_ x: Double?, sign: Bool = false) -> String { x.map { String(format: sign ? "%+.4f" : "%.4f", $0) } ?? "n/a" }
        var lines = ["A = \(directories[0]), B = \(directories[1]); \(split.rawValue) split, \(a.users.count) records; paired bootstrap by record (user), \(r) resamples, seed \(seed)", "",
                     "| metric | A | B | B − A | 95% interval | records |", "|---|---|---|---|---|---|"]
        for m in rows {
            let judged = m.metric.hasPrefix("next") ? a.users.count : (a.hits[String(m.metric.split(separator: " ")[0])]?.compactMap { $0 }.count ?? 0)
            lines.append("| \(m.metric) | \(f(m.a)) | \(f(m.b)) | \(f(m.difference, sign: true)) | [\(f(m.lower, sign: true)), \(f(m.upper, sign: true))] | \(judged) |")
        }
        print(lines.joined(separator: "\n"))
        if let path = comparison.out { try writeJSONAtomically(rows, to: path) }
    }

    /// Whether both compared models are hybrid models (compared on lists, not probabilities).
    static func comparesHybrids(_ directories: [String]) -> Bool {
        directories.count == 2 && directories.allSatisfy { (try? SavedModel.load(directory: $0))?.config.model.name == "hybrid" }
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
