import Foundation
import Testing
import HeedCore
@testable import HeedCheckpoint

/// One crafted file per rejection branch of `SavedModel` and `ParameterFile`: each must be a
/// typed error naming the file, never a crash and never a silent load.
@Suite struct RejectionTests {
    /// The layout `writeSample` files fit (tables 3 and 9, 5 dense values).
    func config() -> RunConfig { SavedModelTests().config() }

    /// A valid 2-server model; returns its directory.
    func model() throws -> String {
        let dir = temporaryDirectory()
        try SavedModel.prepareDirectory(dir)
        let a = try writeSample(dir + "/shard-0.bin", dense: [1, 2, 3], rank: 0, servers: 2, denseStart: 0, denseTotal: 5)
        let b = try writeSample(dir + "/shard-1.bin", dense: [4, 5], rank: 1, servers: 2, denseStart: 3, denseTotal: 5)
        try SavedModel(step: 12, config: config(), servers: 2, slots: 64, files: [a, b], statistics: [0.5, 2]).write(to: dir)
        return dir
    }

    /// The manifest as a JSON object, edited by `change`, written back.
    func editManifest(_ dir: String, _ change: (inout [String: Any]) -> Void) throws {
        let path = dir + "/manifest.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        change(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    func loadError(_ dir: String) -> HeedError? {
        do { _ = try SavedModel.load(directory: dir).readFiles(directory: dir); return nil } catch { return error as? HeedError }
    }

    @Test func aManifestThatIsNotJSONIsNamed() throws {
        let dir = try model()
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains(dir + "/manifest.json") && error.message.contains("not a Heed model manifest"))
    }

    @Test(arguments: [("format", "other-model" as Any), ("version", 99 as Any)])
    func anotherFormatOrVersionIsUnsupported(key: String, value: Any) throws {
        let dir = try model()
        try editManifest(dir) { $0[key] = value }
        let error = try #require(loadError(dir))
        #expect(error.code == .unsupported && error.message.contains("manifest.json") && error.message.contains("versions 1-2"))
    }

    @Test func editedStatisticsFailTheirChecksum() throws {
        let dir = try model()
        try editManifest(dir) { $0["statistics"] = [0.5, 2.5] }
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains("statistics do not match their checksum"))
    }

    @Test func aFileCountThatDisagreesWithTheServerCount() throws {
        let dir = try model()
        try editManifest(dir) { $0["servers"] = 3 }
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains("lists 2 files for 3 servers"))
    }

    @Test func aRankOrDenseRangeThatDoesNotFitTheManifest() throws {
        let dir = try model()
        // Swap the files' order in the manifest: rank 1's file now sits where rank 0's should.
        try editManifest(dir) { json in
            if let files = json["files"] as? [Any] { json["files"] = Array(files.reversed()) }
        }
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains("shard-1.bin") && error.message.contains("does not fit the manifest"))
    }

    @Test func aTableDimensionThatDisagreesWithTheRunConfig() throws {
        let dir = try model()
        try editManifest(dir) { json in
            var config = json["config"] as! [String: Any]
            var layout = config["layout"] as! [String: Any]
            layout["tableDims"] = [3, 4, 9, 1]   // table 3: dim 4, the files hold dim 2
            config["layout"] = layout
            json["config"] = config
        }
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains("table 3 has dim 2"))
    }

    @Test func filesThatDoNotCoverTheDenseVector() throws {
        let dir = try model()
        try editManifest(dir) { json in
            var config = json["config"] as! [String: Any]
            var layout = config["layout"] as! [String: Any]
            layout["denseCount"] = 6
            config["layout"] = layout
            json["config"] = config
        }
        let error = try #require(loadError(dir))
        #expect(error.code == .corrupt && error.message.contains("shard-0.bin") && error.message.contains("dense"))
    }

    // MARK: - ParameterFile

    /// The sample file with `patch` at `offset`, the checksum fixed unless `keepChecksum`.
    func patched(offset: Int, _ patch: [UInt8], fixChecksum: Bool = true) throws -> String {
        let path = temporaryDirectory() + "/shard-0.bin"
        try writeSample(path)
        var bytes = try ParameterFile.readAll(path)
        bytes.replaceSubrange(offset ..< offset + patch.count, with: patch)
        if fixChecksum {
            let crc = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0 ..< bytes.count - 4])) }
            withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bytes[bytes.count - 4 + i] = $0[i] } }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func readError(_ path: String) -> HeedError? {
        do { _ = try ParameterFile.read(path: path); return nil } catch { return error as? HeedError }
    }

    @Test func aFileTooShortToBeAParameterFile() throws {
        let path = temporaryDirectory() + "/tiny.bin"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        let error = try #require(readError(path))
        #expect(error.code == .corrupt && error.message.contains(path) && error.message.contains("too short"))
    }

    @Test func aBadMagic() throws {
        let error = try #require(readError(try patched(offset: 0, Array("NOTHEED!".utf8))))
        #expect(error.code == .corrupt && error.message.contains("bad magic"))
    }

    @Test func anUnknownVersion() throws {
        let error = try #require(readError(try patched(offset: 8, [9, 0, 0, 0])))
        #expect(error.code == .unsupported && error.message.contains("version 9"))
    }

    @Test func aChecksumMismatch() throws {
        let error = try #require(readError(try patched(offset: 60, [0xAA], fixChecksum: false)))
        #expect(error.code == .corrupt && error.message.contains("checksum mismatch"))
    }

    @Test func aHeaderWhoseRankIsNotBelowItsServerCount() throws {
        let error = try #require(readError(try patched(offset: 12, [5, 0, 0, 0])))   // rank 5 of 1
        #expect(error.code == .corrupt && error.message.contains("header is inconsistent"))
    }

    @Test func aTableHeaderWithAnImpossibleWidth() throws {
        // First table header: after the 52-byte header, 3 dense floats and 8 bytes of dense state header.
        let tableHeader = 52 + 12 + 8
        let error = try #require(readError(try patched(offset: tableHeader + 8, [1, 0, 0, 0])))   // width 1 < dim 2
        #expect(error.code == .corrupt && error.message.contains("bad table header"))
    }

    @Test func bytesLeftOverBeforeTheChecksum() throws {
        let path = temporaryDirectory() + "/shard-0.bin"
        try writeSample(path)
        var bytes = try ParameterFile.readAll(path)
        bytes.insert(contentsOf: [0, 0, 0, 0], at: bytes.count - 4)
        let crc = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0 ..< bytes.count - 4])) }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bytes[bytes.count - 4 + i] = $0[i] } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = try #require(readError(path))
        #expect(error.code == .corrupt && error.message.contains("unexpected bytes before the checksum"))
    }

    @Test func aDenseStateWiderThanAnyOptimizer() throws {
        let error = try #require(readError(try patched(offset: 52 + 12, [9, 0, 0, 0])))
        #expect(error.code == .corrupt && error.message.contains("dense state width 9"))
    }
}
