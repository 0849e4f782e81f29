import Foundation
import HeedCheckpoint
import HeedCore
import Testing

/// `heed checkpoint export|rows` on a model trained by a real 2-server cluster.
@Suite(.serialized) struct CheckpointExportTests {
    typealias Run = LauncherTests.Run
    let scratch: String

    init() throws {
        scratch = NSTemporaryDirectory() + "heed-export-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileOps.makeDirectories(scratch)
    }

    /// Tensors of a safetensors file: name → (dtype, shape, bytes), read from the format's
    /// description (u64 LE header length, JSON header, data), independently of the exporter.
    static func tensors(_ path: String) throws -> [String: (dtype: String, shape: [Int], bytes: [UInt8])] {
        let file = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let n = file[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(file[8..<8 + n])) as? [String: Any])
        var out: [String: (String, [Int], [UInt8])] = [:]
        for (name, value) in json where name != "__metadata__" {
            let d = try #require(value as? [String: Any])
            let o = try #require(d["data_offsets"] as? [Int])
            out[name] = (try #require(d["dtype"] as? String), try #require(d["shape"] as? [Int]), Array(file[8 + n + o[0] ..< 8 + n + o[1]]))
        }
        return out
    }

    /// Little-endian words of `bytes`, `size` bytes each.
    static func words(_ bytes: [UInt8], size: Int) -> [UInt64] {
        stride(from: 0, to: bytes.count, by: size).map { i in (0..<size).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * $1) } }
    }

    @Test func aClusterTrainedModelExportsEveryRowAndTheDenseVector() async throws {
        defer { FileOps.removeTree(scratch) }
        let data = try ClusterHarness.prepared(.amazonBeauty, sample: "amazon-beauty-sample", shards: 2)
        let model = scratch + "/model"
        let train = try Run(["train", "--model", "lr", "--data", data, "--servers", "2", "--workers", "1", "--max-steps", "30", "--save-model", model])
        #expect(await train.exit(within: 180) == 0, "\(train.output)")
        let out = scratch + "/model.safetensors"
        let export = try Run(["checkpoint", "export", model, "--out", out, "--with-optimizer-state"])
        #expect(await export.exit(within: 120) == 0, "\(export.output)")
        #expect(export.output.contains("table.") && export.output.contains("dense.weight"), "\(export.output)")

        // The reference: the saved files read whole (ParameterFile.read), keyed by table and key.
        let reference = try CheckpointTests.contents(model)
        let tensors = try Self.tensors(out)
        #expect(Self.words(try #require(tensors["dense.weight"]).bytes, size: 4).map { UInt32($0) } == reference.dense)
        #expect(!reference.rows.isEmpty)
        for (id, rows) in reference.rows {
            let keys = Self.words(try #require(tensors["table.\(id).keys"]).bytes, size: 8)
            #expect(keys == rows.keys.sorted())
            let weight = try #require(tensors["table.\(id).weight"]), m = try #require(tensors["table.\(id).adam_m"])
            let v = try #require(tensors["table.\(id).adam_v"]), steps = try #require(tensors["table.\(id).steps"])
            let dim = weight.shape[1]
            #expect(weight.shape == [rows.count, dim])
            let w = Self.words(weight.bytes, size: 4), mm = Self.words(m.bytes, size: 4), vv = Self.words(v.bytes, size: 4)
            let s = Self.words(steps.bytes, size: 4)
            for (i, key) in keys.enumerated() {
                let saved = try #require(rows[key])   // [step, w (dim), m (dim), v (dim)] as bit patterns
                let exported = [UInt32(s[i])] + (w[i * dim ..< (i + 1) * dim] + mm[i * dim ..< (i + 1) * dim] + vv[i * dim ..< (i + 1) * dim]).map { UInt32($0) }
                #expect(exported == saved, "table \(id) key \(key)")
            }
            // `heed checkpoint rows` prints the same row.
            let key = keys[keys.count / 2]
            let show = try Run(["checkpoint", "rows", model, "--table", "\(id)", "--keys", "\(key),7"])
            #expect(await show.exit(within: 60) == 0, "\(show.output)")
            let lines = show.output.split(separator: "\n")
            #expect(lines.count == 2 && lines[1].contains("\"missing\":true"), "\(show.output)")
            let row = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            let printed = try #require(row["w"] as? [Double]).map { Float($0).bitPattern }
            #expect(printed == Array(rows[key]![1...dim]), "\(show.output)")
        }
    }

    @Test func aDamagedCheckpointIsRefusedByTheCommandAndNoOutputIsLeft() async throws {
        defer { FileOps.removeTree(scratch) }
        let dir = scratch + "/ckpt"
        try SavedModel.prepareDirectory(dir)
        let header = ParameterFile.Header(rank: 0, serverCount: 1, slotCount: 8, tableCount: 1, denseStart: 0, denseTotal: 2, denseChunk: 2)
        let w = try ParameterFile.Writer(path: dir + "/shard-0.bin", header: header, dense: [1, 2])
        try w.beginTable(id: 1, dim: 1, width: 3, rows: 1)
        try [Float(1), 2, 3].withUnsafeBufferPointer { try w.appendRow(key: 5, step: 1, values: $0) }
        var config = RunConfig()
        config.layout.denseCount = 2
        config.layout.tableDims = [1: 1]
        try SavedModel(step: 1, config: config, servers: 1, slots: 8, files: [try w.finish()]).write(to: dir)
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: dir + "/shard-0.bin")))
        bytes[bytes.count - 6] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/shard-0.bin"))
        let export = try Run(["checkpoint", "export", dir, "--out", scratch + "/x.safetensors"])
        #expect(await export.exit(within: 60) != 0)
        #expect(export.output.contains("shard-0.bin") && export.output.contains("checksum"), "\(export.output)")
        #expect(FileOps.list(scratch) == ["ckpt"])
    }
}
