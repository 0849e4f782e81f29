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

    @Option(name: .long, help: ArgumentHelp("Instead: prepare synthetic logs of these sizes (e.g. 1M,10M,100M) with `heed prepare` as a child process.",
                                            discussion: "The generator is SyntheticEventLog (seeded, documented in docs/data-format.md). Prints events/s, peak resident bytes per event, output bytes per record and the ratio to the line scan of the same file."))
    var scale: String?

    @Option(name: .long, parsing: .singleValue, help: "With --scale: an extra argument for every `heed prepare` (repeat it).")
    var prepareArg: [String] = []

    @Flag(name: .long, help: "With --scale: keep the generated logs and prepared datasets in --scratch.")
    var keep = false

    func run() throws {
        if let scale {
            try runScale(sizes: try Self.parseSizes(scale))
            return
        }
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

    /// `1M,10M,250k,5000` as event counts.
    static func parseSizes(_ text: String) throws -> [Int] {
        try text.split(separator: ",").map { part in
            let t = part.trimmingCharacters(in: .whitespaces).lowercased()
            let (digits, factor): (Substring, Int) = t.hasSuffix("m") ? (t.dropLast(), 1_000_000) : t.hasSuffix("k") ? (t.dropLast(), 1_000) : (Substring(t), 1)
            guard let n = Int(digits), n >= 1, n <= 10_000_000_000 / factor else {
                throw ValidationError("--scale: '\(part)' is not an event count (like 1M, 250k or 5000)")
            }
            return n * factor
        }
    }

    /// Generates each synthetic log, scans it (the bound), prepares it with `heed prepare` as a
    /// child process and prints one row per size.
    func runScale(sizes: [Int]) throws {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        print("heed bench prepare --scale: synthetic generic logs (SyntheticEventLog, seed 1), `heed prepare --dataset generic` as a child process\(prepareArg.isEmpty ? "" : " with " + prepareArg.joined(separator: " "))")
        print("  events      users  file MB  gen s  scan ev/s   prepare s  events/s  vs scan  peak RSS MB  B/event  records     output MB  B/record")
        for n in sizes {
            let log = SyntheticEventLog(events: n)
            let csv = scratch + "/heed-scale-\(n).csv"
            let out = scratch + "/heed-scale-\(n).prepared"
            defer { if !keep { unlink(csv); FileOps.removeTree(out) } }
            let t0 = PrepareBench.now()
            let bytes = try log.write(to: csv)
            let generated = PrepareBench.now() - t0
            let t1 = PrepareBench.now()
            _ = try PrepareBench.scanLines(path: csv)
            let scanRate = Double(n) / (PrepareBench.now() - t1)
            fflush(stdout)  // our rows before the child's progress lines
            let t2 = PrepareBench.now()
            let child = try ChildProcess(label: "heed prepare", executable: exe,
                                         arguments: ["prepare", "--dataset", "generic", "--events", csv, "--out", out, "--overwrite"] + prepareArg)
            let (status, peak) = child.waitReportingPeakResident()
            let seconds = PrepareBench.now() - t2
            guard status == 0 else {
                printError("heed bench prepare: `heed prepare` of the \(n)-event log exited with status \(status) after \(String(format: "%.1f", seconds)) s (peak resident \(peak >> 20) MiB)")
                throw ExitCode(1)
            }
            let manifest = try DatasetManifest.load(directory: out)
            let shards = Split.allCases.flatMap { manifest.shards($0) }
            let records = shards.reduce(0) { $0 + $1.records }
            let outBytes = shards.reduce(0) { $0 + $1.bytes }
            let rate = Double(n) / seconds
            print(String(format: "  %-10d %6d  %7.0f  %5.1f  %9.0f   %9.1f  %8.0f  %7.3f  %11.0f  %7.0f  %-10d %9.0f  %8.1f",
                         n, log.users, Double(bytes) / 1e6, generated, scanRate, seconds, rate, rate / scanRate,
                         Double(peak) / 1_048_576, Double(peak) / Double(n), records, Double(outBytes) / 1e6, Double(outBytes) / Double(max(1, records))))
            fflush(stdout)
        }
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
