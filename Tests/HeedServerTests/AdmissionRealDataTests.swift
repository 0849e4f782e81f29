import CZlib
import Foundation
import HeedCore
import HeedOptim
import Testing
@testable import HeedServer

/// Amazon 2014 Beauty (S3-Rec sequences): the repository's `data/` copy if present, else the
/// shared dataset directory; nil when neither exists.
let beautySequencesPath: String? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [root.appendingPathComponent("data/amazon2014-beauty-sports-toys-s3rec/Beauty.txt.gz").path,
                      "/work/shared/data/amazon2014-beauty-sports-toys-s3rec/Beauty.txt.gz"]
    return candidates.first { FileManager.default.fileExists(atPath: $0) }
}()

/// Item ids of each user's time-ordered sequence ("user item item ..." per line).
func readSequences(_ path: String) throws -> [[UInt64]] {
    guard let f = gzopen(path, "rb") else { throw HeedError(.io, "cannot open \(path)") }
    defer { gzclose(f) }
    var text = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
        guard n > 0 else { break }
        text += buffer[0..<Int(n)]
    }
    return String(decoding: text, as: UTF8.self).split(separator: "\n").map { line in
        line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
    }
}

@Suite struct AdmissionRealDataTests {
    // Replays the 198k Beauty interactions as one pull per interaction with admission
    // N = 10. The sketch may admit a key early (collisions overcount) but never late: once
    // a key's true count reaches N its pull returns a row. Early admissions stay rare.
    @Test(.enabled(if: beautySequencesPath != nil, "needs the Amazon Beauty sequences"))
    func admissionIsNeverLateAndRarelyEarlyOnRealTraffic() throws {
        let sequences = try readSequences(beautySequencesPath!)
        #expect(sequences.count == 22_363)
        let minCount = 10
        let table = try EmbeddingTable(
            config: EmbeddingTableConfig(name: "item", dim: 4, admissionMinCount: minCount),
            options: EmbeddingTableOptions(stripes: 4, hugePages: false, admissionSketchWidth: 1 << 15))
        var counts: [UInt64: Int] = [:]
        var late = 0, early = 0, pulls = 0
        for (u, seq) in sequences.enumerated() {
            for item in seq {
                let key = FeatureKey(group: 2, id: item).rawValue
                counts[key, default: 0] += 1
                let hasRow = table.pull([key], step: UInt32(u)).contains { $0 != 0 }
                if counts[key]! >= minCount && !hasRow { late += 1 }
                if counts[key]! < minCount && hasRow { early += 1 }
                pulls += 1
            }
        }
        let frequent = counts.values.filter { $0 >= minCount }.count
        #expect(pulls == 198_502)
        #expect(late == 0)
        #expect(table.rowCount >= frequent)
        // Keys admitted while still below N, as a share of all pulls made below N.
        let belowN = counts.values.reduce(0) { $0 + min($1, minCount - 1) }
        #expect(Double(early) / Double(belowN) < 0.01, "early admissions: \(early) of \(belowN)")
        #expect(table.stats().unadmittedReads == belowN - early)
    }
}
