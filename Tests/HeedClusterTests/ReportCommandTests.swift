import Foundation
import Testing

/// `heed report` as a user runs it: the page lands whole where asked, or the command fails
/// with a clear message, a non-zero exit and nothing half-written.
@Suite struct ReportCommandTests {
    /// A run directory with a small metrics log (a worker and the coordinator).
    static func runDirectory() throws -> String {
        let run = NSTemporaryDirectory() + "heed-report-cmd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: run + "/metrics", withIntermediateDirectories: true)
        let worker = (1...5).map { #"{"t":\#(1_796_083_200 + $0),"role":"worker","rank":0,"event":"step","step":\#($0),"loss":0.6,"samples_per_s":900}"# }
        try Data((worker.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: run + "/metrics/worker-0.jsonl"))
        let coordinator = #"{"t":1796083203.5,"role":"coordinator","rank":0,"event":"checkpoint","step":3}"# + "\n"
        try Data(coordinator.utf8).write(to: URL(fileURLWithPath: run + "/metrics/coordinator-0.jsonl"))
        return run
    }

    /// Names in `directory` that look like an interrupted atomic write.
    static func temporaries(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.contains(".tmp-") }
    }

    @Test func writesTheWholePageIntoTheRunDirectory() async throws {
        let run = try Self.runDirectory()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let r = try LauncherTests.Run(["report", run])
        #expect(await r.exit(within: 60) == 0, "\(r.output)")
        let page = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
        #expect(page.components(separatedBy: "<svg").count - 1 == 2)   // loss and samples/s; no epochs, no memory
        #expect(r.output.contains("report.html: 6 records from 2 metrics files"))
        #expect(Self.temporaries(in: run).isEmpty)
    }

    /// An output directory that does not exist, an output path that is a directory, and a
    /// run without a metrics log: each a clear error and a non-zero exit, nothing written.
    @Test func failsClearlyAndLeavesNothingHalfWritten() async throws {
        let run = try Self.runDirectory()
        defer { try? FileManager.default.removeItem(atPath: run) }

        let missing = run + "/no/such/dir/report.html"
        let a = try LauncherTests.Run(["report", run, "--out", missing])
        #expect(await a.exit(within: 60) != 0)
        #expect(a.output.contains("cannot write the report to \(missing)"), "\(a.output)")
        #expect(!FileManager.default.fileExists(atPath: run + "/no"))

        // The rename onto a directory fails after the page was written to its temporary name:
        // the temporary file must be gone.
        try FileManager.default.createDirectory(atPath: run + "/taken.html", withIntermediateDirectories: false)
        let b = try LauncherTests.Run(["report", run, "--out", run + "/taken.html"])
        #expect(await b.exit(within: 60) != 0)
        #expect(b.output.contains("cannot write the report to \(run)/taken.html"), "\(b.output)")
        #expect(Self.temporaries(in: run).isEmpty, "\(Self.temporaries(in: run))")
        #expect(!FileManager.default.fileExists(atPath: run + "/report.html"))

        let c = try LauncherTests.Run(["report", run + "/metrics"])
        #expect(await c.exit(within: 60) != 0)
        #expect(c.output.contains("no metrics directory"), "\(c.output)")
    }
}
