import Foundation
import HeedCheckpoint
import HeedCore
import Testing
@testable import heed

/// A few seconds of the fuzz loop in the suite (`scripts/fuzz.sh` runs it for longer), and
/// the inputs it found that once crashed the parameter-file reader.
@Suite struct FuzzTests {
    @Test func aShortFuzzRunFindsNothing() throws {
        let report = try Fuzzer(seed: 20_261_206, hangSeconds: 1).run(inputs: 30_000)
        #expect(report.wireInputs > 0 && report.fileInputs > 0)
        #expect(report.wireAccepted > 0 && report.fileAccepted > 0, "the mutations must reach past the first checks: \(report.summary)")
        #expect(report.findings == 0 && report.hangs == 0, "\(report.summary)")
    }

    /// Writes the seed file with `patch` applied at `offset` and the checksum fixed.
    func damaged(offset: Int, patch: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "heed-fuzz-regression-\(getpid())-\(offset)-\(UInt32.random(in: 0...UInt32.max)).bin"
        var bytes = try Fuzzer.seedFile(at: path)
        bytes.replaceSubrange(offset ..< offset + patch.count, with: patch)
        let crc = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0 ..< bytes.count - 4])) }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bytes[bytes.count - 4 + i] = $0[i] } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    // Header: magic 8 · version 4 · rank 4 · servers 4 · slots 4 · tables 4 · dense start 8 (offset 28) · total 8 (36) · chunk 8 (44).
    @Test func aDenseCountBeyondIntIsRejectedNotATrap() throws {
        let path = try damaged(offset: 36, patch: [UInt8](repeating: 0xFF, count: 8))
        defer { FileOps.removeTree(path) }
        #expect(throws: HeedError.self) { try ParameterFile.read(path: path) }
    }

    @Test func aDenseChunkLargerThanTheFileIsRejectedBeforeAllocating() throws {
        // 2^40 floats would be 4 TiB: the reader must refuse before asking for memory.
        let path = try damaged(offset: 36, patch: [0, 0, 0, 0, 0, 1, 0, 0] + [0, 0, 0, 0, 0, 1, 0, 0])
        defer { FileOps.removeTree(path) }
        do {
            _ = try ParameterFile.read(path: path)
            Issue.record("a 4 TiB dense chunk was read")
        } catch let error as HeedError {
            #expect(error.code == .corrupt && error.message.contains(path), "\(error)")
        }
    }
}
