import Foundation
import Testing
@testable import HeedObserve

struct RunEventLogTests {
    static func directory() -> String {
        NSTemporaryDirectory() + "heed-events-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Lines of the file as JSON objects (a line that does not parse fails the test).
    static func objects(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return try #require(object, "not a JSON object: \(line)")
        }
    }

    @Test func everyLineCarriesTimeRoleRankAndEvent() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let identity = RoleIdentity(role: "worker")
        let log = RunEventLog(runDirectory: dir, identity: identity)
        identity.assign(rank: 3)
        try log.open()
        let before = Date().timeIntervalSince1970
        log.write("step", ["step": .int(7), "loss": .double(0.5), "samples_per_s": .double(1234.5), "pull_ms": .number(nil),
                           "detail": .string("a \"quoted\"\nline\u{1}")])
        log.close()
        let lines = try Self.objects(dir + "/metrics/worker-3.jsonl")
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        let t = try #require(line["t"] as? Double)
        #expect(t >= before - 1 && t <= Date().timeIntervalSince1970 + 1)
        #expect(line["role"] as? String == "worker" && line["rank"] as? Int == 3 && line["event"] as? String == "step")
        #expect(line["step"] as? Int == 7 && line["loss"] as? Double == 0.5 && line["samples_per_s"] as? Double == 1234.5)
        #expect(line["pull_ms"] is NSNull)
        #expect(line["detail"] as? String == "a \"quoted\"\nline\u{1}")
    }

    /// Many threads writing at once: every line is whole (one write per line), none lost.
    @Test func concurrentWritersNeverInterleaveLines() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = RunEventLog(runDirectory: dir, identity: RoleIdentity(role: "coordinator"))
        try log.open()
        let long = String(repeating: "x", count: 5000)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<200 { log.write("failure", ["detail": .string(long), "i": .int(thread * 1000 + i)]) }
        }
        log.close()
        let lines = try Self.objects(dir + "/metrics/coordinator-0.jsonl")
        #expect(lines.count == 1600)
        #expect(Set(lines.compactMap { $0["i"] as? Int }).count == 1600)
        #expect(lines.allSatisfy { ($0["detail"] as? String)?.count == 5000 })
    }

    @Test func aLogWithoutRunDirectoryWritesNothing() throws {
        let log = RunEventLog(runDirectory: nil, identity: RoleIdentity(role: "server", rank: 0))
        try log.open()
        log.write("start")
        #expect(log.path == nil)
    }
}
