import Foundation
import HeedBench
import HeedCore
import Testing

/// The PyTorch side's plumbing, without PyTorch: finding a usable Python, reading the
/// script's results, and failing clearly on anything else.
@Suite struct TorchBaselineTests {
    /// An executable shell script standing in for Python.
    func fakePython(_ body: String) throws -> String {
        let path = NSTemporaryDirectory() + "heed-fake-python-\(UUID().uuidString)"
        try Data(("#!/bin/sh\n" + body + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        return path
    }

    @Test func probeReportsWhyTorchIsUnusable() throws {
        #expect(TorchBaseline.probe(python: "/no/such/python") == .unavailable("no Python at '/no/such/python' (from --python)"))
        let broken = try fakePython("echo \"ModuleNotFoundError: No module named 'torch'\" >&2; exit 1")
        defer { try? FileManager.default.removeItem(atPath: broken) }
        #expect(TorchBaseline.probe(python: broken) == .unavailable("\(broken) (from --python) cannot import torch and numpy: ModuleNotFoundError: No module named 'torch'"))
        let fromEnvironment = TorchBaseline.probe(python: nil, environment: ["HEED_TORCH_PYTHON": "/no/such/python"])
        #expect(fromEnvironment == .unavailable("no Python at '/no/such/python' (from HEED_TORCH_PYTHON)"))
        let working = try fakePython("echo 2.15.0+cpu")
        defer { try? FileManager.default.removeItem(atPath: working) }
        #expect(TorchBaseline.probe(python: working) == .available(python: working, version: "2.15.0+cpu"))
    }

    @Test func parsesOneResultPerLineAndRejectsOtherOutput() throws {
        let line = #"{"variant": "compiled", "threads": 2, "samples_per_s": 21000.5, "samples_per_cpu_s": 11000.25, "timed_samples": 79018, "seconds": 3.7, "cpu_seconds": 7.1, "test_auc": 0.6705, "epochs": 2, "torch": "2.15.0"}"#
        let results = try TorchBaseline.parse("\n" + line + "\n\n", script: "t.py")
        #expect(results == [TorchBaseline.Result(variant: "compiled", threads: 2, samplesPerSecond: 21000.5, samplesPerCPUSecond: 11000.25,
                                                 testAUC: 0.6705, torch: "2.15.0")])
        #expect(throws: HeedError.self) { try TorchBaseline.parse(line + "\nWarning: something\n", script: "t.py") }
        do {
            _ = try TorchBaseline.parse(line + "\nWarning: something\n", script: "t.py")
        } catch let error as HeedError {
            #expect("\(error)".contains("t.py: output line 2 is not a result: Warning: something"), "\(error)")
        }
    }

    @Test func aFailingScriptIsAnError() throws {
        let failing = try fakePython("exit 4")
        defer { try? FileManager.default.removeItem(atPath: failing) }
        #expect(throws: HeedError.self) { try TorchBaseline.run(python: failing, script: "t.py", arguments: []) }
    }
}
