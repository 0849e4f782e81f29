import Foundation
import Testing
@testable import HeedCore

/// The pre-trained item vectors file (`.heedvec`): the committed sample made by
/// scripts/embed-item-text.py, round trips, and every kind of bad file, each refused with
/// an error that names the file.
@Suite struct ItemVectorsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let sample = repository + "/data/generic-online-retail-sample/item-text-minilm.heedvec"

    static func temporary(_ name: String) -> String {
        NSTemporaryDirectory() + "heed-vectors-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
    }

    /// A small file written by this code: 3 items × 4 values.
    static let small = ItemVectors(dim: 4, rawIDs: [3, 10, 85_123], values: (0..<12).map { Float($0) * 0.25 - 1 },
                                   metadata: #"{"model":"test"}"#)

    /// Reads `bytes` written to a temporary file; returns the error it raises.
    static func error(reading bytes: [UInt8], expectedDim: Int? = nil) -> HeedError? {
        let path = temporary("bad.heedvec")
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ItemVectors.read(path: path, expectedDim: expectedDim)
            return nil
        } catch let e as HeedError {
            #expect(e.message.hasPrefix(path), "the message should start with the file: \(e.message)")
            return e
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    /// The committed sample: 2,407 items of the generic Online Retail sample, 384 wide,
    /// unit-norm MiniLM sentence embeddings (normalised before rounding to Float16).
    @Test func committedSampleReadsAsUnitNormMiniLMVectors() throws {
        let v = try ItemVectors.read(path: Self.sample, expectedDim: 384)
        #expect(v.count == 2407 && v.dim == 384)
        #expect(v.metadata.contains("all-MiniLM-L6-v2"))
        for i in 0..<v.count {
            let norm = v.values[(i * 384)..<((i + 1) * 384)].reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 2e-3, "row \(i) has norm \(norm)")
        }
        // Different titles give different vectors.
        #expect(Set((0..<v.count).map { v.values[($0 * 384)..<($0 * 384 + 8)].map(\.bitPattern) }).count > 2300)
    }

    @Test(arguments: [ItemVectors.ValueType.float32, .float16])
    func writtenFilesReadBack(valueType: ItemVectors.ValueType) throws {
        let path = Self.temporary("ok.heedvec")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.small.write(to: path, as: valueType)
        let back = try ItemVectors.read(path: path, expectedDim: 4)
        // Every value here is exact in Float16 too.
        #expect(back == Self.small)
        #expect(back.row(of: 10).map(Array.init) == [0, 0.25, 0.5, 0.75])
        #expect(back.row(of: 11) == nil)
    }

    @Test func wrongDimensionIsAConfigErrorNamingBothWidths() {
        let e = Self.error(reading: Self.small.encoded(), expectedDim: 384)
        #expect(e?.code == .config)
        #expect(e?.message.contains("4 dimensions") == true && e?.message.contains("384") == true)
    }

    @Test(arguments: [1, 63, 64, 100, 131])
    func truncatedFilesAreCorrupt(keep: Int) {
        let bytes = Self.small.encoded()
        #expect(keep < bytes.count)
        let e = Self.error(reading: Array(bytes[0..<keep]))
        #expect(e?.code == .corrupt)
        #expect(e?.message.contains("truncated") == true, "\(e?.message ?? "")")
    }

    @Test func trailingBytesAreCorrupt() {
        let e = Self.error(reading: Self.small.encoded() + [0, 0, 0, 0])
        #expect(e?.code == .corrupt && e?.message.contains("trailing") == true)
    }

    /// A flipped bit anywhere in the payload (metadata, ids, values) fails the checksum.
    @Test(arguments: [64, 85, 100, 120, 150])
    func damagedPayloadFailsTheChecksum(offset: Int) {
        var bytes = Self.small.encoded()
        bytes[offset] ^= 0x10
        let e = Self.error(reading: bytes)
        #expect(e?.code == .corrupt)
        #expect(e?.message.contains("checksum") == true, "\(e?.message ?? "")")
    }

    @Test func damagedHeaderFailsItsChecksum() {
        var bytes = Self.small.encoded()
        bytes[12] = 5  // dim 4 → 5
        let e = Self.error(reading: bytes)
        #expect(e?.code == .corrupt && e?.message.contains("header checksum") == true)
    }

    @Test func otherFilesAreRejectedByMagicAndVersion() {
        var bytes = Self.small.encoded()
        bytes[0] = UInt8(ascii: "X")
        #expect(Self.error(reading: bytes)?.message.contains("not a Heed vectors file") == true)
        #expect(Self.error(reading: Array("user,item\n1,2\n".utf8))?.code == .corrupt)
    }

    @Test func unsortedOrDuplicateIdsAreCorrupt() {
        for ids: [UInt64] in [[10, 3, 85_123], [3, 3, 4]] {
            let v = ItemVectors(dim: 4, rawIDs: ids, values: Self.small.values)
            let e = Self.error(reading: v.encoded())
            #expect(e?.code == .corrupt && e?.message.contains("strictly ascending") == true)
        }
    }

    @Test func nonFiniteValuesAreCorrupt() {
        var values = Self.small.values
        values[5] = .nan
        let e = Self.error(reading: ItemVectors(dim: 4, rawIDs: Self.small.rawIDs, values: values).encoded())
        #expect(e?.code == .corrupt && e?.message.contains("item 10") == true)
    }

    @Test func missingFileIsNotFound() {
        let path = Self.temporary("absent.heedvec")
        #expect(throws: HeedError.self) { try ItemVectors.read(path: path) }
        do { _ = try ItemVectors.read(path: path) } catch let e as HeedError {
            #expect(e.code == .notFound && e.message.hasPrefix(path))
        } catch {}
    }
}
