import ArgumentParser
import Foundation
import HeedCore
import HeedData

/// `heed prepare`: Turn raw shop logs into sharded binary training samples.
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Turn raw shop logs into sharded binary training samples.",
        discussion: """
        Datasets: \(PrepareOptions.Dataset.allCases.map(\.rawValue).joined(separator: ", ")).
        Example: heed prepare --dataset amazon-beauty --input data/amazon-beauty-sample --out out/beauty
        The generic schema (docs/data-format.md) reads --events (user,item[,event][,timestamp][,rating][,price][,category][,tags]),
        --items (item[,category][,price][,brand][,tags][,title]) and --social (user,friend), CSV or TSV, optionally gzipped.
        """
    )

    @Option(name: .long, help: "Dataset kind (see the list above).")
    var dataset: String?

    @Option(name: .long, help: "Dataset folder (or the event file itself).")
    var input: String?

    @Option(name: .long, help: "Output dataset directory.")
    var out: String?

    @Option(name: .long, help: "Record protocol: ctr (positive + one sampled negative per position) or seq (next-item).")
    var `protocol`: String = "ctr"

    @Option(name: .long, help: "Split: loo (leave-one-out per user) or time.")
    var split: String = "loo"

    @Option(name: .customLong("valid-from"), help: "Time split: start of validation (Unix seconds or YYYY-MM-DD); default 80% quantile.")
    var validFrom: String?

    @Option(name: .customLong("test-from"), help: "Time split: start of test (Unix seconds or YYYY-MM-DD); default 90% quantile.")
    var testFrom: String?

    @Option(name: .long, help: "Shards per split.")
    var shards: Int = 1

    @Option(name: .customLong("max-len"), help: "Behaviour history cap (most recent kept).")
    var maxLen: Int = 50

    @Option(name: .long, help: "Seed for negative sampling and shard assignment.")
    var seed: UInt64 = 1

    @Option(name: .customLong("price-levels"), help: "Price-level buckets within a category.")
    var priceLevels: Int = 10

    @Option(name: .customLong("target-events"), help: "Comma-separated event types that become targets (e.g. buy); history keeps all.")
    var targetEvents: String?

    @Option(name: .long, help: "Event file (overrides the dataset's default; required for generic without --input).")
    var events: String?

    @Option(name: .long, help: "Item file override.")
    var items: String?

    @Option(name: .long, help: "Social links file override.")
    var social: String?

    @Option(name: .long, help: "User attribute file override (Complete Journey demographics).")
    var users: String?

    @Option(name: .customLong("positive-rating"), help: "With ratings (Ciao, generic 'rating' column): an event rated at least this is a positive (click 1), a lower-rated one a labelled negative (click 0).")
    var positiveRating: Double?

    @Option(name: .customLong("shard-format"), help: "Sample shard format: 2 (compact: each record refers to its user's sequence, stored once; default) or 1 (every record stores its history; read by older builds).")
    var shardFormat = 2

    @Option(name: .customLong("memory-budget"), help: "Stay within about this much memory: events are sorted by user and time in runs that fit, spilled beside the output and merged (e.g. 512M, 4G; 'unbounded' keeps every event in memory). The id maps stay resident; see docs/data-format.md.")
    var memoryBudget = "4G"

    @Option(name: .long, help: "Threads that build records (the output is the same for any count; default: every core).")
    var threads: Int?

    @Flag(name: .customLong("skip-bad-rows"), help: "Skip bad rows and report counts per error class instead of failing.")
    var skipBadRows = false

    @Flag(name: .long, help: "Replace an existing output directory.")
    var overwrite = false

    @Option(name: .long, help: "Print a shard's header, counts and feature slots (or a dataset directory's manifest) and exit.")
    var describe: String?

    func run() throws {
        do {
            if let describe {
                print(try Preparer.describe(path: describe))
                return
            }
            let options = try makeOptions()
            let meter = PrepareProgress(bytesTotal: Preparer.inputBytes(options))
            let drawing = ProgressLine(meter: meter)
            drawing.start()
            let manifest: DatasetManifest
            do {
                manifest = try Preparer.prepare(options, meter: meter) { line in drawing.pause { print("heed prepare: \(line)") } }
                drawing.stop()
            } catch {
                drawing.stop()
                throw error
            }
            let s = manifest.stats
            if !s.filtered.isEmpty {
                print("heed prepare: filtered " + s.filtered.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
            if options.skipBadRows {
                let counts = s.badRows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                print("heed prepare: skipped bad rows: " + (counts.isEmpty ? "none" : counts.joined(separator: " ")))
            }
        } catch let e as HeedError {
            printError(e.description)
            throw ExitCode(1)
        }
    }

    /// Reads the flags into typed options once.
    func makeOptions() throws -> PrepareOptions {
        guard let datasetName = dataset else { throw HeedError(.config, "--dataset is required (one of \(PrepareOptions.Dataset.allCases.map(\.rawValue).joined(separator: ", ")))") }
        guard let kind = PrepareOptions.Dataset(rawValue: datasetName) else {
            throw HeedError(.config, "unknown dataset '\(datasetName)' (one of \(PrepareOptions.Dataset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let out else { throw HeedError(.config, "--out is required") }
        var o = PrepareOptions(dataset: kind, input: input, output: out)
        guard let p = PrepareOptions.SampleProtocol(rawValue: `protocol`) else { throw HeedError(.config, "--protocol must be ctr or seq (got \(`protocol`))") }
        o.sampleProtocol = p
        switch split {
        case "loo": o.split = .leaveOneOut
        case "time": o.split = .time(validFrom: try validFrom.map { try Self.time($0, "--valid-from") }, testFrom: try testFrom.map { try Self.time($0, "--test-from") })
        default: throw HeedError(.config, "--split must be loo or time (got \(split))")
        }
        if split != "time" && (validFrom != nil || testFrom != nil) { throw HeedError(.config, "--valid-from/--test-from need --split time") }
        o.shards = shards
        o.maxLength = maxLen
        o.seed = seed
        o.priceLevels = priceLevels
        o.events = events
        o.items = items
        o.social = social
        o.users = users
        o.skipBadRows = skipBadRows
        o.overwrite = overwrite
        o.positiveRating = positiveRating
        o.shardFormat = shardFormat
        o.memoryBudget = try Self.byteSize(memoryBudget, "--memory-budget")
        if let threads { o.threads = threads }
        if let targetEvents {
            var set = Set<EventType>()
            for name in targetEvents.split(separator: ",") {
                var s = String(name)
                guard let t = s.withUTF8({ EventType.parse($0, 0, $0.count) }) else {
                    throw HeedError(.config, "--target-events: unknown event type '\(name)' (accepted: \(EventType.acceptedNames))")
                }
                set.insert(t)
            }
            o.targetEvents = set
        }
        return o
    }

    /// Parses a size flag: bytes with an optional binary suffix (k, M, G, T; `KiB`/`KB` alike),
    /// or `unbounded` (nil).
    static func byteSize(_ text: String, _ flag: String) throws -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.lowercased() == "unbounded" { return nil }
        var digits = Substring(t)
        var unit = 1
        for (suffixes, scale) in [(["tib", "tb", "t"], 1 << 40), (["gib", "gb", "g"], 1 << 30), (["mib", "mb", "m"], 1 << 20), (["kib", "kb", "k"], 1 << 10), (["b"], 1)] {
            if let s = suffixes.first(where: { t.lowercased().hasSuffix($0) }) {
                digits = t.dropLast(s.count)
                unit = scale
                break
            }
        }
        guard let v = Double(digits.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0, v * Double(unit) < 9e18 else {
            throw HeedError(.config, "\(flag): '\(text)' is not a size (like 512M, 4G or 'unbounded')")
        }
        return Int(v * Double(unit))
    }

    /// Parses a time flag: Unix seconds or a date / date-time.
    static func time(_ text: String, _ flag: String) throws -> Int64 {
        var s = text
        guard let v = s.withUTF8({ ByteParse.timestamp($0, 0, $0.count) }) else {
            throw HeedError(.config, "\(flag): '\(text)' is neither Unix seconds nor YYYY-MM-DD[ HH:MM:SS]")
        }
        return v
    }
}

/// Draws a `PrepareProgress` for a person: on a terminal one line on stderr rewritten in place
/// twice a second; otherwise a plain line every 10 seconds (so short runs print none).
final class ProgressLine: @unchecked Sendable {
    // Sendable: `running` and the drawn state are guarded by `lock`.
    private let meter: PrepareProgress
    private let lock = NSLock()
    private var running = false
    private var drawn = false
    private let terminal = isatty(STDERR_FILENO) != 0
    private var thread: Thread?

    init(meter: PrepareProgress) { self.meter = meter }

    /// Starts redrawing on a background thread.
    func start() {
        lock.withLock { running = true }
        let t = Thread { [self] in
            let period = terminal ? 0.5 : 10.0
            var next = PrepareProgress.monotonicSeconds() + period
            while lock.withLock({ running }) {
                Thread.sleep(forTimeInterval: 0.1)
                guard PrepareProgress.monotonicSeconds() >= next else { continue }
                next += period
                draw()
            }
        }
        thread = t
        t.start()
    }

    private func draw() {
        let text = PrepareProgress.line(meter.snapshot())
        lock.withLock {
            guard running else { return }
            if terminal {
                FileHandle.standardError.write(Data(("\r\u{1B}[K heed prepare: " + text).utf8))
                drawn = true
            } else {
                FileHandle.standardError.write(Data(("heed prepare: " + text + "\n").utf8))
            }
        }
    }

    /// Clears the drawn line around `body` (which prints whole lines).
    func pause(_ body: () -> Void) {
        lock.withLock {
            if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); drawn = false }
            body()
            fflush(stdout)
        }
    }

    /// Stops and clears the line.
    func stop() {
        lock.withLock {
            running = false
            if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); drawn = false }
        }
    }
}
