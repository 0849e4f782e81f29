import Foundation
import Testing
@testable import HeedCore

@Suite struct TOMLDocumentTests {
    @Test func parsesTablesScalarsAndArrays() throws {
        let doc = try TOMLDocument(text: """
        # a run
        model = "din"   # trailing comment
        [cluster]
        servers = 2
        mode = 'sync'
        [optimizer.sparse]
        lr = 1e-3
        betas = [0.9, 0.999]
        enabled = true
        big = 10_000
        """, source: "run.toml")
        #expect(doc["model"] == .string("din"))
        #expect(doc["cluster.servers"] == .integer(2))
        #expect(doc["cluster.mode"] == .string("sync"))
        #expect(doc["optimizer.sparse.lr"] == .float(1e-3))
        #expect(doc["optimizer.sparse.betas"] == .array([.float(0.9), .float(0.999)]))
        #expect(doc["optimizer.sparse.enabled"] == .bool(true))
        #expect(doc["optimizer.sparse.big"] == .integer(10_000))
        #expect(doc.keys(in: "cluster") == ["mode", "servers"])
    }

    @Test(arguments: [
        ("a = 1\na = 2", "run.toml:2: duplicate key 'a'"),
        ("a = \"open", "run.toml:1: unterminated string"),
        ("x = {y = 1}", "run.toml:1: inline tables"),
        ("\n\nv = nope", "run.toml:3: cannot read value 'nope'"),
        ("[[servers]]", "run.toml:1: arrays of tables"),
    ])
    func rejectsBadInputNamingTheLine(text: String, expected: String) {
        do {
            _ = try TOMLDocument(text: text, source: "run.toml")
            Issue.record("expected an error for \(text)")
        } catch let e as HeedError {
            #expect(e.message.hasPrefix(expected), "\(e.message)")
        } catch { Issue.record("unexpected \(error)") }
    }
}

@Suite struct RunConfigTests {
    @Test func readsEverySectionOverDefaults() throws {
        let doc = try TOMLDocument(text: """
        seed = 7
        [model]
        name = "base"
        hidden = [64, 32]
        [cluster]
        servers = 2
        workers = 3
        mode = "bounded"
        [optimizer.sparse]
        kind = "adagrad"
        lr = 0.05
        """, source: "x.toml")
        let c = try RunConfig(toml: doc)
        #expect(c.seed == 7 && c.model.name == "base" && c.model.hidden == [64, 32])
        #expect(c.cluster.servers == 2 && c.cluster.workers == 3 && c.cluster.mode == .bounded)
        #expect(c.sparseOptimizer.kind == .adagrad && c.sparseOptimizer.learningRate == 0.05)
        #expect(c.denseOptimizer == RunConfig().denseOptimizer)
    }

    @Test func unknownKeysAndBadValuesNameTheLine() throws {
        #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[cluster]\nservrs = 2", source: "x.toml")) }
        do {
            _ = try RunConfig(toml: TOMLDocument(text: "[cluster]\nmode = \"fast\"", source: "x.toml"))
            Issue.record("accepted an unknown mode")
        } catch let e as HeedError {
            #expect(e.message.contains("x.toml:2"))
        }
        #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[cluster]\nservers = 0", source: "x.toml")) }
        #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[model]\nmini_batch_l2 = -1", source: "x.toml")) }
    }

    @Test func miniBatchRegularisationIsReadFromTheModelTable() throws {
        #expect(RunConfig().model.miniBatchL2 == 0)
        let c = try RunConfig(toml: TOMLDocument(text: "[model]\nmini_batch_l2 = 5", source: "x.toml"))
        #expect(c.model.miniBatchL2 == 5)
    }

    @Test func attentionWeightingAndBasePoolingAreReadAndChecked() throws {
        #expect(RunConfig().model.attentionWeighting == "raw" && RunConfig().model.basePooling == "sum")
        let c = try RunConfig(toml: TOMLDocument(text: "[model]\nattention_weighting = \"softmax\"\nbase_pooling = \"mean\"", source: "x.toml"))
        #expect(c.model.attentionWeighting == "softmax" && c.model.basePooling == "mean")
        #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[model]\nattention_weighting = \"max\"", source: "x.toml")) }
        #expect(throws: HeedError.self) { try RunConfig(toml: TOMLDocument(text: "[model]\nbase_pooling = \"max\"", source: "x.toml")) }
    }

    /// A model config saved before a key existed decodes with that key's default.
    @Test func olderModelConfigsDecodeWithDefaults() throws {
        let old = #"{"name":"din","embeddingDim":18,"hidden":[200,80],"attentionHidden":[80,40],"activation":"dice","initScale":0.01}"#
        let m = try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8))
        #expect(m.name == "din" && m.miniBatchL2 == 0 && m.attentionWeighting == "raw" && m.basePooling == "sum")
        var changed = ModelConfig()
        changed.attentionWeighting = "softmax"
        #expect(try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(changed)) == changed)
    }
}
