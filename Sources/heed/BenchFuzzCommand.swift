import ArgumentParser
import Foundation
import HeedCheckpoint
import HeedCore
import HeedTransport

/// `heed bench fuzz`: a seeded mutation loop over the wire decoder and the parameter-file
/// reader. Every input must be either rejected with a typed error or accepted and then
/// hold the reader's promises; anything else (a crash ends the process) is a finding.
struct BenchFuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Mutation-fuzz the wire decoder and the parameter-file reader; print inputs tried, findings and the slowest input.",
        discussion: """
            Seeds: one encoded message of every kind (plain and HMAC-tagged) and a small \
            parameter file with two tables and dense Adam state. Mutations: bit flips, \
            interesting bytes, overwritten length fields, truncation, extension and splices, \
            1-8 per input. Half of the parameter-file inputs get their checksum recomputed so \
            the parser behind it is reached. Properties checked: a decoded message re-encodes \
            to bytes that decode and re-encode to the same bytes; a tagged message that was changed is \
            never accepted; a parameter file that reads has the sizes its header promises. \
            A crash ends the process (the script reports it with the seed and input number); \
            an input slower than --hang-seconds counts as a hang.
            """
    )

    @Option(help: "Inputs to try (split 90 % wire, 10 % parameter files).") var inputs = 1_000_000
    @Option(help: "Seed of the mutation generator.") var seed: UInt64 = 1
    @Option(help: "An input slower than this counts as a hang.") var hangSeconds = 1.0

    func run() throws {
        let report = try Fuzzer(seed: seed, hangSeconds: hangSeconds).run(inputs: inputs) { line in print(line) }
        print(report.summary)
        if report.findings > 0 { throw ExitCode(1) }
    }
}

/// The fuzz loop, callable from tests.
struct Fuzzer {
    struct Report {
        var wireInputs = 0, wireAccepted = 0
        var fileInputs = 0, fileAccepted = 0
        var findings = 0, hangs = 0
        var slowest = 0.0
        var summary: String {
            String(format: "inputs %d (wire %d, %d accepted; parameter files %d, %d accepted)  findings %d  hangs %d  slowest input %.3f ms",
                   wireInputs + fileInputs, wireInputs, wireAccepted, fileInputs, fileAccepted, findings, hangs, slowest * 1000)
        }
    }

    let seed: UInt64
    let hangSeconds: Double

    static let secret = Array("fuzz-secret-0123456789abcdef".utf8)

    /// One message of every kind, with non-trivial fields.
    static func seedMessages() -> [Message] {
        var plan = ShardingPlan(serverCount: 3, slotCount: 16)
        plan.slotOwners[5] = 2
        return [
            .register(Register(role: .worker, listenAddress: "tcp://127.0.0.1:7001", rankHint: 3)),
            .registerReply(RegisterReply(rank: 1, serverAddresses: ["ipc:///tmp/s0", "tcp://10.0.0.2:9000"], plan: plan, dataShards: [0, 4], config: Array("{}".utf8))),
            .heartbeat(Heartbeat(rank: 2, role: .server, clock: 99, stats: ["loss": 0.4, "rows": 1e6])),
            .heartbeatAck(HeartbeatAck(slowestClock: 41, stopRequested: true, command: Control(name: "checkpoint", body: [1, 2]))),
            .pullRows(PullRows(tableID: 7, keys: [1, 5, 0xFFFF_FFFF_FFFF_FFF0])),
            .rowsReply(RowsReply(tableID: 7, dim: 3, values: (0..<9).map { Float($0) })),
            .pushRows(PushRows(tableID: 2, dim: 2, keys: [10, 20, 30], grads: [1, -2, 3.5, -4, 0, 1], workerClock: 17)),
            .pullDense(PullDense(tensorIDs: [3, 1])),
            .denseReply(DenseReply(tensors: [DenseTensor(id: 1, shape: [2, 2], values: [1, 2, 3, 4])])),
            .pushDense(PushDense(tensors: [DenseTensor(id: 0, shape: [3], values: [0.5, -0.5, 8])], workerClock: 5)),
            .barrier(Barrier(name: "epoch", rank: 4, generation: 12)),
            .barrierRelease(BarrierRelease(name: "step/checkpoint/3", generation: 12)),
            .shutdown(Shutdown(reason: "done")),
            .control(Control(name: "checkpoint-save", body: Array("120".utf8))),
            .controlReply(Control(name: "saved", body: Array("{\"name\":\"shard-0.bin\"}".utf8))),
            .ack(Ack(value: 4096)),
            .error(ErrorReply(code: .unauthenticated, message: "bad tag")),
        ]
    }

    /// A small valid parameter file's bytes.
    static func seedFile(at path: String) throws -> [UInt8] {
        let header = ParameterFile.Header(rank: 0, serverCount: 1, slotCount: 16, tableCount: 2, denseStart: 0, denseTotal: 4, denseChunk: 4)
        let writer = try ParameterFile.Writer(path: path, header: header, dense: [1, 2, 3, 4],
                                              denseState: .init(width: 2, step: 3, values: [0.1, 0.2, 0.3, 0.4, 1, 2, 3, 4]))
        for (id, dim) in [(UInt8(1), 2), (UInt8(4), 3)] {
            try writer.beginTable(id: id, dim: dim, width: 3 * dim, rows: 3)
            for k in 0..<3 {
                let values = (0..<(3 * dim)).map { Float($0 + k) }
                try values.withUnsafeBufferPointer { try writer.appendRow(key: UInt64(k * 77 + Int(id)), step: UInt32(k), values: $0) }
            }
        }
        _ = try writer.finish()
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func run(inputs: Int, progress: (String) -> Void = { _ in }) throws -> Report {
        var rng = SeededGenerator(seed: seed)
        let plain = try WireCodec(), tagged = try WireCodec(secret: Self.secret)
        var wireSeeds: [(bytes: [UInt8], tagged: Bool)] = []
        for m in Self.seedMessages() {
            let envelope = Envelope(senderID: 0xABCD, requestID: 7, message: m)
            wireSeeds.append((try plain.encode(envelope), false))
            wireSeeds.append((try tagged.encode(envelope), true))
        }
        let directory = (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()) + "/heed-fuzz-\(getpid())"
        try FileOps.makeDirectories(directory)
        defer { FileOps.removeTree(directory) }
        let fileSeed = try Self.seedFile(at: directory + "/seed.bin")
        let target = directory + "/input.bin"
        var report = Report()
        let started = Date()
        for n in 0..<inputs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            if n % 10 != 9 {
                let seed = wireSeeds[Int(rng.next() % UInt64(wireSeeds.count))]
                var bytes = seed.bytes
                Self.mutate(&bytes, splice: wireSeeds[Int(rng.next() % UInt64(wireSeeds.count))].bytes, rng: &rng)
                report.wireInputs += 1
                let codec = seed.tagged ? tagged : plain
                if let envelope = try? codec.decode(bytes) {
                    report.wireAccepted += 1
                    if seed.tagged && !wireSeeds.contains(where: { $0.tagged && $0.bytes == bytes }) {
                        report.findings += 1
                        progress("finding: input \(n) (seed \(self.seed)): a changed tagged message was accepted")
                    }
                    // Compared as bytes: a mutated float may be a NaN, which is not equal to
                    // itself. Without the trailer: every encoding takes a fresh sequence number.
                    let signed = { (b: [UInt8]) in seed.tagged ? Array(b.dropLast(WireCodec.trailerSize)) : b }
                    if let once = try? codec.encode(envelope), let again = try? codec.decode(once),
                       let twice = try? codec.encode(again), signed(twice) == signed(once) {} else {
                        report.findings += 1
                        progress("finding: input \(n) (seed \(self.seed)): a decoded \(envelope.message.kind) does not survive re-encoding")
                    }
                }
            } else {
                var bytes = fileSeed
                Self.mutate(&bytes, splice: fileSeed, rng: &rng)
                if rng.next() % 2 == 0, bytes.count >= 12 {
                    // Make the checksum match so the reader's parsing is reached.
                    let crc = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0 ..< bytes.count - 4])) }
                    withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bytes[bytes.count - 4 + i] = $0[i] } }
                }
                report.fileInputs += 1
                try Data(bytes).write(to: URL(fileURLWithPath: target))
                if let contents = try? ParameterFile.read(path: target) {
                    report.fileAccepted += 1
                    let h = contents.header
                    let consistent = contents.dense.count == h.denseChunk && contents.tables.count == h.tableCount
                        && contents.denseState.values.count == contents.denseState.width * h.denseChunk
                        && contents.tables.allSatisfy { $0.keys.count == $0.steps.count && $0.values.count == $0.keys.count * $0.width }
                    if !consistent {
                        report.findings += 1
                        progress("finding: input \(n) (seed \(self.seed)): a parameter file read with sizes that break its header")
                    }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            report.slowest = max(report.slowest, seconds)
            if seconds > hangSeconds {
                report.hangs += 1
                progress("hang: input \(n) (seed \(seed)) took \(seconds) s")
            }
            if n > 0 && n % 200_000 == 0 { progress("\(n) inputs, \(Int(Date().timeIntervalSince(started))) s") }
        }
        return report
    }

    /// Whether two tagged messages differ only where the codec ignores bytes (they never
    /// should: the tag covers everything). Kept as the one place to say so.

    /// Applies 1-8 random mutations.
    static func mutate(_ bytes: inout [UInt8], splice: [UInt8], rng: inout SeededGenerator) {
        let interesting: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20]
        for _ in 0..<(1 + Int(rng.next() % 8)) {
            guard !bytes.isEmpty else { bytes = [UInt8(truncatingIfNeeded: rng.next())]; continue }
            let at = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 8 {
            case 0: bytes[at] ^= UInt8(1 << (rng.next() % 8))
            case 1: bytes[at] = interesting[Int(rng.next() % UInt64(interesting.count))]
            case 2:
                // A 32-bit field set to a boundary value: counts and lengths.
                let values: [UInt32] = [0, 1, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, UInt32(bytes.count), 0x0010_0000]
                let v = values[Int(rng.next() % UInt64(values.count))]
                for i in 0..<4 where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
            case 3: bytes.removeLast(Int(rng.next() % UInt64(min(bytes.count, 64))) + 1)
            case 4: bytes += (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 5:
                let from = Int(rng.next() % UInt64(max(splice.count, 1)))
                let n = min(Int(rng.next() % 32), splice.count - from, bytes.count - at)
                if n > 0 { bytes.replaceSubrange(at ..< at + n, with: splice[from ..< from + n]) }
            case 6: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            default: bytes.remove(at: at)
            }
        }
    }
}
