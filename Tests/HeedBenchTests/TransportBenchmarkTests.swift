import Foundation
import HeedTransport
import Testing
@testable import HeedBench

@Suite struct TransportBenchmarkTests {
    /// The bytes of the messages a pull or push exchange really puts on the wire, as the codec
    /// encodes them (plain and authenticated): what the benchmark must count.
    static func encodedSizes(keys: Int, dim: Int, secret: [UInt8]?) throws -> (pull: Int, rows: Int, push: Int, ack: Int) {
        let codec = try WireCodec(secret: secret)
        let ids = (0..<keys).map { UInt64($0) &* 77 &+ 5 }
        func size(_ m: Message) throws -> Int { try codec.encode(Envelope(senderID: 3, requestID: 9, message: m)).count }
        return (try size(.pullRows(PullRows(tableID: 1, keys: ids))),
                try size(.rowsReply(RowsReply(tableID: 1, dim: UInt32(dim), values: [Float](repeating: 0.5, count: keys * dim)))),
                try size(.pushRows(PushRows(tableID: 1, dim: UInt32(dim), keys: ids, grads: [Float](repeating: 0.5, count: keys * dim)))),
                try size(.ack(Ack(value: UInt64(keys)))))
    }

    /// The byte counts behind every ratio are the sizes of the encoded messages (counted by
    /// the codec, not by the benchmark's own formula), for pulls, pushes and with the
    /// authentication tag.
    @Test(arguments: [(16, 64), (1, 1), (300, 18)])
    func byteCountsAreTheEncodedMessageSizes(keys: Int, dim: Int) throws {
        for secret in [nil, [UInt8](repeating: 7, count: 32)] {
            let encoded = try Self.encodedSizes(keys: keys, dim: dim, secret: secret)
            let pull = TransportBenchmark.sizes(keys: keys, dim: dim, authenticated: secret != nil)
            let push = TransportBenchmark.pushSizes(keys: keys, dim: dim, authenticated: secret != nil)
            #expect(pull.request == encoded.pull && pull.reply == encoded.rows, "pull \(keys)×\(dim) secret \(secret != nil)")
            #expect(push.request == encoded.push && push.reply == encoded.ack, "push \(keys)×\(dim) secret \(secret != nil)")
        }
    }

    @Test func benchmarksProduceFiguresFromRealTraffic() async throws {
        let encoded = try Self.encodedSizes(keys: 16, dim: 64, secret: nil)
        let raw = try await TransportBenchmark.rawRequestReply(address: uniqueIPCAddress("raw"), requestSize: 100, replySize: 4096,
                                                              inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(raw.requests > 0 && raw.replyBytes == 4096 && raw.requestBytes == 100)
        let good = try await TransportBenchmark.pullRowsGoodput(address: uniqueIPCAddress("heed"), keysPerRequest: 16, dim: 64,
                                                               inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(good.transfer.requests > 0 && good.rowsPerRequest == 16 && good.dim == 64)
        #expect(good.transfer.requestBytes == encoded.pull && good.transfer.replyBytes == encoded.rows)
        let pushed = try await TransportBenchmark.pushRowsGoodput(address: uniqueIPCAddress("heed-push"), keysPerRequest: 16, dim: 64,
                                                                  inFlight: 2, duration: .milliseconds(100), warmup: .milliseconds(20))
        #expect(pushed.transfer.requests > 0 && pushed.rowsPerRequest == 16)
        #expect(pushed.transfer.requestBytes == encoded.push && pushed.transfer.replyBytes == encoded.ack)
    }

    /// Push comparisons count raw bytes in the request direction, pulls in the reply direction.
    /// Expected ratios worked by hand: goodput moves 50 msg/s × 256 rows × 64 floats × 4 B =
    /// 3,276,800 B/s of values; raw moves 100 × 70,000 = 7,000,000 B/s in the request direction
    /// and 100 × 60 = 6,000 B/s in the reply direction.
    @Test func comparisonRatioUsesTheDirectionRowsTravel() {
        let raw = ThroughputSample(requests: 100, seconds: 1, requestBytes: 70_000, replyBytes: 60)
        let good = GoodputSample(transfer: ThroughputSample(requests: 50, seconds: 1, requestBytes: 70_000, replyBytes: 60),
                                 rowsPerRequest: 256, dim: 64)
        let push = TransportComparison(operation: .push, raw: raw, goodput: good, roundRatios: [])
        #expect(abs(push.ratio - 3_276_800.0 / 7_000_000.0) < 1e-12)
        let pull = TransportComparison(operation: .pull, raw: raw, goodput: good, roundRatios: [])
        #expect(abs(pull.ratio - 3_276_800.0 / 6_000.0) < 1e-9)
        // Twice the time for the same requests halves every rate.
        let slow = ThroughputSample(requests: 100, seconds: 2, requestBytes: 70_000, replyBytes: 60)
        #expect(slow.messagesPerSecond == 50 && slow.replyBytesPerSecond == 3_000)
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
