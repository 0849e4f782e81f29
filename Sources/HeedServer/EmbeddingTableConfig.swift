import HeedCore
import HeedOptim

/// Settings of one embedding table (one feature group): plain data in run configs and
/// checkpoint manifests.
///
/// Decoding fills missing fields with the defaults of `init`, so a config may give only
/// `name` and `dim`.
public struct EmbeddingTableConfig: Codable, Hashable, Sendable {
    /// Table name, unique in a model (e.g. "item", "category").
    public var name: String
    /// Embedding dimension.
    public var dim: Int
    /// How new rows are drawn.
    public var initializer: RowInitializer
    /// The optimizer applied to pushed gradients; its `stateWidth` sets the row layout.
    public var optimizer: OptimizerSettings
    /// Pulls a key needs before it gets a row; until then it reads as zeros. 1 admits every key.
    public var admissionMinCount: Int
    /// Rows not touched (pulled or pushed) for this many steps are removed by `evict(currentStep:)`; nil keeps rows forever.
    public var evictionTTL: UInt32?
    /// Upper bound on rows; new keys beyond it read as zeros (a guard against unbounded key streams).
    public var maxRows: Int?
    /// Xor-ed into each key to seed its row's initializer.
    public var seed: UInt64

    /// A table config; every field but `name` and `dim` has a default.
    public init(name: String, dim: Int,
                initializer: RowInitializer = .uniform(scale: 0.01),
                optimizer: OptimizerSettings = .adam(AdamConfig()),
                admissionMinCount: Int = 1, evictionTTL: UInt32? = nil,
                maxRows: Int? = nil, seed: UInt64 = 0) {
        self.name = name
        self.dim = dim
        self.initializer = initializer
        self.optimizer = optimizer
        self.admissionMinCount = admissionMinCount
        self.evictionTTL = evictionTTL
        self.maxRows = maxRows
        self.seed = seed
    }

    private enum CodingKeys: String, CodingKey {
        case name, dim, initializer, optimizer, admissionMinCount, evictionTTL, maxRows, seed
    }

    /// Decodes, taking the default for every missing field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EmbeddingTableConfig(name: "", dim: 1)
        name = try c.decode(String.self, forKey: .name)
        dim = try c.decode(Int.self, forKey: .dim)
        initializer = try c.decodeIfPresent(RowInitializer.self, forKey: .initializer) ?? d.initializer
        optimizer = try c.decodeIfPresent(OptimizerSettings.self, forKey: .optimizer) ?? d.optimizer
        admissionMinCount = try c.decodeIfPresent(Int.self, forKey: .admissionMinCount) ?? d.admissionMinCount
        evictionTTL = try c.decodeIfPresent(UInt32.self, forKey: .evictionTTL)
        maxRows = try c.decodeIfPresent(Int.self, forKey: .maxRows)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }

    /// Throws `.config` naming the table and the bad field.
    public func validate() throws {
        guard !name.isEmpty else { throw HeedError(.config, "embedding table: name must not be empty") }
        guard dim > 0, dim <= 1 << 16 else { throw HeedError(.config, "table \(name): dim must be in 1...65536, got \(dim)") }
        guard admissionMinCount >= 1, admissionMinCount <= Int(UInt8.max) else {
            throw HeedError(.config, "table \(name): admissionMinCount must be in 1...255, got \(admissionMinCount)")
        }
        if let ttl = evictionTTL, ttl == 0 { throw HeedError(.config, "table \(name): evictionTTL must be >= 1 step") }
        if let m = maxRows, m < 1 { throw HeedError(.config, "table \(name): maxRows must be >= 1, got \(m)") }
        do {
            try initializer.validate()
            try optimizer.validate()
        } catch let e as HeedError {
            throw HeedError(.config, "table \(name): \(e.message)")
        }
    }
}
