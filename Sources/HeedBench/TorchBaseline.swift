import Foundation
import HeedCore

/// The PyTorch side of `heed bench din`: `scripts/torch_din.py` run by a Python that can
/// import torch. Nothing in Heed needs PyTorch; when no such Python is found the bench says
/// why and measures Heed alone.
public enum TorchBaseline {
    /// One variant's figures, as the script prints them (one JSON object per line).
    public struct Result: Decodable, Sendable, Equatable {
        /// `padded`, `realpos` or `compiled`.
        public var variant: String
        public var threads: Int
        /// Samples per wall second in the timed training loop.
        public var samplesPerSecond: Double
        /// Samples per CPU second of the whole Python process in the same loop.
        public var samplesPerCPUSecond: Double
        /// Test AUC after one epoch.
        public var testAUC: Double
        public var torch: String

        enum CodingKeys: String, CodingKey {
            case variant, threads, torch
            case samplesPerSecond = "samples_per_s"
            case samplesPerCPUSecond = "samples_per_cpu_s"
            case testAUC = "test_auc"
        }

        public init(variant: String, threads: Int, samplesPerSecond: Double, samplesPerCPUSecond: Double, testAUC: Double, torch: String) {
            self.variant = variant
            self.threads = threads
            self.samplesPerSecond = samplesPerSecond
            self.samplesPerCPUSecond = samplesPerCPUSecond
            self.testAUC = testAUC
            self.torch = torch
        }
    }

    /// Whether a usable Python was found.
    public enum Availability: Sendable, Equatable {
        /// `python` imports torch `version`.
        case available(python: String, version: String)
        /// Why the PyTorch side is skipped (no Python given, not found, torch not importable).
        case unavailable(String)
    }

    /// How to get a Python with torch, for the message printed when there is none.
    public static let installHint =
        "python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch numpy, then pass --python /tmp/torch-venv/bin/python or set HEED_TORCH_PYTHON"

    /// Checks that `python` (else `$HEED_TORCH_PYTHON`, else `python3` on the PATH) imports
    /// torch and numpy.
    public static func probe(python: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> Availability {
        let candidate = python ?? environment["HEED_TORCH_PYTHON"] ?? "python3"
        let source = python != nil ? "--python" : environment["HEED_TORCH_PYTHON"] != nil ? "HEED_TORCH_PYTHON" : "the PATH"
        guard let executable = resolve(candidate) else {
            return .unavailable("no Python at '\(candidate)' (from \(source))")
        }
        do {
            let out = try runCapturing(executable, ["-c", "import numpy, torch; print(torch.__version__)"], passStderr: false)
            guard out.status == 0 else {
                let why = out.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(out.status)"
                return .unavailable("\(executable) (from \(source)) cannot import torch and numpy: \(why)")
            }
            return .available(python: executable, version: out.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            return .unavailable("\(executable) (from \(source)) did not run: \(error)")
        }
    }

    /// Runs the script; its progress and warnings go to this process's stderr.
    ///
    /// - Returns: one result per variant, in the order printed.
    /// - Throws: `HeedError(.io)` if the script fails or prints a line that is not a result.
    public static func run(python: String, script: String, arguments: [String]) throws -> [Result] {
        let out = try runCapturing(python, [script] + arguments, passStderr: true)
        guard out.status == 0 else {
            throw HeedError(.io, "\(script) exited with status \(out.status)")
        }
        return try parse(out.stdout, script: script)
    }

    /// The results in `stdout`: one JSON object per non-empty line.
    public static func parse(_ stdout: String, script: String) throws -> [Result] {
        try stdout.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.enumerated().map { i, line in
            do {
                return try JSONDecoder().decode(Result.self, from: Data(line.utf8))
            } catch {
                throw HeedError(.io, "\(script): output line \(i + 1) is not a result: \(line.prefix(200))")
            }
        }
    }

    /// `name` as an executable path: itself if it contains a slash, else looked up on the PATH.
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `executable` to completion; stdout is captured, stderr captured or passed through.
    static func runCapturing(_ executable: String, _ arguments: [String], passStderr: Bool) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = passStderr ? FileHandle.standardError : stderr
        try process.run()
        // stderr is drained on another thread so neither pipe can fill up and stall the child.
        let errorBox = LockedBox(Data())
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            if !passStderr { errorBox.set(stderr.fileHandleForReading.readDataToEndOfFile()) }
            drained.signal()
        }
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        drained.wait()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errorBox.get(), as: UTF8.self))
    }
}
