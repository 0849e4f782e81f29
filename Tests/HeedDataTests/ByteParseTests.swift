import HeedCore
import Testing
@testable import HeedData

@Suite struct ByteParseTests {
    private func with<R>(_ s: String, _ f: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var t = s
        return t.withUTF8 { f($0) }
    }

    @Test func integersRejectStrayBytesAndOverflow() {
        #expect(with("12345") { ByteParse.uint64($0, 0, $0.count) } == 12345)
        #expect(with("18446744073709551615") { ByteParse.uint64($0, 0, $0.count) } == UInt64.max)
        #expect(with("18446744073709551616") { ByteParse.uint64($0, 0, $0.count) } == nil)
        #expect(with("12a") { ByteParse.uint64($0, 0, $0.count) } == nil)
        #expect(with("") { ByteParse.uint64($0, 0, $0.count) } == nil)
        #expect(with("-42") { ByteParse.int64($0, 0, $0.count) } == -42)
        #expect(with("-9223372036854775808") { ByteParse.int64($0, 0, $0.count) } == Int64.min)
        #expect(with("9223372036854775808") { ByteParse.int64($0, 0, $0.count) } == nil)
    }

    @Test(arguments: ["2.55", "0.001", "-11062.06", "1.6653349999999998e-16", "1e3", ".5", "7.", "123456789012345678901.5", "0.29"])
    func decimalsMatchTheStandardLibrary(_ text: String) {
        let v = with(text) { ByteParse.double($0, 0, $0.count) }
        #expect(v != nil)
        let ref = Double(text) ?? Double("0" + text)!
        #expect(abs(v! - ref) <= abs(ref) * 1e-15)
    }

    @Test func decimalsRejectGarbage() {
        for bad in ["", "-", "1.2.3", "abc", "1e", "3,5", "1e999"] {
            #expect(with(bad) { ByteParse.double($0, 0, $0.count) } == nil, "accepted '\(bad)'")
        }
    }

    @Test func dateTimesAreUTCSeconds() {
        #expect(with("1970-01-01") { ByteParse.dateTime($0, 0, $0.count) } == 0)
        #expect(with("2010-12-01 08:26:00") { ByteParse.dateTime($0, 0, $0.count) } == 1_291_191_960)
        #expect(with("2017-11-26T01:00:00Z") { ByteParse.dateTime($0, 0, $0.count) } == 1_511_658_000)
        #expect(with("2000-02-29 23:59") { ByteParse.dateTime($0, 0, $0.count) } == 951_868_740)
        #expect(with("2017-13-01") { ByteParse.dateTime($0, 0, $0.count) } == nil)
        #expect(with("2017/11/26") { ByteParse.dateTime($0, 0, $0.count) } == nil)
        #expect(with("1511658000") { ByteParse.timestamp($0, 0, $0.count) } == 1_511_658_000)
    }

    @Test func quotedFieldsKeepDelimitersInside() {
        var f = FieldSplitter(delimiter: UInt8(ascii: ","), quoted: true)
        with("536365,\"SET 2, \"\"TEA\"\" TOWELS\",6,,x") { f.split($0) }
        #expect(f.count == 5)
        #expect(f.wellFormed)
        let text = "536365,\"SET 2, \"\"TEA\"\" TOWELS\",6,,x"
        let field1 = Array(text.utf8)[f.starts[1]..<f.ends[1]]
        #expect(String(decoding: field1, as: UTF8.self) == "SET 2, \"\"TEA\"\" TOWELS")
        #expect(f.starts[3] == f.ends[3])
        with("a,\"open") { f.split($0) }
        #expect(!f.wellFormed)
    }

    @Test func eventNamesMapToTypes() {
        for (name, type) in [("pv", EventType.view), ("click", .view), ("cart", .cart), ("fav", .fav), ("buy", .purchase), ("purchase", .purchase), ("rating", .rating)] {
            #expect(with(name) { EventType.parse($0, 0, $0.count) } == type)
        }
        #expect(with("like") { EventType.parse($0, 0, $0.count) } == nil)
        #expect(with("PV") { EventType.parse($0, 0, $0.count) } == nil)
    }

    @Test func textualAndNumericIdsShareTheKeyRules() {
        #expect(FeatureGroup.rawID("12345") == 12345)
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("85123A")) == FeatureKey(group: FeatureGroup.item.rawValue, id: "85123A").rawValue)
        #expect(FeatureGroup.item.key(FeatureGroup.rawID("42")) == FeatureKey(group: FeatureGroup.item.rawValue, id: UInt64(42)).rawValue)
        #expect(FeatureGroup.category.missingKey >> 56 == UInt64(FeatureGroup.category.rawValue))
        #expect(FeatureGroup.allCases.allSatisfy { $0 == .padding || $0.key(0) != 0 })
    }
}
