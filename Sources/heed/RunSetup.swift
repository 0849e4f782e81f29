import ArgumentParser
import Foundation
import HeedCore
import HeedData
import HeedModels

/// Flags every run-shaped command shares: a TOML config and overrides of its common keys.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: "Run config (TOML); flags below override it.")
    var config: String?
    @Option(name: .long, help: "Model: lr, base, din.") var model: String?
    @Option(name: .long, help: "Prepared dataset directory (holds manifest.json).") var data: String?
    @Option(name: .long, help: "Parameter servers.") var servers: Int?
    @Option(name: .long, help: "Workers.") var workers: Int?
    @Option(name: .long, help: "Consistency: async, bounded, sync.") var mode: String?
    @Option(name: .long, help: "Staleness bound for bounded mode.") var staleness: Int?
    @Option(name: .long, help: "Epochs.") var epochs: Int?
    @Option(name: .long, help: "Samples per worker step.") var batchSize: Int?
    @Option(name: .long, help: "Stop after this many steps per worker (0 = no limit).") var maxSteps: Int?
    @Option(name: .long, help: "Learning rate of both optimizers.") var lr: Double?
    @Option(name: .long, help: "Transport for the local cluster: ipc or tcp.") var transport: String?
    @Option(name: .long, help: "Seed.") var seed: UInt64?

    /// The config file (if any) with the flags applied, validated.
    func resolve() throws -> RunConfig {
        var c = RunConfig()
        if let path = config {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HeedError(.io, "cannot read config file \(path)")
            }
            c = try RunConfig(toml: TOMLDocument(text: text, source: path))
        }
        if let v = model { c.model.name = v }
        if let v = data { c.data.path = v }
        if let v = servers { c.cluster.servers = v }
        if let v = workers { c.cluster.workers = v }
        if let v = mode {
            guard let m = ConsistencyMode(rawValue: v) else { throw HeedError(.config, "--mode must be async, bounded or sync, not \(v)") }
            c.cluster.mode = m
        }
        if let v = staleness { c.cluster.staleness = v }
        if let v = epochs { c.data.epochs = v }
        if let v = batchSize { c.data.batchSize = v }
        if let v = maxSteps { c.data.maxSteps = v }
        if let v = lr { c.sparseOptimizer.learningRate = v; c.denseOptimizer.learningRate = v }
        if let v = transport { c.cluster.transport = v }
        if let v = seed { c.seed = v }
        try c.validate()
        return c
    }
}

/// Builds models by name and the adapter from prepared samples to model batches.
enum ModelCatalog {
    /// Fields the `lr` baseline pools.
    static let linearFields = ["item", "category", "hist_items", "hist_categories"]

    /// The model `config.model.name` for data with `schema`.
    static func make(_ config: RunConfig, schema: SampleSchema) throws -> (any RecommenderModel, @Sendable (SampleBatch) -> ModelBatch) {
        switch config.model.name {
        case "lr":
            let fields = linearFields.filter { schema.slotIndex($0) != nil }
            let groups = Set(fields.compactMap { schema.slotIndex($0).map { schema.slots[$0].group } })
            let model = LinearModel(tables: groups.sorted(), dim: config.model.embeddingDim, seed: config.seed)
            return (model, try batchAdapter(schema: schema, fields: fields))
        default:
            throw HeedError(.config, "unknown model '\(config.model.name)' (available: lr)")
        }
    }

    /// SampleBatch → ModelBatch with the `click` label and the named fields.
    static func batchAdapter(schema: SampleSchema, fields: [String], label: String = "click") throws -> @Sendable (SampleBatch) -> ModelBatch {
        guard let labelIndex = schema.labelIndex(label) else {
            throw HeedError(.config, "the prepared data has no '\(label)' label (labels: \(schema.labels.joined(separator: ", ")))")
        }
        let slots = try fields.map { name -> (String, Int) in
            guard let i = schema.slotIndex(name) else { throw HeedError(.config, "the prepared data has no '\(name)' slot") }
            return (name, i)
        }
        let labelCount = schema.labels.count
        return { batch in
            var f: [String: SparseField] = [:]
            for (name, i) in slots {
                f[name] = SparseField(length: batch.schema.slots[i].maxLength, keys: batch.keys[i], mask: batch.masks[i])
            }
            let labels = (0..<batch.size).map { batch.labels[$0 * labelCount + labelIndex] }
            return ModelBatch(size: batch.size, labels: labels, users: batch.userIDs, fields: f)
        }
    }

    /// Fills `config.layout` from the model and the prepared data, and assigns data
    /// shards to workers (shard i → worker i mod W).
    static func deriveLayout(_ config: RunConfig) throws -> (RunConfig, [[UInt32]]) {
        var c = config
        let manifest = try DatasetManifest.load(directory: c.data.path)
        let (model, _) = try make(c, schema: manifest.schema)
        c.layout.tableDims = model.tableDims
        c.layout.denseCount = model.denseParameterCount
        c.layout.schemaJSON = String(decoding: try JSONEncoder().encode(manifest.schema), as: UTF8.self)
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
    static func schema(of config: RunConfig) throws -> SampleSchema {
        try JSONDecoder().decode(SampleSchema.self, from: Data(config.layout.schemaJSON.utf8))
    }
}
