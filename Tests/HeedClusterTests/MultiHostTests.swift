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
    static func up(tag: String, hosts: Int) throws -> [String] {
        let run = try LauncherTests.Run(executable: script, ["up", tag, "\(hosts)"])
        guard run.wait(seconds: 60) == 0 else { throw HeedError(.io, "netns-bed up failed: \(run.output)") }
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

    func writeConfig() throws -> String {
        let path = scratch + "/run.toml"
        try """
        seed = 5
        [model]
        name = "din"
        embedding_dim = 8
        hidden = [32, 16]
        attention_hidden = [16, 8]
        [data]
        path = "\(data)"
        batch_size = 256
        max_steps = 60
        [cluster]
        servers = 2
        workers = 1
        mode = "sync"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func writeSecret() throws -> String {
        let path = scratch + "/secret"
        try "0123456789abcdef0123456789abcdef".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    @Test func aClusterAcrossHostsOverTcpWithASecretEqualsTheLocalCluster() throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try MultiHostBed.up(tag: tag, hosts: 4)
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
        for role in roles { #expect(role.wait(seconds: 180) == 0, "\(role.output)") }

        let local = try LauncherTests.Run(["train", "--config", config, "--metrics-out", scratch + "/local.json"])
        #expect(local.wait(seconds: 180) == 0, "\(local.output)")
        let test = { (path: String) -> [String: Any]? in
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])?["test"] as? [String: Any]
        }
        let hosts = test(scratch + "/hosts.json"), cluster = test(scratch + "/local.json")
        #expect(hosts?["auc"] as? Double != nil)
        #expect(hosts?["auc"] as? Double == cluster?["auc"] as? Double)
        #expect(hosts?["logLoss"] as? Double == cluster?["logLoss"] as? Double)
        #expect(hosts?["gauc"] as? Double == cluster?["gauc"] as? Double)
    }

    @Test func aRoleRefusesANonLoopbackAddressWithoutASecret() throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try MultiHostBed.up(tag: tag, hosts: 1)
        defer { MultiHostBed.down(tag: tag) }
        let config = try writeConfig()
        let coordinator = try MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", "tcp://\(addresses[0]):7070", "--config", config])
        #expect(coordinator.wait(seconds: 30) != 0)
        #expect(coordinator.output.contains("refusing to listen on tcp://\(addresses[0]):7070 without a cluster secret"), "\(coordinator.output)")
        let server = try MultiHostBed.heed(tag: tag, host: 0, ["server", "--coordinator", "tcp://\(addresses[0]):7070", "--listen", "tcp://0.0.0.0:7071"])
        #expect(server.wait(seconds: 30) != 0)
        #expect(server.output.contains("refusing to listen on tcp://0.0.0.0:7071"), "\(server.output)")
        // A secret file others can read is refused too, naming the fix.
        let loose = scratch + "/loose"
        try "0123456789abcdef0123456789abcdef".write(toFile: loose, atomically: true, encoding: .utf8)
        chmod(loose, 0o644)
        let looseRun = try MultiHostBed.heed(tag: tag, host: 0, ["coordinator", "--listen", "tcp://\(addresses[0]):7070", "--config", config, "--secret-file", loose])
        #expect(looseRun.wait(seconds: 30) != 0)
        #expect(looseRun.output.contains("chmod 600"), "\(looseRun.output)")
    }
}
