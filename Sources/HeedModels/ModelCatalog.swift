import Foundation
import HeedCore
import HeedData

/// Builds models by name and the adapter from prepared samples to model batches.
public enum ModelCatalog {
    /// Fields the `lr` baseline pools.
    public static let linearFields = ["item", "category", "hist_items", "hist_categories"]

    /// The model `config.model.name` for data with `schema`, and the adapter that turns a
    /// batch of prepared records into the model's input (its fields and the `click` label).
    public static func make(_ config: RunConfig, schema: SampleSchema) throws -> (any RecommenderModel, @Sendable (SampleBatch) -> ModelBatch) {
        let model: any RecommenderModel
        let fields: [String]
        if config.model.name == "lr" {
            fields = linearFields.filter { schema.slotIndex($0) != nil }
            let groups = Set(fields.compactMap { schema.slotIndex($0).map { schema.slots[$0].group } })
            model = LinearModel(tables: groups.sorted(), dim: config.model.embeddingDim, seed: config.seed)
        } else {
            guard ModelFactory.modelNames.contains(config.model.name) else {
                throw HeedError(.config, "unknown model '\(config.model.name)' (available: \((["lr"] + ModelFactory.modelNames).joined(separator: ", ")))")
            }
            let m = try ModelFactory.makeStatefulModel(config: config.model, schema: schema, seed: config.seed,
                                                       options: try BehaviourModelOptions(config.model))
            if var next = m as? any NextItemModel {
                // Next-item models read whole sequences and draw negatives from the catalogue.
                try next.attachCatalog(try catalogKeys(dataDirectory: config.data.path), schema: schema)
                if var sided = next as? any NextItemModel & ItemSideModel {
                    // Item-side features (categories, price levels) come from the catalogue too.
                    try sided.attachItemSide(try ItemSide.load(dataDirectory: config.data.path))
                    next = sided
                }
                let batcher = next.batcher
                return (next, { batcher.trainingBatch($0) })
            }
            fields = m.inputFields
            model = m
        }
        // Validate label and fields once, so the adapter cannot fail per batch.
        _ = try ModelBatch(sampleBatch: SampleBatch(schema: schema), labelName: label, fields: fields)
        if let derive = (model as? any BatchFieldDeriving)?.deriveFields {
            return (model, { batch in
                // Safe: as below.
                var out = try! ModelBatch(sampleBatch: batch, labelName: label, fields: fields)
                derive(&out)
                return out
            })
        }
        // Safe: every batch of this dataset has `schema`, checked just above.
        return (model, { batch in try! ModelBatch(sampleBatch: batch, labelName: label, fields: fields) })
    }

    /// Sorted item keys of the prepared dataset's catalogue (`items.heeds`): the candidates
    /// of next-item models.
    public static func catalogKeys(dataDirectory: String) throws -> [UInt64] {
        let manifest = try DatasetManifest.load(directory: dataDirectory)
        let catalog = try manifest.openCatalog(directory: dataDirectory)
        guard let slot = catalog.schema.slotIndex("item") else {
            throw HeedError(.corrupt, "\(dataDirectory): the catalogue has no item slot")
        }
        return (0..<catalog.count).map { catalog.keys(slot: slot, record: $0)[0] }.sorted()
    }

    /// The label every CTR model trains on.
    public static let label = "click"

    /// Fills `config.layout` from the model and the prepared data, and assigns data
    /// shards to workers (shard i → worker i mod W).
    public static func deriveLayout(_ config: RunConfig) throws -> (RunConfig, [[UInt32]]) {
        var c = config
        let manifest = try DatasetManifest.load(directory: c.data.path)
        let (model, _) = try make(c, schema: manifest.schema)
        c.layout.tableDims = model.tableDims
        c.layout.denseCount = model.denseParameterCount
        c.layout.schemaJSON = String(decoding: try JSONEncoder().encode(manifest.schema), as: UTF8.self)
        if model is TextTowerModel {
            (c.layout.initialRows, c.layout.initScales) = try TextVectorsCheck.layout(c, manifest: manifest)
        }
        let shards = manifest.shards(.train)
        let w = c.cluster.workers
        guard shards.count >= w else {
            throw HeedError(.config, "\(c.data.path) has \(shards.count) train shards for \(w) workers; prepare it with --shards \(w) or more")
        }
        let assignment = (0..<w).map { rank in stride(from: rank, to: shards.count, by: w).map { UInt32($0) } }
        if c.cluster.mode != .async {
            // Every worker takes the same number of steps per epoch, or barriers would wait forever.
            let b = c.data.batchSize
            c.layout.stepsPerEpoch = assignment.map { $0.reduce(0) { $0 + (shards[Int($1)].records + b - 1) / b } }.min() ?? 0
        }
        return (c, assignment)
    }

    /// The schema the coordinator shipped in the layout.
    public static func schema(of config: RunConfig) throws -> SampleSchema {
        try JSONDecoder().decode(SampleSchema.self, from: Data(config.layout.schemaJSON.utf8))
    }
}
