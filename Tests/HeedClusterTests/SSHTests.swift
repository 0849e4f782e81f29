import Foundation
import HeedCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real sshd per namespace host (`scripts/ssh-bed.sh`, keys made fresh for the bed).
enum SSHBed {
    static let script = ClusterHarness.repository + "/scripts/ssh-bed.sh"

    static var available: Bool {
        MultiHostBed.available && ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/scp", "/usr/bin/ssh-keygen"]
            .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The folder of `ssh`/`scp` wrappers that use the bed's keys.
    static func wrappers(tag: String) -> String { "/tmp/heed-ssh-\(tag)/bin" }
}

@Suite(.serialized, .enabled(if: SSHBed.available, "skipped: the SSH bed needs root, network namespaces and openssh-server (scripts/install-deps.sh --multi-host)"))
struct SSHTests {
    let data: String
    let scratch: String
    let tag = "h\(getpid() % 100_000)"

    init() throws {
        data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 4)
        scratch = NSTemporaryDirectory() + "heed-ssh-test-\(getpid())"
        try FileOps.makeDirectories(scratch)
    }

    /// Secrets and configs the SSH launcher copies to hosts (all hosts share this /tmp).
    static func copiedFiles() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter {
            let name = $0.hasSuffix(".toml") ? String($0.dropLast(5)) : $0
            let pid = name.hasPrefix("heed-secret-") && !$0.hasSuffix(".toml") ? name.dropFirst(12)
                : name.hasPrefix("heed-run-") && $0.hasSuffix(".toml") ? name.dropFirst(9) : ""
            return !pid.isEmpty && pid.allSatisfy(\.isNumber)
        })
    }

    /// `cluster/ssh/launch.sh` over five hosts, each reached through its own sshd: the
    /// coordinator, two servers and two workers talk tcp between the hosts' addresses with
    /// the secret the launcher copies over, and the run's test metrics equal the local
    /// cluster's with the same seed in sync mode.
    @Test func launchShAcrossFiveSSHHostsGivesTheLocalClustersMetrics() async throws {
        defer { FileOps.removeTree(scratch) }
        let addresses = try await MultiHostBed.up(tag: tag, hosts: 5)
        defer { MultiHostBed.down(tag: tag) }
        let up = try LauncherTests.Run(executable: SSHBed.script, ["up", tag])
        defer { _ = try? LauncherTests.Run(executable: SSHBed.script, ["down", tag]).wait(seconds: 30) }
        #expect(await up.exit(within: 60) == 0, "\(up.output)")

        let hostfile = scratch + "/hosts"
        try (["# coordinator, 2 servers, 2 workers"] + addresses).joined(separator: "\n").write(toFile: hostfile, atomically: true, encoding: .utf8)
        let config = try SlurmTests.writeRunConfig(in: scratch, data: data, mode: "sync")
        let path = SSHBed.wrappers(tag: tag) + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let copiedBefore = Self.copiedFiles()
        let run = try LauncherTests.Run(executable: "/usr/bin/env", ["PATH=\(path)", "HEED_BIN=\(LauncherTests.binary)",
                                                                     ClusterHarness.repository + "/cluster/ssh/launch.sh", hostfile, config, "2"])
        #expect(await run.exit(within: 240) == 0, "\(run.output)")
        #expect(run.output.contains("coordinator: run completed"), "\(run.output)")
        #expect(run.output.contains("server 1 registered (tcp://\(addresses[2]):"), "servers listen on their hosts' addresses: \(run.output)")
        // The launcher deletes the secret and config it copied to the hosts.
        #expect(Self.copiedFiles().subtracting(copiedBefore).isEmpty, "left behind: \(Self.copiedFiles().subtracting(copiedBefore))")

        let local = try LauncherTests.Run(["train", "--config", config])
        #expect(await local.exit(within: 180) == 0, "\(local.output)")
        let sshLine = SlurmTests.testLine(run.output), localLine = SlurmTests.testLine(local.output)
        #expect(sshLine != nil && sshLine == localLine, "SSH: \(sshLine ?? "none"), local: \(localLine ?? "none")")
    }
}
