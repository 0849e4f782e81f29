import HeedCheckpoint
import HeedCore

extension ParameterShard {
    /// Writes this shard's dense chunk and every table row (with optimizer state) to
    /// `directory/shard-<rank>.bin`, atomically.
    ///
    /// Each table is walked under all its stripe locks (`forEachRow`), so its rows form
    /// one snapshot; the caller stops training first (the end-of-training barrier) so the
    /// tables and the dense chunk also agree with each other.
    public func save(directory: String, slotCount: Int) throws -> ParameterFile.Written {
        let plan = ShardingPlan(serverCount: serverCount, slotCount: slotCount)
        let ids = tables.keys.sorted()
        let header = ParameterFile.Header(rank: rank, serverCount: serverCount, slotCount: slotCount, tableCount: ids.count,
                                          denseStart: denseRange.lowerBound, denseTotal: denseTotal, denseChunk: denseRange.count)
        try FileOps.makeDirectories(directory)
        let writer = try ParameterFile.Writer(path: directory + "/" + ParameterFile.fileName(rank: rank), header: header, dense: pullDense())
        for id in ids {
            let table = tables[id]!
            let rows = table.rowCount
            try writer.beginTable(id: id, dim: table.dim, width: table.width, rows: rows)
            var written = 0
            try table.forEachRow(plan: plan) { row in
                guard written < rows else { return }
                try writer.appendRow(key: row.key, step: row.step, values: row.values)
                written += 1
            }
            guard written == rows else {
                throw HeedError(.internalError, "server \(rank): table \(id) changed while saving (\(rows) rows counted, \(written) walked); stop training before saving")
            }
        }
        return try writer.finish()
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
