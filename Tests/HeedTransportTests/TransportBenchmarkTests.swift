import Foundation
import Testing
@testable import HeedTransport

@Suite struct TransportBenchmarkTests {
    @Test func benchmarksProduceFiguresFromRealTraffic() async throws {
        let raw = try await TransportBenchmark.rawRequestReply(address: uniqueIPCAddress("raw"), requestSize: 100, replySize: 4096,
                                                              inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(raw.requests > 0 && raw.replyBytesPerSecond > 0)
        let good = try await TransportBenchmark.pullRowsGoodput(address: uniqueIPCAddress("heed"), keysPerRequest: 16, dim: 64,
                                                               inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(good.transfer.requests > 0 && good.rowsPerSecond == good.transfer.messagesPerSecond * 16)
        #expect(TransportBenchmark.sizes(keys: 16, dim: 64).reply == good.transfer.replyBytes)
        let pushed = try await TransportBenchmark.pushRowsGoodput(address: uniqueIPCAddress("heed-push"), keysPerRequest: 16, dim: 64,
                                                                  inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(pushed.transfer.requests > 0 && pushed.rowsPerSecond == pushed.transfer.messagesPerSecond * 16)
        // The push request carries 16 keys and 16 × 64 floats, as a worker's push does.
        #expect(TransportBenchmark.pushSizes(keys: 16, dim: 64).request == pushed.transfer.requestBytes)
        #expect(pushed.transfer.requestBytes > 16 * 64 * 4 + 16 * 8)
    }

    /// Push comparisons count raw bytes in the request direction, pulls in the reply direction.
    @Test func comparisonRatioUsesTheDirectionRowsTravel() {
        let raw = ThroughputSample(requests: 100, seconds: 1, requestBytes: 70_000, replyBytes: 60)
        let good = GoodputSample(transfer: ThroughputSample(requests: 50, seconds: 1, requestBytes: 70_000, replyBytes: 60),
                                 rowsPerRequest: 256, dim: 64)
        let push = TransportComparison(operation: .push, raw: raw, goodput: good, roundRatios: [])
        #expect(abs(push.ratio - Double(50 * 256 * 256) / Double(100 * 70_000)) < 1e-12)
        let pull = TransportComparison(operation: .pull, raw: raw, goodput: good, roundRatios: [])
        #expect(abs(pull.ratio - Double(50 * 256 * 256) / Double(100 * 60)) < 1e-12)
    }

    /// The measurement behind the report's goodput/raw ratios. Run it by hand, in release:
    /// `HEED_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter goodputAgainstRawNNG`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["HEED_BENCH"] != nil))
    func goodputAgainstRawNNG() async throws {
        for transport in ["ipc", "tcp"] {
            for keys in [256, 1024, 4096] {
                let c = try await TransportBenchmark.compare(.pull, keysPerRequest: keys, dim: 64, inFlight: 8, duration: .seconds(1), rounds: 3) { round, isRaw in
                    transport == "tcp" ? "tcp://127.0.0.1:0" : uniqueIPCAddress("bench-\(keys)-\(round)-\(isRaw)")
                }
                print(String(format: "%@ reply %7d B: raw %7.0f msg/s %7.1f MB/s | heed %7.0f msg/s %8.0f rows/s %7.1f MB/s | ratio %.3f (rounds %@)",
                             transport, c.raw.replyBytes, c.raw.messagesPerSecond, c.raw.replyBytesPerSecond / 1e6,
                             c.goodput.transfer.messagesPerSecond, c.goodput.rowsPerSecond, c.goodput.valueBytesPerSecond / 1e6, c.ratio,
                             c.roundRatios.map { String(format: "%.3f", $0) }.joined(separator: " ")))
            }
        }
    }
}
