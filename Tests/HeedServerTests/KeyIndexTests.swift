import HeedCore
import Testing
@testable import HeedServer

@Suite struct KeyIndexTests {
    // Random inserts, overwrites and removals against a Dictionary model, on a key range
    // small enough that probe runs collide and removals shift entries back constantly.
    @Test func matchesADictionaryUnderRandomInsertsAndRemovals() {
        let index = KeyIndex()
        var model: [UInt64: UInt64] = [:]
        var rng = SeededGenerator(seed: 11)
        for op in 0..<200_000 {
            let key = rng.next() % 5_000
            let h = KeyIndex.hash(key)
            if rng.next() % 3 == 0 {
                #expect(index.remove(key, hash: h) == (model.removeValue(forKey: key) ?? 0))
            } else {
                let value = UInt64(op + 1)
                #expect(index.insert(key, hash: h, value: value) == (model.updateValue(value, forKey: key) ?? 0))
            }
        }
        #expect(index.count == model.count)
        for key in UInt64(0)..<5_000 {
            #expect(index.find(key, hash: KeyIndex.hash(key)) == (model[key] ?? 0))
        }
        var seen = 0
        index.forEach { key, value in
            seen += 1
            #expect(model[key] == value)
        }
        #expect(seen == model.count)
    }

    @Test func growsKeepingTheLoadFactorBound() {
        let index = KeyIndex()
        for k in UInt64(0)..<100_000 { index.insert(k &* 0x9E37_79B9, hash: KeyIndex.hash(k &* 0x9E37_79B9), value: k + 1) }
        #expect(index.count == 100_000)
        #expect(index.count * 10 <= index.capacity * KeyIndex.maxLoadTenths)
        #expect(index.capacity == 262_144)
        for k in UInt64(0)..<100_000 { #expect(index.find(k &* 0x9E37_79B9, hash: KeyIndex.hash(k &* 0x9E37_79B9)) == k + 1) }
    }

    // Backward-shift deletion leaves no tombstones: after removing everything the table
    // is exactly empty, and extreme keys (0, all ones) are ordinary keys.
    @Test func removingEveryKeyLeavesNoResidue() {
        let index = KeyIndex()
        let keys: [UInt64] = [0, .max, 1, 1 << 63] + (2..<3_000).map { UInt64($0) }
        for (i, k) in keys.enumerated() { index.insert(k, hash: KeyIndex.hash(k), value: UInt64(i + 1)) }
        #expect(index.find(0, hash: KeyIndex.hash(0)) == 1 && index.find(.max, hash: KeyIndex.hash(.max)) == 2)
        for k in keys.reversed() { #expect(index.remove(k, hash: KeyIndex.hash(k)) != 0) }
        #expect(index.count == 0)
        var any = false
        index.forEach { _, _ in any = true }
        #expect(!any)
        #expect(index.remove(7, hash: KeyIndex.hash(7)) == 0)
    }
}

@Suite struct RowArenaTests {
    // Rows never move as chunks are added, and released rows are handed out again first.
    @Test func rowsStayPutAndReleasedRowsAreReused() {
        let arena = RowArena(stride: 784, hugePages: false)
        var rows: [UnsafeMutableRawPointer] = []
        for i in 0..<20_000 {
            let r = arena.allocate()
            r.storeBytes(of: UInt64(i), toByteOffset: 16, as: UInt64.self)
            rows.append(r)
        }
        #expect(Set(rows.map { UInt(bitPattern: $0) }).count == rows.count)
        for (i, r) in rows.enumerated() { #expect(r.load(fromByteOffset: 16, as: UInt64.self) == UInt64(i)) }
        var carved = 0
        arena.forEachCarvedRow { _ in carved += 1 }
        #expect(carved == 20_000 && arena.liveRows == 20_000)
        let touched = arena.touchedBytes
        #expect(touched >= 20_000 * 784 && touched < 20_000 * 784 * 2)
        arena.release(rows[5])
        arena.release(rows[9])
        #expect(arena.allocate() == rows[9])
        #expect(arena.allocate() == rows[5])
        #expect(arena.touchedBytes == touched)
    }
}

@Suite struct AdmissionSketchTests {
    // With few keys there are no collisions to hide behind: each key's estimate is exact.
    @Test func countsExactlyWithoutCollisions() {
        var sketch = AdmissionSketch(width: 1 << 16)
        for round in 1...5 {
            for k in UInt64(0)..<100 { #expect(sketch.increment(hash: KeyIndex.hash(k)) == round) }
        }
    }

    @Test func agingHalvesCounts() {
        var sketch = AdmissionSketch(width: 64)
        let h = KeyIndex.hash(42)
        for _ in 0..<10 { _ = sketch.increment(hash: h) }
        sketch.age()
        #expect(sketch.increment(hash: h) == 6)
    }
}
