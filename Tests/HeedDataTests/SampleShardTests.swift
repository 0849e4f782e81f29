import Foundation
import HeedCore
import Testing
@testable import HeedData

@Suite struct SampleShardTests {
    /// A schema with every kind of slot, two labels and two dense values.
    static let schema = SampleSchema(
        slots: [
            FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1),
            FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1),
            FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 5),
            FeatureSlot(name: "hist_gaps", group: .timeGap, kind: .sequence, maxLength: 5, alignedWith: "hist_items"),
        ],
        labels: ["click", "purchase"], dense: ["a", "b"])

    /// Deterministic varied records (history lengths 0...5).
    static func records(_ n: Int, seed: UInt64 = 7) -> [SampleRecord] {
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { r in
            var rec = SampleRecord(schema: schema)
            rec.userID = UInt64(r / 3)
            rec.itemID = g.next()
            rec.timestamp = Int64(r) * 1000 - 5
            rec.labels = [Float(r % 2), r % 5 == 0 ? 1 : 0]
            rec.dense = [Float(r), g.nextUnitFloat()]
            rec.keys[0] = [FeatureGroup.user.key(rec.userID)]
            rec.keys[1] = [FeatureGroup.item.key(rec.itemID)]
            let len = Int(g.next() % 6)
            rec.keys[2] = (0..<len).map { _ in FeatureGroup.item.key(g.next() % 100) }
            rec.keys[3] = (0..<len).map { FeatureGroup.timeGap.key(UInt64($0)) }
            return rec
        }
    }

    @Test func writtenRecordsReadBackExactly() throws {
        let dir = Scratch(); defer { dir.remove() }
        let recs = Self.records(1000)
        let path = dir.path + "/a.heeds"
        let (bytes, crc) = try SampleShardWriter.write(path: path, schema: Self.schema, records: recs)
        let shard = try SampleShard(path: path)
        #expect(shard.count == 1000)
        #expect(shard.fileBytes == bytes)
        #expect(shard.payloadCRC == crc)
        #expect(shard.schema == Self.schema)
        for (r, rec) in recs.enumerated() {
            #expect(shard.userID(r) == rec.userID)
            #expect(shard.itemID(r) == rec.itemID)
            #expect(shard.timestamp(r) == rec.timestamp)
            #expect(shard.labels(r) == rec.labels)
            #expect(shard.dense(r) == rec.dense)
            for s in 0..<4 { #expect(shard.keys(slot: s, record: r) == rec.keys[s]) }
        }
    }

    @Test func payloadCRCEqualsCRCOfTheBytesAfterTheHeader() throws {
        let dir = Scratch(); defer { dir.remove() }
        let path = dir.path + "/a.heeds"
        let (_, crc) = try SampleShardWriter.write(path: path, schema: Self.schema, records: Self.records(77))
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let headerBytes = Int(bytes[12]) | Int(bytes[13]) << 8 | Int(bytes[14]) << 16 | Int(bytes[15]) << 24
        #expect(Array(bytes[0..<8]) == Array("HEEDSMPL".utf8))
        #expect(bytes[8] == 1 && bytes[9] == 0)
        #expect(headerBytes % 64 == 0)
        #expect(CRC32.of(Array(bytes[headerBytes...])) == crc)
    }

    @Test func emptyShardIsValid() throws {
        let dir = Scratch(); defer { dir.remove() }
        let path = dir.path + "/e.heeds"
        try SampleShardWriter.write(path: path, schema: Self.schema, records: [])
        let shard = try SampleShard(path: path)
        #expect(shard.count == 0)
        #expect(SampleBatch.gather(from: shard, records: []).size == 0)
    }

    @Test func flippedPayloadByteIsReportedWithTheFileName() throws {
        let dir = Scratch(); defer { dir.remove() }
        let path = dir.path + "/c.heeds"
        try SampleShardWriter.write(path: path, schema: Self.schema, records: Self.records(50))
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 100] ^= 0x01
        dir.write("c.heeds", bytes: bytes)
        let e = #expect(throws: HeedError.self) { try SampleShard(path: path) }
        #expect(e?.code == .corrupt)
        #expect(e?.message.contains(path) == true)
        #expect(e?.message.contains("payload checksum") == true)
        // Skipping the payload pass still opens the structurally valid file.
        #expect(try SampleShard(path: path, verifyChecksum: false).count == 50)
    }

    @Test func unknownFormatVersionIsRejected() throws {
        let dir = Scratch(); defer { dir.remove() }
        let path = dir.path + "/v.heeds"
        try SampleShardWriter.write(path: path, schema: Self.schema, records: Self.records(3))
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[8] = 3   // versions 1 (stored keys) and 2 (compact) are read
        dir.write("v.heeds", bytes: bytes)
        let e = #expect(throws: HeedError.self) { try SampleShard(path: path) }
        #expect(e?.code == .unsupported)
        #expect(e?.message.contains(path) == true)
        #expect(e?.message.contains("version 3") == true)
        #expect(e?.message.contains("heed prepare") == true, "names the command that rewrites the dataset")
    }

    @Test func truncatedAndForeignFilesAreRejected() throws {
        let dir = Scratch(); defer { dir.remove() }
        let path = dir.path + "/t.heeds"
        try SampleShardWriter.write(path: path, schema: Self.schema, records: Self.records(40))
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let cut = dir.write("cut.heeds", bytes: Array(bytes[0..<(bytes.count - 64)]))
        let e1 = #expect(throws: HeedError.self) { try SampleShard(path: cut) }
        #expect(e1?.message.contains("cut.heeds") == true)
        let other = dir.write("other.heeds", "user,item\n1,2\n" + String(repeating: "x", count: 100))
        let e2 = #expect(throws: HeedError.self) { try SampleShard(path: other) }
        #expect(e2?.message.contains("not a Heed sample shard") == true)
        var header = bytes
        header[20] ^= 0xFF   // record count
        let bad = dir.write("hdr.heeds", bytes: header)
        let e3 = #expect(throws: HeedError.self) { try SampleShard(path: bad) }
        #expect(e3?.message.contains("header checksum") == true)
    }

    @Test func batchPadsEveryRowToTheSlotWidth() throws {
        let dir = Scratch(); defer { dir.remove() }
        let recs = Self.records(20)
        let path = dir.path + "/b.heeds"
        try SampleShardWriter.write(path: path, schema: Self.schema, records: recs)
        let shard = try SampleShard(path: path)
        let rows = [7, 3, 3, 19]
        let b = SampleBatch.gather(from: shard, records: rows)
        #expect(b.size == 4)
        for (s, slot) in Self.schema.slots.enumerated() {
            let w = slot.maxLength
            #expect(b.keys[s].count == 4 * w)
            #expect(b.masks[s].count == 4 * w)
            for (row, r) in rows.enumerated() {
                let want = recs[r].keys[s]
                #expect(Int(b.lengths[s][row]) == want.count)
                #expect(Array(b.keys[s][(row * w)..<(row * w + want.count)]) == want)
                #expect(b.keys[s][(row * w + want.count)..<(row * w + w)].allSatisfy { $0 == 0 })
                #expect(b.masks[s][(row * w)..<(row * w + w)].reduce(0, +) == Float(want.count))
            }
        }
        #expect(b.labels == rows.flatMap { recs[$0].labels })
        #expect(b.dense == rows.flatMap { recs[$0].dense })
        #expect(b.userIDs == rows.map { recs[$0].userID })
        let unique = b.uniqueKeys()
        #expect(unique == Array(Set(rows.flatMap { r in recs[r].keys.flatMap { $0 } })).sorted())
    }
}
