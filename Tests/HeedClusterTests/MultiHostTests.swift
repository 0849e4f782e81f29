import Foundation
import HeedCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Roles on different "hosts" (network namespaces on a bridge, `scripts/netns-bed.sh`),
/// talking tcp between their own addresses with a cluster secret.
enum MultiHostBed {
    static let script = ClusterHarness.repository + "/scripts/netns-bed.sh"

    /// Namespaces need root (CAP_NET_ADMIN), iproute2 and nsenter.
    static var available: Bool {
        geteuid() == 0 && ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].contains { FileManager.default.isExecutableFile(atPath: $0) }
            && ["/usr/bin/nsenter", "/bin/nsenter"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Brings up `hosts` namespaces; returns their addresses. Tear down with `down`.
    static func up(tag: String, hosts: Int) async throws -> [String] {
        let run = try LauncherTests.Run(executable: script, ["up", tag, "\(hosts)"])
        guard await run.exit(within: 60) == 0 else { throw HeedError(.io, "netns-bed up failed: \(run.output)") }
        return run.output.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
    }

    static func down(tag: String) {
        _ = try? LauncherTests.Run(executable: script, ["down", tag]).wait(seconds: 60)
    }

    /// Runs `heed ARGS` inside host `k`'s network namespace.
    static func heed(tag: String, host k: Int, _ arguments: [String]) throws -> LauncherTests.Run {
        try LauncherTests.Run(executable: script, ["exec", tag, "\(k)", LauncherTests.binary] + arguments)
    }
}

@Suite(.serialized, .enabled(if: MultiHostBed.available, "skipped: creating network namespaces needs root, iproute2 and nsenter"))
struct MultiHostTests {
    let data: String
    let scratch: String
    let tag = "m\(getpid() % 100_000)"

    init() throws {
        data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2)
        scratch = NSTemporaryDirectory() + "heed-multihost-\(getpid())"
        try FileOps.makeDirectories(scratch)
    }

    func writeConfig(model: String = "din", maxSteps: Int = 60, batch: Int = 256, extra: String = "") throws -> String {
        let path = scratch + "/run.toml"
        try """
        seed = 5
        [model]
        name = "\(model)"
        embedding_dim = 8
        hidden = [32, 16]
        attention_hidden = [16, 8]
        [data]
        path = "\(data)"
        batch_size = \(batch)
        max_steps = \(maxSteps)
        epochs = 20
        [cluster]
        servers = 2
        workers = 1
        mode = "sync"
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func writeSecret() throws -> String {
        let path = scratch + "/secret"
        try "0123456789abcdef0123456789abcdef".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    @Test func aClusterAcrossHostsOverTcpWithASecretEqualsTheLocalCluster() async throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try await MultiHostBed.up(tag: tag, hosts: 4)
        defer { MultiHostBed.down(tag: tag) }
        #expect(addresses.count == 4 && Set(addresses).count == 4, "\(addresses)")
        let config = try writeConfig(), secret = try writeSecret()
        let coordinator = "tcp://\(addresses[0]):7070"
        let roles = try [
            MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", coordinator, "--config", config, "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 1, ["server", "--coordinator", coordinator, "--listen", "tcp://\(addresses[1]):7071", "--rank", "0", "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 2, ["server", "--coordinator", coordinator, "--listen", "tcp://\(addresses[2]):7071", "--rank", "1", "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 3, ["worker", "--coordinator", coordinator, "--rank", "0", "--secret-file", secret, "--metrics-out", scratch + "/hosts.json"]),
        ]
        for role in roles { #expect(await role.exit(within: 180) == 0, "\(role.output)") }

        let local = try LauncherTests.Run(["train", "--config", config, "--metrics-out", scratch + "/local.json"])
        #expect(await local.exit(within: 180) == 0, "\(local.output)")
        let test = { (path: String) -> [String: Any]? in
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])?["test"] as? [String: Any]
        }
        let hosts = test(scratch + "/hosts.json"), cluster = test(scratch + "/local.json")
        #expect(hosts?["auc"] as? Double != nil)
        #expect(hosts?["auc"] as? Double == cluster?["auc"] as? Double)
        #expect(hosts?["logLoss"] as? Double == cluster?["logLoss"] as? Double)
        #expect(hosts?["gauc"] as? Double == cluster?["gauc"] as? Double)
    }

    /// Starts coordinator (host 0), servers (hosts 1, 2) and a worker (host 3).
    func startRoles(addresses: [String], config: String, secret: String) throws -> [LauncherTests.Run] {
        let coordinator = "tcp://\(addresses[0]):7070"
        return try [
            MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", coordinator, "--config", config, "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 1, ["server", "--coordinator", coordinator, "--listen", "tcp://\(addresses[1]):7071", "--rank", "0", "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 2, ["server", "--coordinator", coordinator, "--listen", "tcp://\(addresses[2]):7071", "--rank", "1", "--secret-file", secret]),
            MultiHostBed.heed(tag: tag, host: 3, ["worker", "--coordinator", coordinator, "--rank", "0", "--secret-file", secret, "--metrics-out", scratch + "/hosts.json"]),
        ]
    }

    /// Sets host `k`'s link down or up.
    func link(host k: Int, up: Bool) async throws {
        let run = try LauncherTests.Run(executable: "/usr/bin/env", ["ip", "-n", "heed-\(tag)-h\(k)", "link", "set", "eth0", up ? "up" : "down"])
        #expect(await run.exit(within: 10) == 0, "\(run.output)")
    }

    /// Waits until the worker has started training (its first log line about its shards).
    func waitForTraining(_ worker: LauncherTests.Run) async throws {
        let deadline = Date().addingTimeInterval(60)
        while !worker.output.contains("steps per epoch") && Date() < deadline && worker.process.isRunning { try? await Task.sleep(nanoseconds: 20_000 * 1000) }
        try #require(worker.output.contains("steps per epoch"), "the worker never started: \(worker.output)")
    }

    static let failureTimeout = "heartbeat_ms = 100\nfailure_timeout_ms = 6000"

    @Test func aLinkCutShorterThanTheFailureTimeoutLosesNothing() async throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try await MultiHostBed.up(tag: tag, hosts: 4)
        defer { MultiHostBed.down(tag: tag) }
        let config = try writeConfig(model: "lr", maxSteps: 1500, batch: 64, extra: Self.failureTimeout), secret = try writeSecret()
        let roles = try startRoles(addresses: addresses, config: config, secret: secret)
        try await waitForTraining(roles[3])
        // 1.5 s of silence from server 1's host: longer than a heartbeat's retries (3 × 400 ms), shorter than the 6 s failure timeout (generous: the suite runs other heavy tests beside it).
        try await link(host: 2, up: false)
        try? await Task.sleep(nanoseconds: 1_500_000 * 1000)
        try await link(host: 2, up: true)
        #expect(roles[3].process.isRunning, "the run ended before the link came back: rerun with more steps")
        for role in roles { #expect(await role.exit(within: 180) == 0, "\(role.output)") }
        let local = try LauncherTests.Run(["train", "--config", config, "--metrics-out", scratch + "/local.json"])
        #expect(await local.exit(within: 180) == 0, "\(local.output)")
        let test = { (path: String) -> [String: Any]? in
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])?["test"] as? [String: Any]
        }
        #expect(test(scratch + "/hosts.json")?["auc"] as? Double != nil)
        #expect(test(scratch + "/hosts.json")?["auc"] as? Double == test(scratch + "/local.json")?["auc"] as? Double, "sync: nothing may be lost")
    }

    @Test func aLinkCutLongerThanTheFailureTimeoutStopsTheRunNamingTheServer() async throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try await MultiHostBed.up(tag: tag, hosts: 4)
        defer { MultiHostBed.down(tag: tag) }
        let config = try writeConfig(model: "lr", maxSteps: 100_000, batch: 64, extra: Self.failureTimeout), secret = try writeSecret()
        let roles = try startRoles(addresses: addresses, config: config, secret: secret)
        try await waitForTraining(roles[3])
        try await link(host: 2, up: false)
        let cut = Date()
        // Every role exits on its own well within a minute (no hang): the coordinator, the
        // worker and the cut-off server with an error; server 0 because it was told to stop.
        for (k, role) in roles.enumerated() {
            let status = await role.exit(within: 60)
            #expect(status != nil, "role \(k) did not exit: \(role.output)")
            if k != 1 { #expect(status != 0, "role \(k) exited 0: \(role.output)") }
        }
        #expect(await roles[0].exit(within: 1) == 3, "the coordinator's status is the run's failure")
        #expect(Date().timeIntervalSince(cut) < 45)
        #expect(roles[0].output.contains("server 1") && roles[0].output.contains("sent nothing for"), "\(roles[0].output)")
        #expect(roles[2].output.contains("lost the coordinator"), "\(roles[2].output)")
    }

    @Test func aRoleRefusesANonLoopbackAddressWithoutASecret() async throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try await MultiHostBed.up(tag: tag, hosts: 1)
        defer { MultiHostBed.down(tag: tag) }
        let config = try writeConfig()
        let coordinator = try MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", "tcp://\(addresses[0]):7070", "--config", config])
        #expect(await coordinator.exit(within: 30) != 0)
        #expect(coordinator.output.contains("refusing to listen on tcp://\(addresses[0]):7070 without a cluster secret"), "\(coordinator.output)")
        let server = try MultiHostBed.heed(tag: tag, host: 0, ["server", "--coordinator", "tcp://\(addresses[0]):7070", "--listen", "tcp://0.0.0.0:7071"])
        #expect(await server.exit(within: 30) != 0)
        #expect(server.output.contains("refusing to listen on tcp://0.0.0.0:7071"), "\(server.output)")
        // A secret file others can read is refused too, naming the fix.
        let loose = scratch + "/loose"
        try "0123456789abcdef0123456789abcdef".write(toFile: loose, atomically: true, encoding: .utf8)
        chmod(loose, 0o644)
        let looseRun = try MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", "tcp://\(addresses[0]):7070", "--config", config, "--secret-file", loose])
        #expect(await looseRun.exit(within: 30) != 0)
        #expect(looseRun.output.contains("chmod 600"), "\(looseRun.output)")
    }
}
