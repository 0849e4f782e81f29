import Foundation
import Testing
import HeedCore
@testable import HeedCheckpoint

/// A safetensors file read back by a parser written from the format's description,
/// independently of `SafetensorsExport`.
struct ParsedSafetensors {
    struct Entry {
        var dtype: String
        var shape: [Int]
        var bytes: ArraySlice<UInt8>
    }
    var headerLength: Int
    var metadata: [String: String]
    var tensors: [String: Entry]
    /// Tensor names in the order of their data.
    var order: [String]

    init(path: String) throws {
        let file = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let n = file[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        headerLength = n
        let json = try #require(try JSONSerialization.jsonObject(with: Data(file[8..<8 + n])) as? [String: Any])
        metadata = (json["__metadata__"] as? [String: String]) ?? [:]
        let data = file[(8 + n)...]
        var spans: [(name: String, begin: Int, end: Int)] = []
        tensors = [:]
        for (name, value) in json where name != "__metadata__" {
            let d = try #require(value as? [String: Any])
            let offsets = try #require(d["data_offsets"] as? [Int])
            let begin = data.startIndex + offsets[0], end = data.startIndex + offsets[1]
            tensors[name] = Entry(dtype: try #require(d["dtype"] as? String), shape: try #require(d["shape"] as? [Int]), bytes: file[begin..<end])
            spans.append((name, offsets[0], offsets[1]))
        }
        spans.sort { $0.begin < $1.begin }
        order = spans.map(\.name)
        // The format's rules: contiguous tensors covering the whole data, header space-padded.
        var at = 0
        for s in spans {
            #expect(s.begin == at, "\(s.name) starts at \(s.begin), expected \(at)")
            at = s.end
        }
        #expect(at == data.count)
        #expect((8 + n) % 8 == 0)
        #expect(file[8] == UInt8(ascii: "{"))
    }

    func floats(_ name: String) throws -> [Float] {
        let e = try #require(tensors[name], "no tensor \(name)")
        #expect(e.dtype == "F32")
        #expect(e.bytes.count == 4 * e.shape.reduce(1, *))
        return stride(from: e.bytes.startIndex, to: e.bytes.endIndex, by: 4).map { i in
            Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(e.bytes[i + $1]) << (8 * $1) })
        }
    }

    func u64(_ name: String) throws -> [UInt64] {
        let e = try #require(tensors[name], "no tensor \(name)")
        #expect(e.dtype == "U64")
        return stride(from: e.bytes.startIndex, to: e.bytes.endIndex, by: 8).map { i in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(e.bytes[i + $1]) << (8 * $1) }
        }
    }

    func u32(_ name: String) throws -> [UInt32] {
        let e = try #require(tensors[name], "no tensor \(name)")
        #expect(e.dtype == "U32")
        return stride(from: e.bytes.startIndex, to: e.bytes.endIndex, by: 4).map { i in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(e.bytes[i + $1]) << (8 * $1) }
        }
    }
}

/// A two-server model with Adam state: table 3 (dim 2, width 6) split over both files,
/// table 9 (dim 1, width 3) only in file 0 (file 1 holds it with no rows), dense 5 values.
struct ExportFixture {
    struct Row { var key: UInt64; var step: UInt32; var values: [Float] }
    /// Per file, per table id, rows in file order (not key order).
    var rows: [[UInt8: [Row]]] = [
        [3: [Row(key: 900, step: 4, values: [1, 2, 3, 4, 5, 6]),
             Row(key: 7, step: 1, values: [-1, -2, -3, -4, -5, -6]),
             Row(key: 1 << 63, step: 2, values: [0.5, 0.25, 0.125, 1e-8, 3e38, .leastNonzeroMagnitude])],
         9: [Row(key: 42, step: 3, values: [9, 8, 7]), Row(key: 41, step: 5, values: [-9, -8, -7])]],
        [3: [Row(key: 8, step: 6, values: [10, 20, 30, 40, 50, 60]),
             Row(key: 6, step: 7, values: [11, 21, 31, 41, 51, 61])],
         9: []],
    ]
    let dense: [[Float]] = [[1, 2, 3], [4, 5]]
    /// Adam m then v per file, blockwise.
    let denseState: [[Float]] = [[0.1, 0.2, 0.3, 10, 20, 30], [0.4, 0.5, 40, 50]]

    func config() -> RunConfig {
        var c = RunConfig()
        c.model.name = "din"
        c.layout.denseCount = 5
        c.layout.tableDims = [3: 2, 9: 1]
        return c
    }

    @discardableResult
    func save(_ dir: String, kind: SavedModel.Kind = .checkpoint) throws -> SavedModel {
        try SavedModel.prepareDirectory(dir)
        var written: [ParameterFile.Written] = []
        var start = 0
        for (rank, tables) in rows.enumerated() {
            let header = ParameterFile.Header(rank: rank, serverCount: 2, slotCount: 64, tableCount: tables.count,
                                              denseStart: start, denseTotal: 5, denseChunk: dense[rank].count)
            let w = try ParameterFile.Writer(path: dir + "/" + ParameterFile.fileName(rank: rank), header: header, dense: dense[rank],
                                             denseState: .init(width: 2, step: UInt32(11 + rank), values: denseState[rank]))
            for id in tables.keys.sorted() {
                let dim = id == 3 ? 2 : 1
                try w.beginTable(id: id, dim: dim, width: 3 * dim, rows: tables[id]!.count)
                for r in tables[id]! { try r.values.withUnsafeBufferPointer { try w.appendRow(key: r.key, step: r.step, values: $0) } }
            }
            written.append(try w.finish())
            start += dense[rank].count
        }
        let model = SavedModel(step: 77, config: config(), servers: 2, slots: 64, files: written, kind: kind)
        try model.write(to: dir)
        return model
    }

    /// Table `id`'s rows over both files, sorted by key (the textbook reference).
    func sorted(_ id: UInt8) -> [Row] {
        rows.flatMap { $0[id] ?? [] }.sorted { $0.key < $1.key }
    }
}

@Suite struct SafetensorsExportTests {
    let fixture = ExportFixture()

    @Test(arguments: [false, true])
    func everyTensorReadsBackAsTheSavedRowsSortedByKey(withOptimizerState: Bool) throws {
        let dir = temporaryDirectory()
        try fixture.save(dir + "/ckpt")
        let out = dir + "/model.safetensors"
        let summary = try SafetensorsExport(directory: dir + "/ckpt", withOptimizerState: withOptimizerState).write(to: out)
        #expect(try FileOps.size(out) == summary.bytes)
        let st = try ParsedSafetensors(path: out)

        #expect(try st.floats("dense.weight") == [1, 2, 3, 4, 5])
        #expect(st.tensors["dense.weight"]?.shape == [5])
        for id: UInt8 in [3, 9] {
            let dim = id == 3 ? 2 : 1
            let reference = fixture.sorted(id)
            #expect(try st.u64("table.\(id).keys") == reference.map(\.key))
            #expect(st.tensors["table.\(id).keys"]?.shape == [reference.count])
            #expect(try st.floats("table.\(id).weight") == reference.flatMap { $0.values[0..<dim] })
            #expect(st.tensors["table.\(id).weight"]?.shape == [reference.count, dim])
            if withOptimizerState {
                #expect(try st.floats("table.\(id).adam_m") == reference.flatMap { $0.values[dim..<2 * dim] })
                #expect(try st.floats("table.\(id).adam_v") == reference.flatMap { $0.values[2 * dim..<3 * dim] })
                #expect(st.tensors["table.\(id).adam_v"]?.shape == [reference.count, dim])
                #expect(try st.u32("table.\(id).steps") == reference.map(\.step))
            }
        }
        if withOptimizerState {
            #expect(try st.floats("dense.adam_m") == [0.1, 0.2, 0.3, 0.4, 0.5])
            #expect(try st.floats("dense.adam_v") == [10, 20, 30, 40, 50])
            #expect(st.metadata["dense_optimizer_step"] == "12")
            #expect(st.tensors.count == 3 + 2 * 5)
        } else {
            #expect(st.tensors.count == 1 + 2 * 2)
        }
        #expect(st.order == summary.tensors.map(\.name))
        #expect(st.metadata["model"] == "din" && st.metadata["kind"] == "checkpoint" && st.metadata["step"] == "77")
        #expect(st.metadata["embedding_dims"] == "{\"3\": 2, \"9\": 1}")
        #expect(st.metadata["dense_layout"]?.hasPrefix("flat, in the model's parameter order") == true)
        #expect(FileOps.list(dir) == ["ckpt", "model.safetensors"])
    }

    @Test func aSavedModelExportsToo() throws {
        let dir = temporaryDirectory()
        try fixture.save(dir + "/model", kind: .model)
        _ = try SafetensorsExport(directory: dir + "/model").write(to: dir + "/m.safetensors")
        let st = try ParsedSafetensors(path: dir + "/m.safetensors")
        #expect(st.metadata["kind"] == "model")
        #expect(try st.u64("table.3.keys") == [6, 7, 8, 900, 1 << 63])
    }

    @Test(arguments: ["shard-0.bin", "shard-1.bin"])
    func aDamagedCheckpointIsRefusedAndLeavesNoOutput(file: String) throws {
        let dir = temporaryDirectory()
        try fixture.save(dir + "/ckpt")
        let path = dir + "/ckpt/" + file
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let weightAt = try ParameterFile.layout(path: path).tables[0].rowsOffset + 12
        bytes[weightAt] ^= 0x01   // a weight of table 3's first row: only the checksum notices
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let out = dir + "/model.safetensors"
        let error = try #require(throws: HeedError.self) {
            _ = try SafetensorsExport(directory: dir + "/ckpt", withOptimizerState: true).write(to: out)
        }
        #expect(error.code == .corrupt && error.message.contains(file))
        #expect(FileOps.list(dir) == ["ckpt"])
    }

    @Test func aKeyInTwoFilesIsRefusedAndLeavesNoOutput() throws {
        var fixture = ExportFixture()
        fixture.rows[1][3]![0].key = 900   // also in file 0
        let dir = temporaryDirectory()
        try fixture.save(dir + "/ckpt")
        let error = try #require(throws: HeedError.self) {
            _ = try SafetensorsExport(directory: dir + "/ckpt").write(to: dir + "/x.safetensors")
        }
        #expect(error.code == .corrupt && error.message.contains("key 900") && error.message.contains("shard-1.bin"))
        #expect(FileOps.list(dir) == ["ckpt"])
    }

    @Test func anExistingOutputIsReplacedWhole() throws {
        let dir = temporaryDirectory()
        try fixture.save(dir + "/ckpt")
        let out = dir + "/model.safetensors"
        try Data(repeating: 0xAB, count: 100_000).write(to: URL(fileURLWithPath: out))
        let summary = try SafetensorsExport(directory: dir + "/ckpt").write(to: out)
        #expect(try FileOps.size(out) == summary.bytes)
        #expect(try ParsedSafetensors(path: out).u64("table.9.keys") == [41, 42])
    }

    @Test func savedRowsAreFoundByKeyInEveryFile() throws {
        let dir = temporaryDirectory()
        let model = try fixture.save(dir)
        let rows = try model.rows(directory: dir, table: 3, keys: [6, 900, 12345])
        #expect(rows.count == 2)
        #expect(rows[6] == SavedModel.Row(key: 6, step: 7, values: [11, 21, 31, 41, 51, 61]))
        #expect(rows[900] == SavedModel.Row(key: 900, step: 4, values: [1, 2, 3, 4, 5, 6]))
    }

    @Test func headerJSONEscapesAndPads() throws {
        #expect(SafetensorsExport.json("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
        let header = SafetensorsExport.header(tensors: [], metadata: ["k": "v"])
        #expect(header.count % 8 == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
        #expect((json["__metadata__"] as? [String: String]) == ["k": "v"])
    }
}
