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

    /// TOML that the old hand-written reader refused and TOMLKit reads: inline tables, dotted
    /// keys and multi-line arrays become the same dotted paths as plain tables.
    @Test func inlineTablesDottedKeysAndMultiLineArraysFlattenToPaths() throws {
        let doc = try TOMLDocument(text: """
        x = {y = 1, z = "s"}
        cluster.servers = 3
        [model]
        hidden = [
            64,  # first
            32,
        ]
        """, source: "run.toml")
        #expect(doc["x.y"] == .integer(1) && doc["x.z"] == .string("s"))
        #expect(doc["cluster.servers"] == .integer(3))
        #expect(doc["model.hidden"] == .array([.integer(64), .integer(32)]))
        #expect(doc.values.count == 4)
    }

    /// Syntax errors (TOMLKit's) carry file, line and column; the shapes no setting takes
    /// (arrays of tables, dates) are refused naming the key and its line.
    @Test(arguments: [
        ("a = 1\na = 2", "run.toml:2:", "'a'"),
        ("a = \"open", "run.toml:1:", "string"),
        ("\n\nv = nope", "run.toml:3:", "floating-point"),
        ("[model]\nname = \"din\n", "run.toml:2:", "string"),
        ("[[servers]]", "run.toml:1: servers: arrays of tables", "[[…]]"),
        ("x = 1\n[[jobs]]\nname = 'a'", "run.toml:2: jobs: arrays of tables", "[[…]]"),
        ("x = 1\nday = 1979-05-27", "run.toml:2: day: dates and times are not supported", "day"),
    ])
    func rejectsBadInputNamingTheLine(text: String, expected: String, mentions: String) {
        do {
            _ = try TOMLDocument(text: text, source: "run.toml")
            Issue.record("expected an error for \(text)")
        } catch let e as HeedError {
            #expect(e.code == .config)
            #expect(e.message.hasPrefix(expected), "\(e.message)")
            #expect(e.message.contains(mentions), "\(e.message)")
        } catch { Issue.record("unexpected \(error)") }
    }

    /// The line finder behind key errors reads line starts only: keys inside multi-line
    /// strings, headers in comments and lines of a multi-line array are not keys.
    @Test func keyLinesSkipStringsCommentsAndMultiLineArrays() throws {
        let text = #"""
        # a comment [not.a.table]
        title = """
        fake = 1
        [fake.table]
        """
        hidden = [
          64,   # a comment with ]
          32,
        ]
        "quoted.key" = 'x = 2'
        [cluster] # servers = 9
          servers = 2
        a.b . "c" = 3
        [[jobs]]
        name = "j \" k = 1"
        """#
        let lines = TOMLKeyLines(text: text).lines
        #expect(lines == ["title": 2, "hidden": 6, "quoted.key": 10, "cluster": 11, "cluster.servers": 12,
                          "cluster.a": 13, "cluster.a.b": 13, "cluster.a.b.c": 13, "jobs": 14, "jobs.name": 15])
        // The finder agrees with TOMLKit on what the keys are (arrays of tables aside).
        let doc = try TOMLDocument(text: text.replacingOccurrences(of: "[[jobs]]\nname = \"j \\\" k = 1\"", with: ""), source: "t")
        for key in doc.values.keys { #expect(doc.line(of: key) != nil, "\(key)") }
        #expect(doc.line(of: "cluster.servers") == 12 && doc.line(of: "cluster.nothing.here") == 11 && doc.line(of: "nope") == nil)
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

    /// Unknown keys and wrong types are errors naming the file, the line that defines the key
    /// (found past multi-line arrays and strings, and inside inline tables) and the key.
    @Test(arguments: [
        ("seed = 1\n[cluster]\nservrs = 2", "x.toml:3: cluster.servrs is not a known setting"),
        ("[model]\nhidden = [\n  64,\n  32,\n]\nnmae = \"din\"", "x.toml:6: model.nmae is not a known setting"),
        ("notes = \"\"\"\nservers = 9\n\"\"\"\n[cluster]\nservers = 2\nbogus = 1", "x.toml:6: cluster.bogus is not a known setting"),
        ("cluster = {servers = 2, mood = \"x\"}", "x.toml:1: cluster.mood is not a known setting"),
        ("[cluster]\nservers = \"two\"", "x.toml:2: cluster.servers must be an integer"),
        ("[model]\nname = \"din\"\nhidden = [64, \"x\"]", "x.toml:3: model.hidden must be an array of integers"),
        ("[optimizer.sparse]\nkind = \"sgd\"\nlr = \"fast\"", "x.toml:3: optimizer.sparse.lr must be a number"),
        ("[checkpoint]\ndir = \"c\"\nat_end = 1", "x.toml:3: checkpoint.at_end must be true or false"),
    ])
    func configErrorsNameFileLineAndKey(text: String, expected: String) {
        do {
            _ = try RunConfig(toml: TOMLDocument(text: text, source: "x.toml"))
            Issue.record("accepted \(text)")
        } catch let e as HeedError {
            #expect(e.code == .config && e.message == expected)
        } catch { Issue.record("unexpected \(error)") }
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
