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
