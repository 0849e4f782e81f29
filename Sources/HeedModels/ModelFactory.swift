import HeedCore
import HeedData
import HeedLayers

/// Builds models by their config name (`ModelConfig.name`) for a dataset's schema.
///
/// Adding a model (self-attention, long-term-interest, attention-price, hybrid, sasrec,
/// text-tower): write its network generic over `T: Real` (so tests can gradient-check it in
/// Double) with a Float `RecommenderModel` wrapper, resolve the slots it needs from the
/// `SampleSchema` in its builder (throwing `HeedError(.config)` naming the model and the
/// missing slot), and add one entry to `builders`. Nothing else dispatches on model names.
public enum ModelFactory {
    /// Makes a model from a config, a schema and a seed for its initial dense weights.
    public typealias Builder = @Sendable (_ config: ModelConfig, _ schema: SampleSchema, _ options: BehaviourModelOptions,
                                          _ seed: UInt64) throws -> any StatefulRecommender

    /// The registry: config name → builder.
    static let builders: [String: Builder] = [
        "base": { config, schema, options, seed in
            let fields = try BehaviourFields(schema: schema, model: "base", useUser: options.useUserEmbedding)
            return BaseModel(config: config, fields: fields, activation: try activation(config, model: "base"),
                             pooling: options.basePooling, seed: seed)
        },
        "din": { config, schema, options, seed in
            let fields = try BehaviourFields(schema: schema, model: "din", useUser: options.useUserEmbedding)
            return DINModel(config: config, fields: fields, activation: try activation(config, model: "din"),
                            attentionActivation: try attentionActivation(config, model: "din"),
                            weighting: options.attentionWeighting, seed: seed)
        },
        "self-attention": { config, schema, options, seed in
            try SelfAttentionModel(config: config, schema: schema, useUser: options.useUserEmbedding, seed: seed)
        },
        "attention-price": { config, schema, options, seed in
            try AttentionPriceModel(config: config, schema: schema, useUser: options.useUserEmbedding, seed: seed)
        },
        "sasrec": { config, schema, _, seed in
            try SASRecModel(config: config, schema: schema, seed: seed)
        },
        "text-tower": { config, schema, options, seed in
            try TextTowerModel(config: config, schema: schema, options: options, seed: seed)
        },
        "long-term-interest": { config, schema, _, seed in
            try LongTermInterestModel(config: config, schema: schema, seed: seed)
        },
        "hybrid": { config, schema, _, seed in
            try HybridModel(config: config, schema: schema, seed: seed)
        },
    ]

    /// Names of the models this build can make, sorted.
    public static var modelNames: [String] { builders.keys.sorted() }

    /// The model `config.name` for records of `schema`, its dense weights drawn from `seed`.
    ///
    /// - Throws: `HeedError(.config)` for an unknown model name, invalid sizes or activation,
    ///   or a schema lacking a slot the model needs (the message names the model and slot).
    public static func makeModel(config: ModelConfig, schema: SampleSchema, seed: UInt64,
                                 options: BehaviourModelOptions = BehaviourModelOptions()) throws -> any RecommenderModel {
        try makeStatefulModel(config: config, schema: schema, seed: seed, options: options)
    }

    /// `makeModel`, typed with the trainer-facing extras (input fields, running statistics).
    public static func makeStatefulModel(config: ModelConfig, schema: SampleSchema, seed: UInt64,
                                         options: BehaviourModelOptions = BehaviourModelOptions()) throws -> any StatefulRecommender {
        guard let build = builders[config.name] else {
            throw HeedError(.config, "unknown model '\(config.name)' (this build has: \(modelNames.joined(separator: ", ")))")
        }
        try validateSizes(config)
        return try build(config, schema, options, seed)
    }

    /// The embedding tables (feature group → row width) `config.name` reads for `schema`:
    /// what the parameter servers must hold.
    public static func tableDims(config: ModelConfig, schema: SampleSchema,
                                 options: BehaviourModelOptions = BehaviourModelOptions()) throws -> [UInt8: Int] {
        try makeStatefulModel(config: config, schema: schema, seed: 0, options: options).tableDims
    }

    /// Checks the sizes every model shares.
    static func validateSizes(_ config: ModelConfig) throws {
        guard config.embeddingDim >= 1 else {
            throw HeedError(.config, "model \(config.name): embedding_dim must be >= 1, got \(config.embeddingDim)")
        }
        guard config.hidden.allSatisfy({ $0 >= 1 }) else {
            throw HeedError(.config, "model \(config.name): hidden sizes must be >= 1, got \(config.hidden)")
        }
        guard config.attentionHidden.allSatisfy({ $0 >= 1 }) else {
            throw HeedError(.config, "model \(config.name): attention_hidden sizes must be >= 1, got \(config.attentionHidden)")
        }
    }

    /// `config.activation` as a layer activation.
    /// DIN's attention-MLP activation: `attention_activation`, or `activation` when empty.
    static func attentionActivation(_ config: ModelConfig, model: String) throws -> ActivationKind {
        guard !config.attentionActivation.isEmpty else { return try activation(config, model: model) }
        guard let kind = ActivationKind(rawValue: config.attentionActivation) else {
            let known = ActivationKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw HeedError(.config, "model \(model): unknown attention_activation '\(config.attentionActivation)' (expected one of: \(known))")
        }
        return kind
    }

    static func activation(_ config: ModelConfig, model: String) throws -> ActivationKind {
        guard let kind = ActivationKind(rawValue: config.activation) else {
            let known = ActivationKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw HeedError(.config, "model \(model): unknown activation '\(config.activation)' (expected one of: \(known))")
        }
        return kind
    }
}
