import HeedCheckpoint
import HeedCore

extension ParameterShard {
    /// Loads this shard's part of the saved model or checkpoint in `directory`, streaming
    /// each file it needs once in 8 MiB blocks (`ParameterFileStream`): rows it owns go into
    /// the tables block by block, the dense chunk and its optimizer state are cut from the
    /// files that overlap it, so memory beyond the tables is one block plus the dense chunk,
    /// whatever the checkpoint's size.
    ///
    /// Files read: every file when the checkpoint was written by another server count (rows
    /// are routed again by key); only `shard-<rank>.bin` when the counts and slots match,
    /// since then it holds exactly this shard's rows and dense chunk (the other files are
    /// read, and their checksums verified, by the servers that own them).
    ///
    /// Every file read is checked against its own checksum and the manifest's. Rows are
    /// applied before a file's checksum is known (that is what keeps one pass and bounded
    /// memory), so the shard must be fresh and is discarded on error: a thrown error leaves
    /// it partly loaded. The dense chunk is replaced only after every file has matched.
    /// - Returns: rows loaded.
    @discardableResult
    public func restore(directory: String, model: SavedModel) throws -> Int {
        for (id, table) in tables where table.stats().rows > 0 {
            throw HeedError(.internalError, "server \(rank): restore needs a fresh shard (table \(id) already holds \(table.stats().rows) rows)")
        }
        let layouts = try model.layouts(directory: directory)
        for l in layouts {
            guard l.header.slotCount == model.slots else {
                throw HeedError(.corrupt, "\(l.path): written with \(l.header.slotCount) slots; the manifest says \(model.slots)")
            }
            for t in l.tables {
                guard let table = tables[t.id] else {
                    throw HeedError(.corrupt, "\(l.path): saved table \(t.id) is not a table of this model (tables: \(tables.keys.sorted()))")
                }
                guard table.dim == t.dim, table.width == t.width else {
                    throw HeedError(.corrupt, "\(l.path): saved table \(t.id) has dim \(t.dim), width \(t.width); this run's table has dim \(table.dim), width \(table.width) (another optimizer?)")
                }
            }
        }
        let plan = ShardingPlan(serverCount: serverCount, slotCount: model.slots)
        let sameOwners = model.servers == serverCount
        // Dense state comes back only if every file has the same non-zero width (as `restore(from:)`).
        let widths = Set(layouts.map(\.denseStateWidth))
        let stateWidth = widths.count == 1 ? widths.first! : 0
        let mine = denseRange.count
        var weights = [Float](repeating: 0, count: mine)
        var state = [Float](repeating: 0, count: stateWidth * mine)
        var loaded = 0
        var keys: [UInt64] = [], steps: [UInt32] = [], values: [Float] = []

        for (i, layout) in layouts.enumerated() {
            let chunk = layout.header.denseStart ..< layout.header.denseStart + layout.header.denseChunk
            let overlap = chunk.clamped(to: denseRange)
            let wantRows = !sameOwners || i == rank
            guard wantRows || !overlap.isEmpty else { continue }
            let crc = try ParameterFileStream(layout: layout).read(dense: { w, s in
                let from = overlap.lowerBound - chunk.lowerBound, to = overlap.lowerBound - denseRange.lowerBound
                for j in 0..<overlap.count { weights[to + j] = w[from + j] }
                guard stateWidth > 0 else { return }
                for k in 0..<stateWidth {
                    for j in 0..<overlap.count { state[k * mine + to + j] = s[k * chunk.count + from + j] }
                }
            }, rows: { block in
                guard wantRows else { return }
                let width = block.table.width
                keys.removeAll(keepingCapacity: true)
                steps.removeAll(keepingCapacity: true)
                if values.count < block.count * width { values = [Float](repeating: 0, count: block.count * width) }
                values.withUnsafeMutableBufferPointer { v in
                    for r in 0..<block.count {
                        let key = block.key(r)
                        guard plan.server(of: key) == rank else { continue }
                        // Safe: keys.count < block.count rows fit in v (sized above).
                        block.copyValues(r, to: v.baseAddress! + keys.count * width)
                        keys.append(key)
                        steps.append(block.step(r))
                    }
                }
                keys.withUnsafeBufferPointer { k in
                    values.withUnsafeBufferPointer { v in
                        steps.withUnsafeBufferPointer { s in
                            tables[block.table.id]!.restore(keys: k, values: UnsafeBufferPointer(rebasing: v[0..<k.count * width]),
                                                            steps: s, lastTouched: 0)
                        }
                    }
                }
                loaded += keys.count
            })
            guard crc == model.files[i].crc32 else {
                throw HeedError(.corrupt, "\(layout.path): checksum \(ParameterFile.hex(crc)) does not match the manifest's \(ParameterFile.hex(model.files[i].crc32)) (a file from another save?)")
            }
        }
        let step = layouts.map(\.denseStep).max() ?? 0
        try restoreDense(weights: weights, state: stateWidth > 0 ? state : nil, step: step)
        return loaded
    }
}
