import ArgumentParser
import HeedCore
import HeedReport

/// `heed report RUN_DIR`: the run's metrics log drawn as one HTML page.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draw a run's metrics log as one self-contained HTML page (inline SVG plots, no scripts).",
        discussion: """
        Reads RUN_DIR/metrics/*.jsonl (the format is in docs/metrics-log.md) and plots loss over steps per \
        worker, AUC per epoch, samples/s per worker and in total, resident memory per role, and checkpoints, \
        failures and restarts on the time axis. Works on a run that ended early or is still writing. The page \
        is written to a temporary file and renamed, so a reader never sees half of it.
        """)

    @Argument(help: "The run directory (holds metrics/).") var runDirectory: String
    @Option(help: "Where to write the page (default: RUN_DIR/report.html).") var out: String?

    func run() throws {
        let log = try MetricsLog(runDirectory: runDirectory)
        let page = RunReport(log: log, runDirectory: runDirectory).html()
        let path = out ?? (runDirectory.hasSuffix("/") ? runDirectory : runDirectory + "/") + "report.html"
        do {
            try FileOps.writeAtomically(Array(page.utf8), to: path)
        } catch {
            throw HeedError(.io, "cannot write the report to \(path): \(error)")
        }
        print("\(path): \(log.records.count) records from \(log.files.count) metrics file\(log.files.count == 1 ? "" : "s")")
    }
}
