import Foundation
import HeedCore
import HeedData
import Testing
@testable import HeedModels

/// `ModelBatch(sampleBatch:labelName:fields:)` maps slots, masks, labels and users.
@Suite struct ModelBatchAdapterTests {
    static let schema = SampleSchema(
        slots: [FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1),
                FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1),
                FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 3),
                FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: 3, alignedWith: "hist_items")],
        labels: ["click", "purchase"], dense: ["log_hist_len"])

    /// Three records: histories of length 2, 0 and 3; labels (click, purchase).
    static func writeShard() throws -> (SampleShard, String) {
        let path = TestData.scratch("adapter") + ".heeds"
        let histories: [[UInt64]] = [[10, 11], [], [12, 13, 14]]
        let labels: [[Float]] = [[1, 0], [0, 0], [1, 1]]
        var records: [SampleRecord] = []
        for r in 0..<3 {
            var rec = SampleRecord(schema: schema)
            rec.userID = UInt64(100 + r)
            rec.itemID = UInt64(r + 1)
            rec.keys[0] = [FeatureGroup.user.key(UInt64(100 + r))]
            rec.keys[1] = [FeatureGroup.item.key(UInt64(r + 1))]
            rec.keys[2] = histories[r].map { FeatureGroup.item.key($0) }
            rec.keys[3] = histories[r].map { FeatureGroup.category.key($0 % 2) }
            rec.labels = labels[r]
            rec.dense = [Float(histories[r].count)]
            records.append(rec)
        }
        _ = try SampleShardWriter.write(path: path, schema: schema, records: records)
        return (try SampleShard(path: path), path)
    }

    @Test func mapsSlotsMasksLabelsAndUsers() throws {
        let (shard, path) = try Self.writeShard()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sample = SampleBatch.gather(from: shard, records: [2, 0, 1])
        let batch = try ModelBatch(sampleBatch: sample, labelName: "purchase")

        #expect(batch.size == 3)
        #expect(batch.labels == [1, 0, 0])
        #expect(try ModelBatch(sampleBatch: sample, labelName: "click").labels == [1, 1, 0])
        #expect(batch.users == [102, 100, 101])
        #expect(batch.denseWidth == 1 && batch.dense == [3, 2, 0])
        #expect(Set(batch.fields.keys) == ["user", "item", "hist_items", "hist_categories"])

        let item = batch.fields["item"]!
        #expect(item.length == 1 && item.keys == [3, 1, 2].map { FeatureGroup.item.key($0) } && item.mask == [1, 1, 1])
        let hist = batch.fields["hist_items"]!
        let k = { FeatureGroup.item.key($0) }
        #expect(hist.length == 3)
        #expect(hist.keys == [k(12), k(13), k(14), k(10), k(11), 0, 0, 0, 0])
        #expect(hist.mask == [1, 1, 1, 1, 1, 0, 0, 0, 0])
        let cats = batch.fields["hist_categories"]!
        #expect(cats.mask == hist.mask)
        #expect(cats.keys[0] == FeatureGroup.category.key(0) && cats.keys[3] == FeatureGroup.category.key(0) && cats.keys[4] == FeatureGroup.category.key(1))

        // Every real key is pulled, under its table; padding never is.
        let pulled = batch.uniqueKeysByTable()
        #expect(pulled[FeatureGroup.item.rawValue]?.count == 8)
        #expect(pulled[FeatureGroup.category.rawValue]?.count == 2)
        #expect(pulled[0] == nil)
    }

    @Test func keepsOnlyRequestedFieldsAndRejectsUnknownNames() throws {
        let (shard, path) = try Self.writeShard()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sample = SampleBatch.gather(from: shard, records: [0, 1])
        let batch = try ModelBatch(sampleBatch: sample, labelName: "click", fields: ["item", "hist_items"])
        #expect(Set(batch.fields.keys) == ["item", "hist_items"])
        #expect(Set(batch.uniqueKeysByTable().keys) == [FeatureGroup.item.rawValue])

        #expect { try ModelBatch(sampleBatch: sample, labelName: "cart") } throws: { e in
            (e as? HeedError)?.message.contains("'cart'") == true && (e as? HeedError)?.message.contains("click, purchase") == true
        }
        #expect { try ModelBatch(sampleBatch: sample, labelName: "click", fields: ["price_level"]) } throws: { e in
            (e as? HeedError)?.message.contains("'price_level'") == true
        }
    }

    @Test func matchesShardRecordsOfAPreparedRealSample() throws {
        let (manifest, directory) = try TestData.prepare(.amazonBeauty, input: TestData.root + "/data/amazon-beauty-sample", maxLength: 10)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shard = try manifest.open(.test, directory: directory)[0]
        let records = Array(stride(from: 0, to: shard.count, by: 97))
        let sample = SampleBatch.gather(from: shard, records: records)
        let batch = try ModelBatch(sampleBatch: sample, labelName: "click")
        for (s, slot) in manifest.schema.slots.enumerated() {
            let field = batch.fields[slot.name]!
            for (row, r) in records.enumerated() {
                let stored = shard.withKeys(slot: s, record: r) { Array($0) }
                let width = slot.maxLength
                #expect(Array(field.keys[(row * width)..<(row * width + stored.count)]) == stored)
                #expect(field.mask[(row * width)..<((row + 1) * width)].reduce(0, +) == Float(stored.count))
            }
        }
        for (row, r) in records.enumerated() {
            #expect(batch.labels[row] == shard.labels(r)[0])
            #expect(batch.users[row] == shard.userID(r))
        }
    }
}
