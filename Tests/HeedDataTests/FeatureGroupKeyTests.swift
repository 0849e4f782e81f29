import HeedCore
import Testing
@testable import HeedData

/// Every way `heed prepare` turns a raw value into a feature key, pinned to literal keys of
/// real ids from the datasets. The literals come from `scripts/feature-key-literals.py`, an
/// implementation of the key layout in Python written from the definitions (SplitMix64,
/// FNV-1a 64), run once; a change to any hash, mask, group number or id-folding rule breaks
/// every prepared shard and checkpoint and turns these red.
@Suite struct FeatureGroupKeyTests {
    /// Keys of the bytes of `text` through a closure taking the loaders' (buffer, start, end).
    private func withBytes<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>, Int, Int) -> R) -> R {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { body($0, 0, $0.count) }
    }

    /// Numeric ids (Taobao, S3-Rec Amazon, UCI customers, completejourney households).
    @Test func numericIDsKeyTheirNumber() {
        #expect(FeatureGroup.rawID("2268318") == 2_268_318)
        #expect(FeatureGroup.user.key(FeatureGroup.rawID("1")) == 0x010A_2DEC_8902_5CC1)
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("2268318")) == 0x02B7_2ED3_B014_2490)
        #expect(FeatureGroup.category.key(FeatureGroup.rawID("2520377")) == 0x03B0_7563_305C_4255)
        #expect(FeatureGroup.user.key(FeatureGroup.rawID("17850")) == 0x01C4_5B11_D4B5_6595)
        // Leading zeros: still a number (so "0071053" and 71053 are one item).
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("0071053")) == 0x02A6_9633_BB34_4029)
    }

    /// Textual ids (UCI/generic stock codes, ASINs, completejourney categories and bands).
    @Test func textualIDsKeyTheirFNVHash() {
        #expect(FeatureGroup.rawID("85123A") == 0x3C81_3AFD_AE09_3CC9)
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("85123A")) == 0x02A2_E95E_9624_35AF)
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("B00004TMFE")) == 0x02BA_CCD4_3634_148E)
        #expect(FeatureGroup.category.key(FeatureGroup.rawID("FRZN ICE")) == 0x0360_CBA7_17AA_D92C)
        #expect(FeatureGroup.incomeBand.key(FeatureGroup.rawID("50-74K")) == 0x092D_E1B1_223F_EC73)
        #expect(FeatureGroup.ageBand.key(FeatureGroup.rawID("45-54")) == 0x0A05_9022_9DE1_DED0)
        // The documented identity with FeatureKey's string initialiser.
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("85123A")) == FeatureKey(group: 2, id: "85123A").rawValue)
    }

    /// Amazon attribute ids (numbers) and retail `field=value` attribute tokens.
    @Test func attributesKeyTheirIDOrFieldValue() {
        #expect(FeatureGroup.attribute.key(1) == 0x040A_2DEC_8902_5CC1)
        #expect(withBytes("National") { attributeKey(field: "brand", $0, $1, $2) } == 0x0405_8B75_1D20_A0BF)
        #expect(withBytes("2") { attributeKey(field: "manufacturer", $0, $1, $2) } == 0x04B6_463C_207E_6C82)
        #expect(withBytes("") { attributeKey(field: "brand", $0, $1, $2) } == nil)
    }

    /// Title words: lower-cased, split on non-alphanumerics, in order.
    @Test func titleWordsKeyTheirLowerCasedFNVHash() {
        let keys = withBytes("INFLATABLE POLITICAL GLOBE") { textTokenKeys($0, $1, $2, limit: 8) }
        #expect(keys == [0x0B73_92D0_AAA2_6A20, 0x0BA2_679E_A4D3_411F, 0x0BE9_F3FE_5A8A_E52D])
        // 'Z' and 'A' are the edges of the case folding; the one-letter "T" is dropped.
        let zinc = withBytes("ZINC HEART LATTICE T-LIGHT HOLDER") { textTokenKeys($0, $1, $2, limit: 8) }
        #expect(zinc == [0x0B29_D850_3D6E_D136, 0x0B75_86C3_3AC0_FE55, 0x0BA9_B09E_A609_9D2E, 0x0B25_DAFF_5FF5_AD82, 0x0B73_5D85_FC57_1915])
        #expect(withBytes("ZINC HEART LATTICE T-LIGHT HOLDER") { textTokenKeys($0, $1, $2, limit: 2) } == Array(zinc.prefix(2)))
    }

    /// Small enumerations keyed by their number, and the missing-value key.
    @Test func enumeratedGroupsKeyTheirNumber() {
        #expect(FeatureGroup.eventType.key(UInt64(EventType.view.rawValue)) == 0x050A_2DEC_8902_5CC1)
        #expect(FeatureGroup.eventType.key(UInt64(EventType.purchase.rawValue)) == 0x0573_E372_E233_8ACA)
        #expect(FeatureGroup.timeGap.key(3) == 0x060B_14E4_DB01_8FED)
        #expect(FeatureGroup.priceLevel.key(2) == 0x0758_35DE_1C97_56CE)
        #expect(FeatureGroup.spendLevel.key(1) == 0x080A_2DEC_8902_5CC1)
        #expect(FeatureGroup.item.missingKey == 0x02D9_7177_1B65_2C20)
    }
}
