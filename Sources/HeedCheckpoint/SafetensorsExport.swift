import HeedCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes a saved model or a checkpoint as one safetensors file, for NumPy, PyTorch and
/// any other reader of the format (https://github.com/huggingface/safetensors).
///
/// Layout: u64 little-endian header length N · N bytes of JSON header (padded with spaces
/// so the data starts 8-byte aligned) · the tensors' little-endian bytes back to back, in
/// the order listed below, each tensor's `data_offsets` relative to the data start.
///
/// Tensors (`dim` = the table's embedding dim, `rows` = its rows over all server files):
///
///     dense.weight           F32 (denseTotal)      the model's flat dense vector
///     dense.adam_m, .adam_v  F32 (denseTotal)      with optimizer state, Adam/AdamW dense state
///     dense.optimizer_state  F32 (width, denseTotal)  with optimizer state, any other dense state
///     table.<id>.keys        U64 (rows)            feature keys, ascending (unsigned), each once
///     table.<id>.weight      F32 (rows, dim)       row i belongs to keys[i]
///     table.<id>.adam_m, .adam_v  F32 (rows, dim)  with optimizer state, Adam/AdamW tables
///     table.<id>.optimizer_state  F32 (rows, width − dim)  with optimizer state, other optimizers
///     table.<id>.steps       U32 (rows)            with optimizer state, per-row update counts
///
/// `<id>` is the table id (the feature group, 0-255) in decimal. Rows are sorted by key
/// across every server file, so the same parameters give the same bytes whatever server
/// count saved them; a key found in two files is a damaged checkpoint and is refused.
///
/// The checkpoint's checksums are verified (streamed, against the manifest) before
/// anything is written; the output is written under a temporary name, fsynced and renamed
/// into place, so a failed export leaves no file. Memory: one table's keys with their
/// positions (16 bytes per row) plus fixed buffers; rows are read one at a time.
public struct SafetensorsExport: Sendable {
    /// One tensor of the output.
    public struct Tensor: Equatable, Sendable {
        public var name: String
        /// "F32", "U64" or "U32".
        public var dtype: String
        public var shape: [Int]
        /// Byte range relative to the start of the data.
        public var begin: Int
        public var end: Int
    }

    /// What an export wrote.
    public struct Summary: Sendable {
        public var path: String
        /// Size of the output file.
        public var bytes: Int
        /// Tensors in data order.
        public var tensors: [Tensor]
        /// The header's `__metadata__`.
        public var metadata: [String: String]
    }

    /// The saved model or checkpoint directory.
    public var directory: String
    /// Also write the optimizer state (moments and per-row steps).
    public var withOptimizerState: Bool

    public init(directory: String, withOptimizerState: Bool = false) {
        self.directory = directory
        self.withOptimizerState = withOptimizerState
    }

    /// Where a tensor's bytes come from.
    private enum Source {
        /// The dense vector (k = -1) or block k of its optimizer state, joined over files.
        case dense(state: Int)
        case keys(table: UInt8)
        /// Floats [lo, lo + count) of every row of a table.
        case rowFloats(table: UInt8, lo: Int, count: Int)
        case steps(table: UInt8)
    }

    /// Exports to `path` (replacing it atomically if it exists).
    public func write(to path: String) throws -> Summary {
        let model = try SavedModel.load(directory: directory)
        try model.verifyFiles(directory: directory)
        let layouts = try model.layouts(directory: directory)
        let files = try layouts.map { try PosixReadFile(path: $0.path) }

        // Tables: union over files (a server may hold no rows of a table, never another width).
        var tables: [UInt8: (dim: Int, width: Int, rows: Int)] = [:]
        for l in layouts {
            for t in l.tables { tables[t.id, default: (t.dim, t.width, 0)].rows += t.rows }
        }
        let ids = tables.keys.sorted()
        let denseTotal = model.config.layout.denseCount
        let stateWidths = Set(layouts.map(\.denseStateWidth))
        let denseStateWidth = stateWidths.count == 1 ? stateWidths.first! : 0
        let adamDense = [.adam, .adamw].contains(model.config.denseOptimizer.kind)
        let adamSparse = [.adam, .adamw].contains(model.config.sparseOptimizer.kind)

        var plan: [(name: String, dtype: String, shape: [Int], source: Source)] = [("dense.weight", "F32", [denseTotal], .dense(state: -1))]
        if withOptimizerState && denseStateWidth > 0 {
            if adamDense && denseStateWidth == 2 {
                plan.append(("dense.adam_m", "F32", [denseTotal], .dense(state: 0)))
                plan.append(("dense.adam_v", "F32", [denseTotal], .dense(state: 1)))
            } else {
                for k in 0..<denseStateWidth {
                    plan.append(("dense.optimizer_state.\(k)", "F32", [denseTotal], .dense(state: k)))
                }
            }
        }
        for id in ids {
            let t = tables[id]!
            plan.append(("table.\(id).keys", "U64", [t.rows], .keys(table: id)))
            plan.append(("table.\(id).weight", "F32", [t.rows, t.dim], .rowFloats(table: id, lo: 0, count: t.dim)))
            guard withOptimizerState else { continue }
            if adamSparse && t.width == 3 * t.dim {
                plan.append(("table.\(id).adam_m", "F32", [t.rows, t.dim], .rowFloats(table: id, lo: t.dim, count: t.dim)))
                plan.append(("table.\(id).adam_v", "F32", [t.rows, t.dim], .rowFloats(table: id, lo: 2 * t.dim, count: t.dim)))
            } else if t.width > t.dim {
                plan.append(("table.\(id).optimizer_state", "F32", [t.rows, t.width - t.dim],
                             .rowFloats(table: id, lo: t.dim, count: t.width - t.dim)))
            }
            plan.append(("table.\(id).steps", "U32", [t.rows], .steps(table: id)))
        }

        var tensors: [Tensor] = []
        var offset = 0
        for p in plan {
            let bytes = p.shape.reduce(1, *) * (p.dtype == "U64" ? 8 : 4)
            tensors.append(Tensor(name: p.name, dtype: p.dtype, shape: p.shape, begin: offset, end: offset + bytes))
            offset += bytes
        }
        let metadata = self.metadata(model, ids: ids, dims: tables.mapValues(\.dim),
                                     denseStep: withOptimizerState && denseStateWidth > 0 ? layouts.map(\.denseStep).max() : nil)
        let header = Self.header(tensors: tensors, metadata: metadata)
        let dataStart = 8 + header.count

        let temporary = path + ".tmp-\(getpid())"
        do {
            let out = try PosixFile(creating: temporary)
            var prefix = [UInt8]()
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { prefix += $0 }
            try out.write(prefix + header, at: 0)
            for (p, t) in zip(plan, tensors) {
                switch p.source {
                case .dense(let k):
                    let region = OutputRegion(file: out, offset: dataStart + t.begin)
                    try copyDense(state: k, layouts: layouts, files: files, to: region)
                case .keys(let id):
                    // Every tensor of the table is written with its keys, reading each row once.
                    try writeTable(id, plan: plan, tensors: tensors, dataStart: dataStart, layouts: layouts, files: files, out: out)
                case .rowFloats, .steps:
                    break
                }
            }
            try out.syncAndClose()
            try FileOps.rename(temporary, path)
        } catch {
            FileOps.removeTree(temporary)
            throw error
        }
        try FileOps.syncDirectory(FileOps.dirname(of: path))
        return Summary(path: path, bytes: dataStart + offset, tensors: tensors, metadata: metadata)
    }

    /// Copies the dense vector (state -1) or state block k, file by file in rank order.
    private func copyDense(state k: Int, layouts: [ParameterFile.Layout], files: [PosixReadFile], to region: OutputRegion) throws {
        for (l, f) in zip(layouts, files) {
            let chunk = l.header.denseChunk
            let start = k < 0 ? l.denseOffset : l.denseStateOffset + 4 * k * chunk
            try region.copy(from: f, at: start, count: 4 * chunk)
        }
    }

    /// One row's place: file index and row index within that file's table.
    private struct RowRef {
        var key: UInt64
        var file: UInt32
        var row: UInt32
    }

    /// Writes every tensor of table `id`: keys in ascending order, then each row tensor,
    /// reading each row once (its parts go to every row tensor's region).
    private func writeTable(_ id: UInt8, plan: [(name: String, dtype: String, shape: [Int], source: Source)], tensors: [Tensor],
                            dataStart: Int, layouts: [ParameterFile.Layout], files: [PosixReadFile], out: PosixFile) throws {
        var refs: [RowRef] = []
        var width = 0
        for (i, l) in layouts.enumerated() {
            guard let t = l.tables.first(where: { $0.id == id }) else { continue }
            guard t.rows < Int(UInt32.max) else {
                throw HeedError(.unsupported, "\(l.path): table \(id) has \(t.rows) rows; export handles fewer than 2^32 per file")
            }
            width = t.width
            refs.reserveCapacity(refs.count + t.rows)
            try t.forEachRowBlock(in: files[i]) { b, first, n in
                for r in 0..<n {
                    // Safe: row r's 8-byte key lies inside the n rows just read.
                    let key = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: r * t.rowBytes, as: UInt64.self))
                    refs.append(RowRef(key: key, file: UInt32(i), row: UInt32(first + r)))
                }
            }
        }
        refs.sort { $0.key < $1.key }
        for j in refs.indices.dropFirst() where refs[j].key == refs[j - 1].key {
            throw HeedError(.corrupt, "\(directory): key \(refs[j].key) of table \(id) is in both \(FileOps.basename(of: layouts[Int(refs[j - 1].file)].path)) and \(FileOps.basename(of: layouts[Int(refs[j].file)].path)): the checkpoint is damaged")
        }

        // One output region per tensor of this table, with the byte range of a file row it takes.
        var regions: [(region: OutputRegion, lo: Int, count: Int)] = []
        var keysRegion: OutputRegion?
        for (p, t) in zip(plan, tensors) {
            let region = OutputRegion(file: out, offset: dataStart + t.begin)
            switch p.source {
            case .keys(let table) where table == id: keysRegion = region
            case .rowFloats(let table, let lo, let count) where table == id: regions.append((region, 12 + 4 * lo, 4 * count))
            case .steps(let table) where table == id: regions.append((region, 8, 4))
            default: break
            }
        }
        guard let keysRegion else { throw HeedError(.internalError, "export: no keys tensor planned for table \(id)") }
        for r in refs { try withUnsafeBytes(of: r.key.littleEndian) { try keysRegion.append($0) } }
        try keysRegion.flush()
        guard !regions.isEmpty else { return }
        var rowBytes = [UInt8](repeating: 0, count: 12 + 4 * width)
        let offsets = layouts.map { $0.tables.first(where: { $0.id == id })?.rowsOffset ?? 0 }
        try rowBytes.withUnsafeMutableBytes { b in
            for r in refs {
                try files[Int(r.file)].read(into: b, at: offsets[Int(r.file)] + Int(r.row) * b.count)
                for part in regions {
                    // Safe: lo + count ≤ 12 + 4 · width, the row's size.
                    try part.region.append(UnsafeRawBufferPointer(rebasing: b[part.lo ..< part.lo + part.count]))
                }
            }
        }
        for part in regions { try part.region.flush() }
    }

    /// The header's `__metadata__`: what the file holds and how to read it.
    private func metadata(_ model: SavedModel, ids: [UInt8], dims: [UInt8: Int], denseStep: UInt32?) -> [String: String] {
        var m: [String: String] = [
            "format": "heed-export",
            "format_version": "1",
            "model": model.config.model.name,
            "kind": model.kind.rawValue,
            "step": String(model.step),
            "servers": String(model.servers),
            "tables": ids.map(String.init).joined(separator: ","),
            "embedding_dims": "{" + ids.map { "\"\($0)\": \(dims[$0]!)" }.joined(separator: ", ") + "}",
            "row_order": "table.<id>.* rows are sorted by table.<id>.keys, ascending as unsigned 64-bit integers, over all server files; each key appears once",
            "dense_layout": "flat, in the model's parameter order: dense.weight is the model's flat dense vector (\(model.config.layout.denseCount) values), as heed's model \(model.config.model.name) visits its dense parameters",
            "sparse_optimizer": model.config.sparseOptimizer.kind.rawValue,
            "dense_optimizer": model.config.denseOptimizer.kind.rawValue,
            "optimizer_state": withOptimizerState ? "included" : "not included",
        ]
        if let denseStep { m["dense_optimizer_step"] = String(denseStep) }
        return m
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes.
    static func header(tensors: [Tensor], metadata: [String: String]) -> [UInt8] {
        var parts = ["\"__metadata__\":{" + metadata.keys.sorted().map { "\(json($0)):\(json(metadata[$0]!))" }.joined(separator: ",") + "}"]
        for t in tensors {
            parts.append("\(json(t.name)):{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(t.begin),\(t.end)]}")
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// `s` as a JSON string literal.
    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// A contiguous byte range of the output written front to back through a 1 MiB buffer.
private final class OutputRegion {
    private let file: PosixFile
    private var offset: Int
    private var buffer: [UInt8] = []

    init(file: PosixFile, offset: Int) {
        self.file = file
        self.offset = offset
        buffer.reserveCapacity(1 << 20)
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Appends `count` bytes of `source` from `at`, in 4 MiB reads.
    func copy(from source: PosixReadFile, at: Int, count: Int) throws {
        try flush()
        var chunk = [UInt8](repeating: 0, count: min(count, 4 << 20))
        var done = 0
        while done < count {
            let n = min(chunk.count, count - done)
            try chunk.withUnsafeMutableBytes { try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), at: at + done) }
            try file.write(Array(chunk[0..<n]), at: offset)
            offset += n
            done += n
        }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try file.write(buffer, at: offset)
        offset += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
}
