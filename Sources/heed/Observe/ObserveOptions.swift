import ArgumentParser
import Foundation
import HeedCore
import Logging

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Flags for watching a process, shared by `heed train` and the role commands: log
/// level, run directory (the metrics log) and the Prometheus listener.
struct ObserveOptions: ParsableArguments {
    @Option(help: "Least severe log level shown: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info
    @Option(help: "Run directory: the metrics log goes to DIR/metrics/<role>-<rank>.jsonl (default runs/<UTC time>; 'none' = no metrics log).")
    var runDir: String?
    @Option(help: "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (0 = any free port, printed in the log; default: no listener).")
    var metricsPort: Int?
    @Option(help: "Address the metrics listener binds (IPv4).") var metricsAddress = "127.0.0.1"

    /// The run directory to use: `--run-dir` made absolute, nil for `none`, or a new
    /// `runs/<UTC time>` under the working directory (with a suffix if that exists).
    func runDirectory(creatingDefault: Bool) throws -> String? {
        if let runDir {
            if runDir == "none" { return nil }
            return runDir.hasPrefix("/") ? runDir : FileManager.default.currentDirectoryPath + "/" + runDir
        }
        let base = FileManager.default.currentDirectoryPath + "/runs/" + Self.timestamp()
        guard creatingDefault else { return base }
        try FileOps.makeDirectories(FileManager.default.currentDirectoryPath + "/runs")
        for n in 1...1000 {
            let path = n == 1 ? base : "\(base)-\(n)"
            if mkdir(path, 0o755) == 0 { return path }
            guard errno == EEXIST else { throw HeedError(.io, "cannot create the run directory \(path): \(String(cString: strerror(errno)))") }
        }
        throw HeedError(.io, "cannot find a free run directory name beside \(base)")
    }

    /// `20261207T101502Z`: UTC, sortable, no characters a shell or a URL minds.
    static func timestamp(_ date: Date = Date()) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }

    /// The flags to hand a child process so that it logs and writes into the same run.
    func childArguments(runDirectory: String?, metricsPort: Int?) -> [String] {
        var args = ["--log-level", logLevel.rawValue, "--run-dir", runDirectory ?? "none"]
        if let metricsPort { args += ["--metrics-port", "\(metricsPort)", "--metrics-address", metricsAddress] }
        return args
    }
}
