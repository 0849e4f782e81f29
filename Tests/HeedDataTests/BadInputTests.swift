import Foundation
import HeedCore
import Testing
@testable import HeedData

/// Every bad-input class fails the run with a message naming file and line (or byte
/// offset), and leaves no output directory and no temporary directory behind.
@Suite struct BadInputTests {
    /// One bad input: files to write, the dataset kind, and what the error must say.
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var dataset: PrepareOptions.Dataset
        var files: [String: String]
        /// The file the error must name, and the location text (`:line:` or `byte offset`).
        var file: String
        var location: String
        var expect: String
        var testDescription: String { name }
    }

    static let goodTaobao = "1,10,100,pv,1511544070\n1,11,100,cart,1511544080\n1,12,101,buy,1511544090\n"
    static let goodEvents = "user,item,event,timestamp\nu1,i1,view,1511544070\nu1,i2,purchase,1511544080\nu1,i3,view,1511544090\n"

    static let cases: [Case] = [
        Case(name: "wrong column count", dataset: .taobao, files: ["tb.csv": goodTaobao + "2,20,200,pv\n"],
             file: "tb.csv", location: ":4:", expect: "wrong column count: expected 5 fields"),
        Case(name: "non-numeric id", dataset: .taobao, files: ["tb.csv": goodTaobao + "x7,20,200,pv,1511544070\n"],
             file: "tb.csv", location: ":4:", expect: "non-numeric user_id 'x7'"),
        Case(name: "non-numeric timestamp", dataset: .generic, files: ["events.csv": goodEvents + "u2,i1,view,yesterday\n"],
             file: "events.csv", location: ":5:", expect: "bad timestamp 'yesterday'"),
        Case(name: "non-numeric taobao timestamp", dataset: .taobao, files: ["tb.csv": "1,10,100,pv,15115x4070\n" + goodTaobao],
             file: "tb.csv", location: ":1:", expect: "non-numeric timestamp"),
        Case(name: "empty file", dataset: .generic, files: ["events.csv": ""],
             file: "events.csv", location: "events.csv:", expect: "file is empty"),
        Case(name: "unknown event type", dataset: .taobao, files: ["tb.csv": goodTaobao + "2,20,200,like,1511544070\n"],
             file: "tb.csv", location: ":4:", expect: "unknown behavior_type 'like'"),
        Case(name: "unknown generic event type", dataset: .generic, files: ["events.csv": goodEvents + "u1,i9,share,1511544099\n"],
             file: "events.csv", location: ":5:", expect: "unknown event type 'share'"),
        Case(name: "repeated header", dataset: .generic, files: ["events.csv": goodEvents + "user,item,event,timestamp\n" + "u2,i1,view,1511544070\n"],
             file: "events.csv", location: ":5:", expect: "header line repeated"),
        Case(name: "duplicate header column", dataset: .generic, files: ["events.csv": "user,item,event,timestamp,user\nu1,i1,view,1,u1\n"],
             file: "events.csv", location: ":1:", expect: "duplicate column 'user'"),
        Case(name: "unknown schema version", dataset: .generic, files: ["events.csv": "# heed-schema: 2\n" + goodEvents],
             file: "events.csv", location: ":1:", expect: "unknown schema version '2'"),
        Case(name: "wrong header", dataset: .amazonGrocery, files: ["train.csv": "user\titem\ttime\n1\t2\t3\n"],
             file: "train.csv", location: ":1:", expect: "expected 'user_id,item_id,time'"),
        Case(name: "malformed attribute JSON", dataset: .amazonBeauty,
             files: ["Beauty.txt": "1 1 2 3\n2 2 3 4\n", "Beauty_item2attributes.json": "{\"1\": [1, 2], \"2\": [3 4]}"],
             file: "Beauty_item2attributes.json", location: "byte offset 22", expect: "malformed JSON"),
        Case(name: "non-numeric Amazon item", dataset: .amazonBeauty, files: ["Beauty.txt": "1 1 2 3\n2 2 B00X 4\n"],
             file: "Beauty.txt", location: ":2:", expect: "non-numeric item id 'B00X'"),
        Case(name: "bad price", dataset: .generic, files: ["events.csv": "user,item,event,timestamp,price\nu1,i1,buy,1,2.5\nu1,i2,buy,2,cheap\n"],
             file: "events.csv", location: ":3:", expect: "bad price 'cheap'"),
    ]

    @Test(arguments: cases)
    func badInputFailsWithLocationAndLeavesNoOutput(_ c: Case) throws {
        let dir = Scratch(c.name); defer { dir.remove() }
        for (name, text) in c.files { dir.write(name, text) }
        let out = dir.path + "/out"
        var o = PrepareOptions(dataset: c.dataset, input: dir.path, output: out)
        if c.dataset == .taobao { o.events = dir.path + "/tb.csv" }
        let e = #expect(throws: HeedError.self) { try Preparer.prepare(o) }
        let message = e?.description ?? ""
        #expect(message.contains(dir.path + "/" + c.file), "message does not name the file: \(message)")
        #expect(message.contains(c.location), "message lacks location \(c.location): \(message)")
        #expect(message.contains(c.expect), "message lacks '\(c.expect)': \(message)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!dir.entries().contains { $0.hasPrefix(".out.") }, "temporary output left: \(dir.entries())")
    }

    @Test func truncatedGzipNamesTheCompressedOffset() throws {
        let dir = Scratch(); defer { dir.remove() }
        let whole = [UInt8](FileManager.default.contents(atPath: repoData + "/taobao-userbehavior-sample/UserBehavior.csv.gz")!)
        let path = dir.write("UserBehavior.csv.gz", bytes: Array(whole[0..<(whole.count / 2)]))
        let out = dir.path + "/out"
        let o = PrepareOptions(dataset: .taobao, input: dir.path, output: out)
        let e = #expect(throws: HeedError.self) { try Preparer.prepare(o) }
        let message = e?.description ?? ""
        #expect(message.contains(path))
        #expect(message.contains("truncated gzip stream at compressed byte offset"))
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(dir.entries() == ["UserBehavior.csv.gz"])
    }

    @Test func skipBadRowsCountsEachClassAndKeepsGoodRows() throws {
        let dir = Scratch(); defer { dir.remove() }
        let events = """
        user,item,event,timestamp,price
        u1,i1,view,1511544070,1.0
        u1,i2,purchase,1511544080,2.0
        u1,i3,view,1511544090
        u1,i4,share,1511544095,1.0
        u1,i5,view,noon,1.0
        ,i6,view,1511544099,1.0
        u1,i7,view,1511544100,free
        user,item,event,timestamp,price
        u1,i8,cart,1511544200,3.0
        u2,i1,view,1511544070,1.0
        u2,i2,view,1511544071,1.0
        u2,i3,view,1511544072,1.0

        """
        dir.write("events.csv", events)
        var o = PrepareOptions(dataset: .generic, input: dir.path, output: dir.path + "/out")
        o.skipBadRows = true
        let m = try Preparer.prepare(o)
        #expect(m.stats.badRows == ["wrongColumnCount": 1, "unknownEventType": 1, "nonNumericTimestamp": 1,
                                    "nonNumericID": 1, "badNumber": 1, "duplicateHeader": 1])
        #expect(m.stats.eventsKept == 6)
        #expect(m.stats.rowsRead == 12)
        // Without the flag the first bad row (line 4) stops the run.
        o.skipBadRows = false
        o.output = dir.path + "/out2"
        let e = #expect(throws: HeedError.self) { try Preparer.prepare(o) }
        #expect(e?.message.contains("events.csv:4:") == true)
    }

    @Test func existingOutputIsKeptUnlessOverwriteIsGiven() throws {
        let dir = Scratch(); defer { dir.remove() }
        dir.write("events.csv", Self.goodEvents)
        let out = dir.path + "/out"
        var o = PrepareOptions(dataset: .generic, input: dir.path, output: out)
        try Preparer.prepare(o)
        let e = #expect(throws: HeedError.self) { try Preparer.prepare(o) }
        #expect(e?.message.contains("already exists") == true)
        o.overwrite = true
        try Preparer.prepare(o)
        #expect(dir.entries() == ["events.csv", "out"])
    }
}
