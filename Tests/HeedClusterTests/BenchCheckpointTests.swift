import Foundation
import HeedCore
import Testing

/// `heed bench checkpoint` end to end at a tiny size.
@Suite(.serialized) struct BenchCheckpointTests {
    typealias Run = LauncherTests.Run
    let scratch: String

    init() throws {
        scratch = NSTemporaryDirectory() + "heed-bench-ckpt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileOps.makeDirectories(scratch)
    }

    /// Tiny size: checks the fields are printed and the ratios are positive numbers (no timing assertions).
    @Test func benchCheckpointPrintsBothRatios() throws {
        defer { FileOps.removeTree(scratch) }
        let run = try Run(["bench", "checkpoint", "--rows", "20000", "--dim", "8", "--directory", scratch + "/bench", "--whole-file"])
        #expect(run.wait(seconds: 120) == 0, "\(run.output)")
        let output = run.output
        for field in ["checkpoint write (ParameterShard.save", "disk sequential write", "disk sequential read", "restore (streaming", "whole-file restore"] {
            #expect(output.contains(field), "missing '\(field)' in \(output)")
        }
        for label in ["ratio checkpoint write / disk write: ", "ratio restore / disk read: "] {
            let line = try #require(output.split(separator: "\n").first { $0.hasPrefix(label) }, "no '\(label)' in \(output)")
            let value = try #require(Double(line.dropFirst(label.count).split(separator: " ")[0]), "\(line)")
            #expect(value > 0 && value.isFinite, "\(line)")
        }
        // The bench removes its checkpoint and bandwidth file.
        #expect(FileOps.list(scratch + "/bench").isEmpty)
    }
}
