#if canImport(Glibc)
import Glibc
#endif
import HeedCore

/// A child process started with `posix_spawn` in its own process group, so a Ctrl-C at
/// the terminal reaches only the launcher, which then shuts children down gracefully.
/// The launcher signals only the pids it started.
final class ChildProcess {
    /// What the child runs as, for messages (`server 1`).
    let label: String
    let pid: pid_t
    private(set) var exitStatus: Int32?

    /// Spawns `executable` with `arguments`; stdout/stderr are inherited.
    init(label: String, executable: String, arguments: [String]) throws {
        self.label = label
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, nil, &attributes, argv, environ)
        guard rc == 0 else {
            throw HeedError(.io, "cannot start \(label) (\(executable)): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    /// Non-blocking check; returns the exit status once the child has ended
    /// (128 + signal number when killed by a signal).
    func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc == pid else { return nil }
        exitStatus = Self.exitStatus(fromWaitStatus: status)
        return exitStatus
    }

    /// Blocks until the child ends; returns its exit status (as `poll`) and its peak
    /// resident set size in bytes (`wait4`'s `ru_maxrss`), what `heed bench` reports.
    func waitReportingPeakResident() -> (status: Int32, peakResidentBytes: Int) {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) == -1 && errno == EINTR {}
        let decoded = Self.exitStatus(fromWaitStatus: status)
        exitStatus = decoded
        return (decoded, Int(usage.ru_maxrss) * 1024)
    }

    /// A `wait` status as a shell reports it: the exit code, or 128 + the signal's number.
    private static func exitStatus(fromWaitStatus status: Int32) -> Int32 {
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        return signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
    }

    /// Sends `signal` if the child is still running.
    func send(_ signal: Int32) {
        if poll() == nil { kill(pid, signal) }
    }
}
