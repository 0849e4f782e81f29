import Foundation
import HeedCore
import HeedData
import HeedOptim
import HeedServer
import Testing
@testable import HeedModels

/// The committed item-text vectors against the prepared sample they were made for: the
/// run layout a `text-tower` run derives, the errors for files that do not fit the data,
/// and the servers' initial rows, which must equal the file.
@Suite(.serialized) struct TextVectorsDataTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let vectorsPath = repository + "/data/generic-online-retail-sample/item-text-minilm.heedvec"

    /// The generic Online Retail sample, prepared once per test process.
    static let prepared: String = {
        let out = NSTemporaryDirectory() + "heed-text-tower-\(getpid())"
        var options = PrepareOptions(dataset: .generic, input: repository + "/data/generic-online-retail-sample", output: out)
        options.overwrite = true
        _ = try! Preparer.prepare(options)
        return out
    }()

    static func config(vectors: String) -> RunConfig {
        var c = RunConfig()
        c.model.name = "text-tower"
        c.model.embeddingDim = 8
        c.model.hidden = [16]
        c.model.textVectors = vectors
        c.data.path = prepared
        return c
    }

    /// Writes `vectors` to a temporary file and returns the error deriving a layout raises.
    static func layoutError(_ vectors: ItemVectors, textDim: Int = 384) -> HeedError? {
        let path = NSTemporaryDirectory() + "heed-text-bad-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).heedvec"
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try vectors.write(to: path)
            var c = config(vectors: path)
            c.model.textDim = textDim
            _ = try ModelCatalog.deriveLayout(c)
            return nil
        } catch let e as HeedError {
            #expect(e.message.hasPrefix(path), "the message should name the file: \(e.message)")
            return e
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test func committedVectorsCoverTheSampleCatalogueExactly() throws {
        let (layout, _) = try ModelCatalog.deriveLayout(Self.config(vectors: Self.vectorsPath))
        #expect(layout.layout.initialRows == [12: Self.vectorsPath])
        #expect(layout.layout.tableDims[12] == 384 && layout.layout.tableDims[2] == 8)
        // The file's raw ids are the items' raw ids as `heed prepare` computes them.
        let catalog = try DatasetManifest.load(directory: Self.prepared).openCatalog(directory: Self.prepared)
        let vectors = try ItemVectors.read(path: Self.vectorsPath)
        #expect(Set((0..<catalog.count).map { catalog.itemID($0) }) == Set(vectors.rawIDs))
        #expect(vectors.rawIDs.contains(FeatureGroup.rawID("85123A")) && vectors.rawIDs.contains(22_423))
    }

    @Test func withoutVectorsTheTextRowsAreRandomAtTheVectorsScale() throws {
        let (c, _) = try ModelCatalog.deriveLayout(Self.config(vectors: ""))
        #expect(c.layout.initialRows.isEmpty)
        #expect(c.layout.initScales == [12: 1 / 384.0.squareRoot()])
    }

    @Test func vectorsOfUnknownItemsAreRefused() throws {
        var v = try ItemVectors.read(path: Self.vectorsPath)
        // An item id that is not in the sample (the catalogue ids stay).
        let extra = (v.rawIDs.last ?? 0) + 1
        v = ItemVectors(dim: v.dim, rawIDs: v.rawIDs + [extra], values: v.values + [Float](repeating: 0.05, count: v.dim))
        let e = Self.layoutError(v)
        #expect(e?.code == .config)
        #expect(e?.message.contains("1 of its 2408 items are not in the catalogue") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("\(extra)") == true)
    }

    @Test func catalogueItemsWithoutVectorsAreRefused() throws {
        let v = try ItemVectors.read(path: Self.vectorsPath)
        let fewer = ItemVectors(dim: v.dim, rawIDs: Array(v.rawIDs.dropFirst(3)), values: Array(v.values.dropFirst(3 * v.dim)))
        let e = Self.layoutError(fewer)
        #expect(e?.code == .config)
        #expect(e?.message.contains("3 of the 2407 catalogue items") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("\(v.rawIDs[0])") == true)
    }

    @Test func vectorsOfAnotherWidthAreRefused() throws {
        let v = try ItemVectors.read(path: Self.vectorsPath)
        let e = Self.layoutError(v, textDim: 256)
        #expect(e?.code == .config && e?.message.contains("384 dimensions") == true)
    }

    /// Two servers each hold the file's rows of the keys they own, exactly, with fresh
    /// optimizer state; together they hold every row once.
    @Test func serversStartWithTheFileRows() throws {
        let (c, _) = try ModelCatalog.deriveLayout(Self.config(vectors: Self.vectorsPath))
        var config = c
        config.cluster.servers = 2
        config.sparseOptimizer = OptimizerConfig(kind: .adamw, learningRate: 0.01)
        let vectors = try ItemVectors.read(path: Self.vectorsPath)
        let entry = Dictionary(uniqueKeysWithValues: vectors.rawIDs.enumerated().map { (FeatureKey(group: 12, id: $1).rawValue, $0) })
        var held = 0
        for rank in 0..<2 {
            let shard = try ServerRole.makeShard(rank: rank, config: config, initialDense: [Float](repeating: 0, count: config.layout.denseCount))
            let written = try shard.loadInitialRows(config.layout.initialRows)
            held += written
            #expect(shard.tables[12]!.stats().rows == written)
            var seen = 0
            try shard.tables[12]!.forEachRow(plan: shard.plan) { row in
                guard let i = entry[row.key] else {
                    Issue.record("row \(row.key) is not in the file"); return
                }
                #expect(shard.plan.server(of: row.key) == rank)
                #expect(row.step == 0)
                #expect(Array(row.values[0..<384]) == Array(vectors.values[(i * 384)..<((i + 1) * 384)]))
                // AdamW's moments start at zero.
                #expect(row.values.count == 3 * 384 && row.values[384...].allSatisfy { $0 == 0 })
                seen += 1
            }
            #expect(seen == written)
        }
        #expect(held == vectors.count)
    }
}
