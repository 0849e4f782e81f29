import ArgumentParser
import Foundation
import HeedBench
import HeedCore
import HeedData

/// `heed bench prepare`: event rows parsed (and written) per second on one core, against a line scan of the same file.
struct BenchPrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Event rows parsed and written per second per core (Taobao and Amazon files) vs a plain line scan.",
        discussion: "Single-threaded, so rows/s is rows/s per core. The bound is reading the same lines without parsing them, measured in the same run."
    )

    @Option(name: .long, help: "Taobao UserBehavior CSV (plain or .gz).")
    var taobao: String?

    @Option(name: .long, help: "Amazon S3-Rec sequence file, e.g. Beauty.txt.gz (rows = interactions).")
    var amazon: String?

    @Option(name: .long, help: "Minimum seconds per measurement (repeats the pass; the median is reported).")
    var seconds: Double = 1.0

    @Option(name: .long, help: "Scratch directory for decompressed copies and written columns.")
    var scratch: String = "/tmp"

    func run() throws {
        let shared = "/work/shared/data"
        let taobaoPath = taobao ?? firstExisting([shared + "/taobao-userbehavior-sample/UserBehavior_first814users.csv.gz",
                                                  "data/taobao-userbehavior-sample/UserBehavior.csv.gz"])
        let amazonPath = amazon ?? firstExisting([shared + "/amazon2014-beauty-sports-toys-s3rec/Beauty.txt.gz",
                                                  "data/amazon-beauty-sample/Beauty.txt.gz"])
        print("heed bench prepare: one thread (rows/s = rows/s per core); median of repeated passes of >= \(seconds) s in total")
        var worst = Double.infinity
        for (name, kind, path) in [("taobao", PrepareOptions.Dataset.taobao, taobaoPath), ("amazon", .amazonBeauty, amazonPath)] {
            guard let path else { print("  \(name): no input file found (pass --\(name) FILE)"); continue }
            do {
                worst = min(worst, try bench(name: name, kind: kind, path: path))
            } catch let e as HeedError {
                printError(e.description)
                throw ExitCode(1)
            }
        }
        let target = 1_000_000.0
        guard worst.isFinite else { return }
        print("target >= \(String(format: "%.1f", target / 1e6))M rows/s/core for event files: slowest file parse + write (from gzip) \(String(format: "%.2f", worst / 1e6))M rows/s -> \(worst >= target ? "met" : "NOT met")")
    }

    /// Benchmarks one file; returns the parse + write rate from the gzip file (the slower input).
    func bench(name: String, kind: PrepareOptions.Dataset, path: String) throws -> Double {
        let plain = scratch + "/heed-bench-\(name)-\(getpid()).txt"
        let columns = scratch + "/heed-bench-\(name)-\(getpid()).cols"
        defer { unlink(plain); unlink(columns) }
        try PrepareBench.decompress(path, to: plain)
        let info = try PrepareBench.parse(dataset: kind, path: plain)
        let bytes = try PrepareBench.scanLines(path: plain).bytes
        print("\(name): \(path) — \(info.rows) event rows, \(bytes) bytes decompressed")
        print("  input  pass                 rows/s        MB/s (text)  vs line scan")
        let lines = try PrepareBench.scanLines(path: plain).rows
        // One-user-per-line files hold several events per line: express the scan in event rows.
        let rowsPerLine = Double(info.rows) / Double(max(1, lines))
        var gzipWrite = 0.0
        for (label, file) in [("gzip ", path), ("plain", plain)] {
            let scan = try measure { try PrepareBench.scanLines(path: file).rows } * rowsPerLine
            let parse = try measure { try PrepareBench.parse(dataset: kind, path: file).rows }
            let write = try measure { try PrepareBench.parseAndWrite(dataset: kind, path: file, output: columns).rows }
            for (pass, rate) in [("line scan (bound)", scan), ("parse", parse), ("parse + write", write)] {
                let mbps = rate * Double(bytes) / Double(info.rows) / 1e6
                print("  \(label)  \(pass.padding(toLength: 18, withPad: " ", startingAt: 0)) \(String(format: "%12.0f   %10.1f   %6.2f", rate, mbps, rate / scan))")
            }
            if label == "gzip " { gzipWrite = write }
        }
        return gzipWrite
    }

    /// Rows per second of `pass`, median over repetitions filling `seconds`.
    func measure(_ pass: () throws -> Int) throws -> Double {
        var rates: [Double] = []
        var total = 0.0
        while total < seconds || rates.count < 3 {
            let t0 = PrepareBench.now()
            let rows = try pass()
            let dt = PrepareBench.now() - t0
            total += dt
            rates.append(Double(rows) / dt)
        }
        rates.sort()
        return rates[rates.count / 2]
    }

    private func firstExisting(_ paths: [String]) -> String? {
        paths.first { FileManager.default.fileExists(atPath: $0) }
    }
}
