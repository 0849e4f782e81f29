import HeedCore
import Testing
@testable import HeedTransport

/// The in-place pull/push views and the in-place rowsReply writer must agree byte for
/// byte with the array codec, at any buffer alignment, and reject exactly what it rejects.
@Suite struct InPlaceRowsTests {
    static let pull = PullRows(tableID: 5, keys: [3, 9, 1 << 40, .max])
    static let push = PushRows(tableID: 2, dim: 3, keys: [10, 20, 30], grads: (0..<9).map { Float($0) * 0.5 - 2 }, workerClock: 77)

    /// Calls `body` with `bytes` copied to an address `shift` bytes past an 8-aligned one.
    private func withShifted<R>(_ bytes: [UInt8], by shift: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + 8, alignment: 8)
        defer { storage.deallocate() }
        bytes.withUnsafeBytes { (storage + shift).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return try body(UnsafeRawBufferPointer(start: storage + shift, count: bytes.count))
    }

    @Test(arguments: [0, 1, 4, 7])
    func pullViewMatchesTheArrayDecoder(shift: Int) throws {
        let codec = try WireCodec()
        let bytes = try codec.encode(Envelope(senderID: 1, requestID: 2, message: .pullRows(Self.pull)))
        let seen = try withShifted(bytes, by: shift) { raw in
            let (header, payload) = try codec.open(raw)
            #expect(header.kind == .pullRows)
            return try WireCodec.withPullRows(payload) { PullRows(tableID: $0.tableID, keys: Array($0.keys)) }
        }
        #expect(seen == Self.pull)
    }

    @Test(arguments: [0, 1, 4, 6])
    func pushViewMatchesTheArrayDecoder(shift: Int) throws {
        let codec = try WireCodec(secret: WireFormatTests.secret)
        let bytes = try codec.encode(Envelope(senderID: 1, requestID: 2, message: .pushRows(Self.push)))
        let seen = try withShifted(bytes, by: shift) { raw in
            let (_, payload) = try codec.open(raw)
            return try WireCodec.withPushRows(payload) {
                PushRows(tableID: $0.tableID, dim: $0.dim, keys: Array($0.keys), grads: Array($0.grads), workerClock: $0.workerClock)
            }
        }
        #expect(seen == Self.push)
    }

    @Test func rowsReplyWrittenInPlaceEqualsTheArrayEncoding() throws {
        let values: [Float] = (0..<12).map { Float($0) - 5.5 }
        for codec in [try WireCodec(), try WireCodec(secret: WireFormatTests.secret)] {
            let expected = try codec.encode(Envelope(senderID: 8, requestID: 9, message: .rowsReply(RowsReply(tableID: 4, dim: 3, values: values))))
            let payloadSize = Message.rowsReplyPayloadSize(rows: 4, dim: 3)
            var inPlace = [UInt8](repeating: 0xAA, count: codec.encodedSize(payloadSize: payloadSize))
            try inPlace.withUnsafeMutableBytes { buffer in
                try codec.encode(kind: .rowsReply, senderID: 8, requestID: 9, payloadSize: payloadSize, into: buffer) { w in
                    Message.writeRowsReply(tableID: 4, dim: 3, rows: 4, to: &w) { out in
                        for i in out.indices { out[i] = values[i] }
                    }
                }
            }
            // Apart from the authentication trailer, whose sequence number is fresh per encoding.
            let trailer = codec.isAuthenticated ? WireCodec.trailerSize : 0
            #expect(inPlace.dropLast(trailer) == expected.dropLast(trailer))
            #expect((try? codec.decode(inPlace)) == (try? codec.decode(expected)))
        }
    }

    /// Truncated, bit-flipped and length-patched pulls and pushes: the views accept exactly
    /// the buffers the array decoder accepts, and never trap.
    @Test func viewsRejectExactlyWhatTheDecoderRejects() throws {
        let codec = try WireCodec()
        var rng = SeededGenerator(seed: 0x1A7E)
        let seeds = [try codec.encode(Envelope(senderID: 1, requestID: 1, message: .pullRows(Self.pull))),
                     try codec.encode(Envelope(senderID: 1, requestID: 1, message: .pushRows(Self.push)))]
        var disagreements = 0, rejected = 0
        for round in 0..<4000 {
            var bytes = seeds[round % 2]
            switch round % 3 {
            case 0:
                for _ in 0..<(1 + rng.next() % 3) { bytes[32 + Int(rng.next() % UInt64(bytes.count - 32))] ^= UInt8(1 << (rng.next() % 8)) }
            case 1:
                bytes = Array(bytes.prefix(32 + Int(rng.next() % UInt64(bytes.count - 31))))
                let len = UInt32(bytes.count - 32)
                withUnsafeBytes(of: len.littleEndian) { for j in 0..<4 { bytes[12 + j] = $0[j] } }
            default:
                let at = 32 + Int(rng.next() % UInt64(bytes.count - 35))
                let v = UInt32(truncatingIfNeeded: rng.next() >> (rng.next() % 32))
                withUnsafeBytes(of: v.littleEndian) { for j in 0..<4 { bytes[at + j] = $0[j] } }
            }
            let arrays = try? codec.decode(bytes)
            let views: Message? = bytes.withUnsafeBytes { raw in
                guard let (header, payload) = try? codec.open(raw) else { return nil }
                switch header.kind {
                case .pullRows:
                    return try? WireCodec.withPullRows(payload) { Message.pullRows(PullRows(tableID: $0.tableID, keys: Array($0.keys))) }
                case .pushRows:
                    return try? WireCodec.withPushRows(payload) {
                        Message.pushRows(PushRows(tableID: $0.tableID, dim: $0.dim, keys: Array($0.keys), grads: Array($0.grads), workerClock: $0.workerClock))
                    }
                default:
                    return arrays?.message
                }
            }
            // Compared as encoded bytes: a flipped float can be a NaN, which is never == itself.
            let viewBytes = try views.map { try codec.encode(Envelope(senderID: 1, requestID: 1, message: $0)) }
            let arrayBytes = try arrays.map { try codec.encode(Envelope(senderID: 1, requestID: 1, message: $0.message)) }
            if viewBytes != arrayBytes { disagreements += 1 }
            if arrays == nil { rejected += 1 }
        }
        #expect(disagreements == 0)
        #expect(rejected > 0)
    }
}
