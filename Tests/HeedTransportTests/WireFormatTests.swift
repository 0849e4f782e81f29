import Crypto
import HeedCore
import Testing
@testable import HeedTransport

@Suite struct WireFormatTests {
    static let secret = Array("a cluster secret of 32 bytes....".utf8)

    @Test(arguments: MessageKind.allCases)
    func everyKindRoundTrips(kind: MessageKind) throws {
        let message = SampleMessages.message(kind)
        #expect(message.kind == kind)
        for codec in [try WireCodec(), try WireCodec(secret: Self.secret)] {
            let envelope = Envelope(senderID: 0xDEAD_BEEF_0000_0001, requestID: 42, message: message)
            let bytes = try codec.encode(envelope)
            #expect(bytes.count == codec.encodedSize(envelope))
            #expect(try codec.decode(bytes) == envelope)
        }
    }

    @Test(arguments: SampleMessages.edgeCases)
    func emptyCollectionsAndAbsentOptionalsRoundTrip(message: Message) throws {
        let codec = try WireCodec()
        let envelope = Envelope(senderID: 1, requestID: 2, message: message)
        #expect(try codec.decode(codec.encode(envelope)) == envelope)
    }

    @Test func headerIsLittleEndianWithFixedLayout() throws {
        let bytes = try WireCodec().encode(Envelope(senderID: 0x0102_0304_0506_0708, requestID: 0x1112_1314_1516_1718,
                                                    message: .ack(Ack(value: 0xA1A2_A3A4_A5A6_A7A8))))
        #expect(bytes.count == 40)
        #expect(Array(bytes[0..<4]) == Array("HEED".utf8))
        #expect(Array(bytes[4..<6]) == [2, 0])                   // version
        #expect(Array(bytes[6..<8]) == [0x80, 0])                // kind ack
        #expect(Array(bytes[8..<12]) == [0, 0, 0, 0])            // flags
        #expect(Array(bytes[12..<16]) == [8, 0, 0, 0])           // payload length
        #expect(Array(bytes[16..<24]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(bytes[24..<32]) == [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11])
        #expect(Array(bytes[32..<40]) == [0xA8, 0xA7, 0xA6, 0xA5, 0xA4, 0xA3, 0xA2, 0xA1])
    }

    @Test func rowBlocksAreCopiedVerbatimAfterTheirHeader() throws {
        let values: [Float] = [1, -2, 0.5, 3]
        let bytes = try WireCodec().encode(Envelope(senderID: 1, requestID: 1, message: .rowsReply(RowsReply(tableID: 9, dim: 2, values: values))))
        // header 32 | table u32 | dim u32 | rows u32 | reserved u32 | values
        let payload = Array(bytes[32...])
        #expect(Array(payload[0..<16]) == [9, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        let expected = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        #expect(Array(payload[16...]) == expected)
    }

    @Test func wrongSecretIsRejectedAsUnauthenticated() throws {
        let envelope = Envelope(senderID: 1, requestID: 1, message: SampleMessages.message(.pushRows))
        let bytes = try WireCodec(secret: Self.secret).encode(envelope)
        let other = try WireCodec(secret: Array("another secret of enough length!".utf8))
        #expect(throws: HeedError.self) { try other.decode(bytes) }
        #expect(errorCode { try other.decode(bytes) } == .unauthenticated)
    }

    @Test func missingTagIsRejectedWhenASecretIsConfigured() throws {
        let plain = try WireCodec().encode(Envelope(senderID: 1, requestID: 1, message: .ack(Ack(value: 1))))
        let authed = try WireCodec(secret: Self.secret)
        #expect(errorCode { try authed.decode(plain) } == .unauthenticated)
    }

    @Test func taggedMessageIsRejectedWithoutASecret() throws {
        let tagged = try WireCodec(secret: Self.secret).encode(Envelope(senderID: 1, requestID: 1, message: .ack(Ack(value: 1))))
        #expect(errorCode { try WireCodec().decode(tagged) } == .unauthenticated)
    }

    /// Authenticated messages end with the sequence number (u64) and the HMAC over
    /// everything before the tag, sequence included.
    @Test func authenticationTrailerIsTheSequenceThenTheTag() throws {
        let codec = try WireCodec(secret: Self.secret)
        let before = MessageSequence.next()
        let bytes = try codec.encode(Envelope(senderID: 5, requestID: 6, message: .ack(Ack(value: 9))))
        #expect(bytes.count == 32 + 8 + WireCodec.trailerSize)
        #expect(Array(bytes[8..<12]) == [1, 0, 0, 0])            // flags: authenticated
        let sequence = bytes[40..<48].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(sequence > before)
        let tag = HMAC<SHA256>.authenticationCode(for: bytes[0..<48], using: SymmetricKey(data: Self.secret))
        #expect(Array(bytes[48...]) == Array(tag))
        let header = try bytes.withUnsafeBytes { try codec.open($0).0 }
        #expect(header.sequence == sequence)
        // A second encoding of the same envelope differs only in the trailer.
        let again = try codec.encode(Envelope(senderID: 5, requestID: 6, message: .ack(Ack(value: 9))))
        #expect(Array(again[0..<40]) == Array(bytes[0..<40]))
        #expect(again[40..<48] != bytes[40..<48])
    }

    @Test func everyTamperedByteFailsAuthentication() throws {
        let codec = try WireCodec(secret: Self.secret)
        let bytes = try codec.encode(Envelope(senderID: 5, requestID: 6, message: SampleMessages.message(.pullRows)))
        for i in 0..<bytes.count {
            var tampered = bytes
            tampered[i] ^= 0x10
            // Header bytes may fail structural checks first; all must fail somehow, payload and tag as unauthenticated.
            let code = errorCode { try codec.decode(tampered) }
            #expect(code != nil, "byte \(i) flipped was accepted")
            if i >= 32 { #expect(code == .unauthenticated, "byte \(i)") }
        }
    }

    @Test func shortSecretIsAConfigError() {
        #expect(errorCode { try WireCodec(secret: [1, 2, 3]) } == .config)
    }

    @Test func unsortedOrDuplicateKeysAreRejected() throws {
        let codec = try WireCodec()
        for keys: [UInt64] in [[3, 2], [5, 5]] {
            let bytes = try codec.encode(Envelope(senderID: 1, requestID: 1, message: .pullRows(PullRows(tableID: 1, keys: keys))))
            #expect(errorCode { try codec.decode(bytes) } == .protocolViolation)
        }
    }

    @Test func otherVersionIsUnsupported() throws {
        var bytes = try WireCodec().encode(Envelope(senderID: 1, requestID: 1, message: .ack(Ack())))
        for version: UInt8 in [1, 3] {
            bytes[4] = version
            #expect(errorCode { try WireCodec().decode(bytes) } == .unsupported)
        }
    }

    @Test func oversizedMessagesAreRefusedBothWays() throws {
        let small = try WireCodec(maxMessageSize: 1024)
        let big = Envelope(senderID: 1, requestID: 1, message: .rowsReply(RowsReply(tableID: 1, dim: 64, values: [Float](repeating: 1, count: 640))))
        #expect(errorCode { try small.encode(big) } == .invalidInput)
        let bytes = try WireCodec().encode(big)
        #expect(errorCode { try small.decode(bytes) } == .protocolViolation)
    }

    @Test func errorCodesSurviveTheWire() throws {
        let codec = try WireCodec()
        for (code, _) in HeedError.Code.wireTable {
            let e = Envelope(senderID: 1, requestID: 1, message: .error(ErrorReply(code: code, message: "x")))
            #expect(try codec.decode(codec.encode(e)) == e)
        }
    }

    /// Feeds many random, truncated, bit-flipped and length-patched buffers to the decoder:
    /// it must throw a typed error or return a message, never trap or over-read.
    @Test func decoderSurvivesFuzzedInput() throws {
        var rng = SeededGenerator(seed: 0xF022)
        let codecs = [try WireCodec(), try WireCodec(secret: Self.secret)]
        var seeds: [[UInt8]] = []
        for kind in MessageKind.allCases {
            seeds.append(try codecs[0].encode(Envelope(senderID: 3, requestID: 4, message: SampleMessages.message(kind))))
        }
        for m in SampleMessages.edgeCases { seeds.append(try codecs[0].encode(Envelope(senderID: 3, requestID: 4, message: m))) }
        var accepted = 0, rejected = 0
        func feed(_ bytes: [UInt8]) {
            for codec in codecs {
                do { _ = try codec.decode(bytes); accepted += 1 } catch is HeedError { rejected += 1 } catch {
                    Issue.record("untyped error \(error)")
                }
            }
        }
        for round in 0..<6000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            switch round % 6 {
            case 0: // truncate
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 1: // flip bits
                for _ in 0..<(1 + rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8)) }
            case 2: // random garbage behind a valid magic
                let n = Int(rng.next() % 200)
                bytes = Array(bytes.prefix(4)) + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 3: // random 32-bit value in the payload (often a count or length)
                if bytes.count >= 36 {
                    let at = 32 + Int(rng.next() % UInt64(bytes.count - 35))
                    let v = UInt32(truncatingIfNeeded: rng.next() >> (rng.next() % 32))
                    withUnsafeBytes(of: v.littleEndian) { for j in 0..<4 { bytes[at + j] = $0[j] } }
                }
            case 4: // append or drop bytes and patch the header length to match
                if rng.next() % 2 == 0 { bytes += (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
                else { bytes = Array(bytes.prefix(max(32, bytes.count - Int(rng.next() % 16)))) }
                let len = UInt32(bytes.count - 32)
                withUnsafeBytes(of: len.littleEndian) { for j in 0..<4 { bytes[12 + j] = $0[j] } }
            default: // pure noise
                bytes = (0..<Int(rng.next() % 128)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            feed(bytes)
        }
        #expect(rejected > 0)
        #expect(accepted + rejected == 12_000)
    }
}

/// The `HeedError.Code` thrown by `body`, or nil if it did not throw a HeedError.
func errorCode<T>(_ body: () throws -> T) -> HeedError.Code? {
    do { _ = try body(); return nil } catch let e as HeedError { return e.code } catch { return nil }
}
