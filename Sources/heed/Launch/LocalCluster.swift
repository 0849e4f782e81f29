import Foundation
import HeedCore
#if canImport(Glibc)
import Glibc
#endif

/// A whole cluster as child processes of this one: a coordinator, S servers, W workers,
/// talking over `ipc://` sockets in a private directory or `tcp://127.0.0.1` ports.
final class LocalCluster {
    let config: RunConfig
    let binary: String
    let directory: String
    private(set) var children: [ChildProcess] = []
    /// The observe flags (run directory, log level, metrics port) for the child at an
    /// index: 0 the coordinator, then servers, then workers.
    let observe: (Int) -> [String]

    /// Prepares a private directory for sockets, the resolved config and metrics.
    init(config: RunConfig, binary: String, observe: @escaping (Int) -> [String] = { _ in [] }) throws {
        self.config = config
        self.binary = binary
        self.observe = observe
        var template = Array("/tmp/heed-run-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw HeedError(.io, "cannot create a run directory under /tmp")
        }
        directory = String(cString: dir)
    }

    /// Where worker 0 writes the test metrics.
    var metricsPath: String { directory + "/metrics.json" }

    /// Where worker `rank` writes its training figures.
    func figuresPath(rank: Int) -> String { directory + "/worker-\(rank)-figures.json" }

    /// Every worker's figures, once the run completed.
    func workerFigures() throws -> [WorkerFigures] {
        try (0..<config.cluster.workers).map { rank in
            guard let data = FileManager.default.contents(atPath: figuresPath(rank: rank)) else {
                throw HeedError(.io, "worker \(rank) wrote no training figures")
            }
            return try JSONDecoder().decode(WorkerFigures.self, from: data)
        }
    }

    private func address(_ name: String) throws -> String {
        if config.cluster.transport == "ipc" { return "ipc://\(directory)/\(name).ipc" }
        return "tcp://127.0.0.1:\(try freePort())"
    }

    /// Starts every role.
    func start() throws {
        let configPath = directory + "/run.json"
        try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: configPath))
        let coordinator = try address("coordinator")
        children.append(try ChildProcess(label: "coordinator", executable: binary,
                                         arguments: ["coordinator", "--listen", coordinator, "--resolved-config", configPath] + observe(0)))
        for k in 0..<config.cluster.servers {
            children.append(try ChildProcess(label: "server \(k)", executable: binary,
                                             arguments: ["server", "--coordinator", coordinator, "--listen", try address("server-\(k)"), "--rank", "\(k)"]
                                                + observe(1 + k)))
        }
        for k in 0..<config.cluster.workers {
            var args = ["worker", "--coordinator", coordinator, "--rank", "\(k)", "--figures-out", figuresPath(rank: k)]
            if k == 0 { args += ["--metrics-out", metricsPath] }
            args += observe(1 + config.cluster.servers + k)
            children.append(try ChildProcess(label: "worker \(k)", executable: binary, arguments: args))
        }
    }

    /// How a run ended.
    enum Ending: Equatable {
        case completed
        case interrupted
        /// A role exited non-zero (the first one seen); every other child has been stopped.
        case failed(label: String, status: Int32)

        var description: String {
            switch self {
            case .completed: return "completed"
            case .interrupted: return "interrupted"
            case .failed(let label, let status): return "\(label) exited with status \(status)"
            }
        }
    }

    /// Waits for the run. `interrupted` reports Ctrl-C; the coordinator is asked to stop
    /// first so roles finish their step, then everyone. `quickStop` (the launcher will
    /// restart from a checkpoint anyway) kills the other roles at once after a failure.
    func wait(interrupted: () -> Bool, quickStop: Bool = false) -> Ending {
        var failure: Ending?
        var stopAt: Date?
        var interruptForwarded = false
        while true {
            var running = 0
            for child in children {
                if let status = child.poll() {
                    if status != 0 && failure == nil && !interruptForwarded {
                        failure = .failed(label: child.label, status: status)
                    }
                } else {
                    running += 1
                }
            }
            if running == 0 { return interruptForwarded ? .interrupted : failure ?? .completed }
            if interrupted() && !interruptForwarded {
                interruptForwarded = true
                children.first?.send(SIGTERM)
                stopAt = Date()
            }
            if failure != nil && stopAt == nil {
                children.forEach { $0.send(quickStop ? SIGKILL : SIGTERM) }
                stopAt = Date()
            }
            if let t = stopAt {
                let waited = Date().timeIntervalSince(t)
                if interruptForwarded && waited > 3 { children.forEach { $0.send(SIGTERM) } }
                if waited > 10 { children.forEach { $0.send(SIGKILL) } }
            }
            usleep(50_000)
        }
    }

    /// Removes the run directory.
    func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1 (bind to 0, read, close).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HeedError(.io, "socket(): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw HeedError(.io, "cannot find a free port: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
