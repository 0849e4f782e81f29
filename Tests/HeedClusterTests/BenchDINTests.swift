import Foundation
import Testing

/// `heed bench din` without PyTorch: it must say so, point at how to get it, and still
/// measure Heed's side (no PyTorch is needed by any test).
@Suite struct BenchDINTests {
    @Test func withoutTorchItSaysSoAndMeasuresHeed() async throws {
        let data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 1)
        let missing = NSTemporaryDirectory() + "heed-no-python-\(UUID().uuidString)/python"
        let r = try LauncherTests.Run(["bench", "din", "--data", data, "--python", missing, "--threads", "1",
                                       "--max-steps", "3", "--skip-cluster"])
        #expect(await r.exit(within: 120) == 0, "\(r.output)")
        #expect(r.output.contains("pytorch: NOT MEASURED — no Python at '\(missing)' (from --python)"), "\(r.output)")
        #expect(r.output.contains("HEED_TORCH_PYTHON"), "\(r.output)")
        // Heed's row: one thread, a positive rate and a test AUC.
        let row = r.output.split(separator: "\n").first { $0.hasPrefix("1 ") && $0.contains("heed in-process") }
        #expect(row != nil, "\(r.output)")
        let fields = row.map { $0.split(separator: " ", omittingEmptySubsequences: true) } ?? []
        #expect(fields.count == 6 && (Double(fields[3]) ?? 0) > 0 && (Double(fields[5]).map { $0 > 0 && $0 < 1 } ?? false), "\(row ?? "")")
        #expect(!r.output.contains("pytorch padded") && r.output.contains("no PyTorch figure to compare with"), "\(r.output)")
    }
}
