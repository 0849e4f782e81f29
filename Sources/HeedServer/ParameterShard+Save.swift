import HeedCheckpoint
import HeedCore

extension ParameterShard {
    /// Writes this shard's dense chunk and every table row (with optimizer state) to
    /// `directory/shard-<rank>.bin`, atomically.
    ///
    /// Each table is walked under all its stripe locks (`forEachRow`), so its rows form
    /// one snapshot; the caller stops pushes first (the end-of-training barrier, or the
    /// coordinator's checkpoint barrier) so the tables and the dense chunk also agree with
    /// each other. Pulls may go on: they only create rows, which the key-seeded
    /// initialiser would create the same way after a restore.
    public func save(directory: String, slotCount: Int) throws -> ParameterFile.Written {
        let plan = ShardingPlan(serverCount: serverCount, slotCount: slotCount)
        let ids = tables.keys.sorted()
        let header = ParameterFile.Header(rank: rank, serverCount: serverCount, slotCount: slotCount, tableCount: ids.count,
                                          denseStart: denseRange.lowerBound, denseTotal: denseTotal, denseChunk: denseRange.count)
        try FileOps.makeDirectories(directory)
        let (weights, state, step) = denseSnapshot()
        let stateWidth = weights.isEmpty ? 0 : state.count / weights.count
        let writer = try ParameterFile.Writer(path: directory + "/" + ParameterFile.fileName(rank: rank), header: header, dense: weights,
                                              denseState: .init(width: stateWidth, step: step, values: state))
        for id in ids {
            let table = tables[id]!
            // Counted under the walk's locks: a pull may create rows until the walk starts.
            var rows = 0, written = 0
            try table.forEachRow(plan: plan, begin: { count in
                rows = count
                try writer.beginTable(id: id, dim: table.dim, width: table.width, rows: count)
            }) { row in
                try writer.appendRow(key: row.key, step: row.step, values: row.values)
                written += 1
            }
            guard written == rows else {
                throw HeedError(.internalError, "server \(rank): table \(id) walked \(written) rows of \(rows) counted")
            }
        }
        return try writer.finish()
    }

    /// Loads everything of saved parameter files that this shard owns, whatever server
    /// count they were written with: rows by key (`restoreRows`) and the dense chunk with
    /// its optimizer state cut again by range. Files without dense state (version 1) leave
    /// the dense moments fresh. The files must cover the dense vector (`SavedModel.readFiles`).
    /// - Returns: rows loaded.
    @discardableResult
    public func restore(from files: [ParameterFile.Contents], slotCount: Int) throws -> Int {
        let ordered = files.sorted { $0.header.denseStart < $1.header.denseStart }
        let weights = ordered.flatMap(\.dense)
        guard weights.count == denseTotal else {
            throw HeedError(.corrupt, "the saved files hold \(weights.count) dense values; this model has \(denseTotal)")
        }
        var state: [Float]?
        let widths = Set(ordered.map(\.denseState.width))
        if widths.count == 1, let width = widths.first, width > 0 {
            // Blockwise per file: state k of the whole vector is every file's block k in order.
            var full = [Float](); full.reserveCapacity(width * denseTotal)
            for k in 0..<width {
                for f in ordered { full += f.denseState.values[k * f.header.denseChunk ..< (k + 1) * f.header.denseChunk] }
            }
            var mine = [Float](); mine.reserveCapacity(width * denseRange.count)
            for k in 0..<width { mine += full[k * denseTotal + denseRange.lowerBound ..< k * denseTotal + denseRange.upperBound] }
            state = mine
        }
        // Every worker pushes the whole dense gradient to every server, so the files' update
        // counts agree; the largest is taken if an interrupted save left them apart.
        let step = ordered.map(\.denseState.step).max() ?? 0
        try restoreDense(weights: Array(weights[denseRange]), state: state, step: step)
        return try restoreRows(from: files, slotCount: slotCount)
    }

    /// Loads the rows of saved parameter files that this shard owns (by key, whatever
    /// server count the files were written with). The dense chunk comes from the
    /// `initialDense` the shard was built with (`SavedModel.denseVector(of:)`).
    /// - Returns: rows loaded.
    @discardableResult
    public func restoreRows(from files: [ParameterFile.Contents], slotCount: Int) throws -> Int {
        let plan = ShardingPlan(serverCount: serverCount, slotCount: slotCount)
        var loaded = 0
        for file in files {
            for saved in file.tables {
                guard let table = tables[saved.id] else {
                    throw HeedError(.corrupt, "saved table \(saved.id) is not a table of this model (tables: \(tables.keys.sorted()))")
                }
                guard table.dim == saved.dim, table.width == saved.width else {
                    throw HeedError(.corrupt, "saved table \(saved.id) has dim \(saved.dim), width \(saved.width); this run's table has dim \(table.dim), width \(table.width) (another optimizer?)")
                }
                var keys: [UInt64] = [], steps: [UInt32] = [], values: [Float] = []
                for (i, key) in saved.keys.enumerated() where plan.server(of: key) == rank {
                    keys.append(key)
                    steps.append(saved.steps[i])
                    values += saved.values[i * saved.width ..< (i + 1) * saved.width]
                }
                table.restore(keys, values: values, steps: steps, lastTouched: 0)
                loaded += keys.count
            }
        }
        return loaded
    }
}

extension SavedModel {
    /// The model's whole flat dense vector, joined from the files' chunks (in rank order).
    public static func denseVector(of files: [ParameterFile.Contents]) -> [Float] {
        files.sorted { $0.header.denseStart < $1.header.denseStart }.flatMap(\.dense)
    }
}
