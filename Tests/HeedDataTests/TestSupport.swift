import Foundation
import HeedCore
@testable import HeedData

/// A fresh scratch directory per test (tests run in parallel).
struct Scratch {
    /// Absolute path of the directory.
    let path: String

    init(_ name: String = #function) {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "heed-data-tests-\(getpid())-\(clean)-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }

    /// Writes raw bytes.
    @discardableResult
    func write(_ name: String, bytes: [UInt8]) -> String {
        let p = path + "/" + name
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    /// Names of the entries in the directory.
    func entries() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    /// Removes the directory.
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's committed sample data folder.
let repoData: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path + "/data"
}()

/// The shared real datasets, when present on this machine.
let sharedData = "/work/shared/data"

/// Lines of a (possibly gzipped) text file, read with the library's own reader.
func readLines(_ path: String) throws -> [String] {
    var out: [String] = []
    try LineReader(path: path).forEachLine(expected: "text") { line, _ in
        out.append(String(decoding: line, as: UTF8.self))
        return true
    }
    return out
}

/// All records of all shards of `split` as (shard, record) pairs.
func allRecords(_ shards: [SampleShard]) -> [(SampleShard, Int)] {
    shards.flatMap { s in (0..<s.count).map { (s, $0) } }
}
