import HeedCore

extension ParameterShard {
    /// Starts tables from pre-trained vectors (`RunConfig.Layout.initialRows`): reads each
    /// file and writes the rows of the keys this server owns, with fresh optimizer state
    /// (step 0). Row `i` of a file becomes key `FeatureKey(group: table, id: rawIDs[i])`.
    /// Called on a fresh start only; a resumed run restores its rows instead.
    ///
    /// - Parameter files: table id → vectors file.
    /// - Returns: rows written on this server.
    /// - Throws: the file's errors (`ItemVectors.read`), `.config` when the file's width is
    ///   not the table's or the table does not exist.
    @discardableResult
    public func loadInitialRows(_ files: [UInt8: String]) throws -> Int {
        var written = 0
        for (id, path) in files.sorted(by: { $0.key < $1.key }) {
            guard let t = tables[id] else {
                throw HeedError(.config, "\(path): initial rows for table \(id), which this model does not have")
            }
            let vectors = try ItemVectors.read(path: path, expectedDim: t.dim)
            var keys: [UInt64] = [], values: [Float] = []
            let width = t.width, dim = t.dim
            var row = [Float](repeating: 0, count: width)
            for (i, rawID) in vectors.rawIDs.enumerated() {
                let key = FeatureKey(group: id, id: rawID).rawValue
                guard plan.server(of: key) == rank else { continue }
                row.replaceSubrange(0..<dim, with: vectors.values[(i * dim)..<((i + 1) * dim)])
                row.withUnsafeMutableBufferPointer { t.optimizer.initializeState($0.baseAddress!) }
                keys.append(key)
                values.append(contentsOf: row)
            }
            t.restore(keys, values: values, steps: [UInt32](repeating: 0, count: keys.count), lastTouched: 0)
            written += keys.count
        }
        return written
    }
}
