#if canImport(Glibc)
import Glibc
#endif

/// The exit statuses of `heed train` and the role commands (README, "Exit status").
enum ExitStatus {
    /// The run completed (this process did its part).
    static let completed: Int32 = 0
    /// An error: bad input or config, a lost peer, a role of the local cluster that died.
    static let failed: Int32 = 1
    /// The coordinator ended the run because a role went silent, left or failed.
    static let runFailed: Int32 = 3
    /// Stopped cleanly by a signal: 128 + its number, what a shell reports for a process
    /// the signal killed (130 for SIGINT, 143 for SIGTERM).
    static func stopped(by signal: Int32) -> Int32 { 128 + signal }

    /// `SIGINT`, `SIGTERM` or the number.
    static func name(of signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(signal)"
        }
    }
}
