import Testing
@testable import HeedObserve

struct ResidentMemoryTests {
    @Test func residentMemoryGrowsWhenPagesAreTouched() {
        let before = ResidentMemory.bytes() ?? 0
        var block = [UInt8](repeating: 1, count: 64 << 20)
        block[block.count - 1] = 2
        let after = ResidentMemory.bytes() ?? 0
        #expect(after - before > 48 << 20, "\(before) -> \(after)")
        #expect(block.last == 2)
    }
}
