import Foundation
import HeedCore

/// Every record of a run's metrics log, `RUN_DIR/metrics/<role>-<rank>.jsonl`, read for a
/// report while the run may still be writing it.
///
/// A last line without its newline is a record being written (or cut off by a crash) and is
/// skipped quietly; other lines that cannot be read are skipped and counted, so one bad line
/// never hides a run.
public struct MetricsLog: Sendable {
    /// Records of all files, by time (stable for equal times: file order, then line order).
    public var records: [MetricsRecord]
    /// The files read, as names inside the metrics directory.
    public var files: [String]
    /// Per file, lines that were not usable records (with the first reason), for the notes.
    public var unreadable: [String: (count: Int, firstReason: String)]
    /// Files whose last line had no newline yet.
    public var truncatedFiles: [String]
    /// Lines of events this reader does not know, skipped as the contract says.
    public var ignoredLines: Int

    /// The metrics directory of a run directory.
    public static func directory(ofRun run: String) -> String {
        (run.hasSuffix("/") ? String(run.dropLast()) : run) + "/metrics"
    }

    /// Reads every `*.jsonl` file of `RUN_DIR/metrics`.
    /// - Throws: `HeedError(.notFound)` when the directory or its files are missing.
    public init(runDirectory: String) throws {
        let dir = Self.directory(ofRun: runDirectory)
        guard FileOps.isDirectory(dir) else {
            throw HeedError(.notFound, "\(dir): no metrics directory (a run writes its metrics log there; docs/metrics-log.md)")
        }
        let names = FileOps.list(dir).filter { $0.hasSuffix(".jsonl") }
        guard !names.isEmpty else { throw HeedError(.notFound, "\(dir): no metrics files (*.jsonl)") }
        var texts: [(String, Data)] = []
        for name in names {
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else {
                throw HeedError(.io, "\(dir)/\(name): cannot read")
            }
            texts.append((name, data))
        }
        self.init(files: texts)
    }

    /// Reads files given as (name, contents), in the given order.
    public init(files: [(name: String, contents: Data)]) {
        var all: [MetricsRecord] = []
        unreadable = [:]
        truncatedFiles = []
        ignoredLines = 0
        self.files = files.map(\.name)
        for (name, data) in files {
            let text = String(decoding: data, as: UTF8.self)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" {
                lines.removeLast()
            } else if !lines.isEmpty {
                lines.removeLast()
                truncatedFiles.append(name)
            }
            for line in lines where !line.allSatisfy(\.isWhitespace) {
                switch MetricsRecord.parse(line: line) {
                case .record(let r): all.append(r)
                case .ignored: ignoredLines += 1
                case .unreadable(let reason):
                    let old = unreadable[name] ?? (0, reason)
                    unreadable[name] = (old.count + 1, old.firstReason)
                }
            }
        }
        records = all.enumerated().sorted { a, b in
            a.element.time != b.element.time ? a.element.time < b.element.time : a.offset < b.offset
        }.map(\.element)
    }
}
