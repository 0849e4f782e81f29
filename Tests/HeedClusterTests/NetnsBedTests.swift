import Foundation
import HeedCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `scripts/netns-bed.sh` itself: beds that come up together never share a subnet.
@Suite(.enabled(if: MultiHostBed.available, "skipped: creating network namespaces needs root, iproute2 and nsenter"))
struct NetnsBedTests {
    /// Two tags whose hash picks the same /24 (found with the script's own `cksum` rule),
    /// brought up at the same time: both come up, on different subnets. Before the lock and
    /// the probe the second one failed ("already in use"), which made whichever multi-host
    /// test drew the colliding tag fail about once in a few dozen full runs.
    @Test func bedsWhoseTagsShareASubnetComeUpOnDifferentOnes() async throws {
        let first = "q\(getpid() % 10_000)"
        let find = try LauncherTests.Run(executable: "/bin/bash", ["-c", """
            octet() { echo $(( $(printf '%s' "$1" | cksum | cut -d' ' -f1) % 200 )); }
            want=$(octet \(first))
            for i in $(seq 0 20000); do [ "$(octet r$i)" = "$want" ] && { echo r$i; exit 0; }; done
            exit 1
            """])
        #expect(await find.exit(within: 120) == 0, "\(find.output)")
        let second = find.output.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { MultiHostBed.down(tag: first); MultiHostBed.down(tag: second) }
        let runs = try [first, second].map { try LauncherTests.Run(executable: MultiHostBed.script, ["up", $0, "2"]) }
        var subnets: [String] = []
        for run in runs {
            #expect(await run.exit(within: 60) == 0, "\(run.output)")
            let addresses = run.output.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            #expect(addresses.count == 2, "\(run.output)")
            subnets.append(addresses.first.map { $0.split(separator: ".").prefix(3).joined(separator: ".") } ?? "")
        }
        #expect(subnets.count == 2 && subnets[0] != subnets[1] && subnets.allSatisfy { $0.hasPrefix("10.213.") }, "\(subnets)")
    }
}
