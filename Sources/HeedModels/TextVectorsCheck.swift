import HeedCore
import HeedData

/// Checks a `text-tower` run's vectors file against the prepared data before any role
/// starts, and derives what the servers need from it.
enum TextVectorsCheck {
    /// The layout entries of a `text-tower` run: with `model.text_vectors`, the item-text
    /// table starts from that file (`initialRows`); without, its key-seeded rows are drawn
    /// with standard deviation 1/√Dt, the per-component scale of the unit-norm sentence
    /// vectors the script writes, so the random twin starts at the same scale.
    ///
    /// - Throws: the file's own errors (`ItemVectors.read`: missing, truncated, checksum,
    ///   wrong dimension), and `HeedError(.config)` naming the file when it holds an item
    ///   the dataset's catalogue lacks, or lacks one it holds.
    static func layout(_ config: RunConfig, manifest: DatasetManifest) throws -> (initialRows: [UInt8: String], initScales: [UInt8: Double]) {
        let table = TextTowerModel.textTable
        let path = config.model.textVectors
        guard !path.isEmpty else { return ([:], [table: 1 / Double(config.model.textDim).squareRoot()]) }
        let vectors = try ItemVectors.read(path: path, expectedDim: config.model.textDim)
        let catalog = try manifest.openCatalog(directory: config.data.path)
        try checkCoverage(vectors, path: path, catalogItems: Set((0..<catalog.count).map { catalog.itemID($0) }),
                          data: config.data.path)
        return ([table: path], [:])
    }

    /// Every vector's item must be in the catalogue and every catalogue item must have one.
    static func checkCoverage(_ vectors: ItemVectors, path: String, catalogItems: Set<UInt64>, data: String) throws {
        let unknown = vectors.rawIDs.filter { !catalogItems.contains($0) }
        if let first = unknown.first {
            throw HeedError(.config, "\(path): \(unknown.count) of its \(vectors.count) items are not in the catalogue of \(data) (first: raw item id \(first)); embed the items of this dataset (scripts/embed-item-text.py)")
        }
        let known = Set(vectors.rawIDs)
        let missing = catalogItems.filter { !known.contains($0) }
        if let first = missing.min() {
            throw HeedError(.config, "\(path): \(missing.count) of the \(catalogItems.count) catalogue items of \(data) have no vector (first: raw item id \(first)); embed the items of this dataset (scripts/embed-item-text.py)")
        }
    }
}
