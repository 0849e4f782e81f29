/// Everything a training run needs, as plain data: read once by the executable (TOML file,
/// then flags), sent by the coordinator to every role in its registration reply, and
/// stored in checkpoints' manifests.
public struct RunConfig: Codable, Equatable, Sendable {
    /// Model choice and hyper-parameters.
    public var model = ModelConfig()
    /// Training data and schedule.
    public var data = DataConfig()
    /// Cluster shape and consistency.
    public var cluster = ClusterConfig()
    /// Optimizer for embedding rows (sparse, lazy).
    public var sparseOptimizer = OptimizerConfig(kind: .adam, learningRate: 0.001)
    /// Optimizer for dense weights.
    public var denseOptimizer = OptimizerConfig(kind: .adam, learningRate: 0.001)
    /// Seed for initialisers, shuffles and dropout.
    public var seed: UInt64 = 1
    /// Where the trained model goes.
    public var output = OutputConfig()
    /// Periodic checkpoints and what to resume from.
    public var checkpoint = CheckpointConfig()
    /// Derived by the coordinator from the model and the prepared data (never read from
    /// TOML), so every role builds the same tables and model without reading the data.
    public var layout = Layout()

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case model, data, cluster, sparseOptimizer, denseOptimizer, seed, output, checkpoint, layout
    }

    /// Decodes a config; sections added since a model was saved take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelConfig.self, forKey: .model)
        data = try c.decode(DataConfig.self, forKey: .data)
        cluster = try c.decode(ClusterConfig.self, forKey: .cluster)
        sparseOptimizer = try c.decode(OptimizerConfig.self, forKey: .sparseOptimizer)
        denseOptimizer = try c.decode(OptimizerConfig.self, forKey: .denseOptimizer)
        seed = try c.decode(UInt64.self, forKey: .seed)
        output = try c.decode(OutputConfig.self, forKey: .output)
        checkpoint = try c.decodeIfPresent(CheckpointConfig.self, forKey: .checkpoint) ?? CheckpointConfig()
        layout = try c.decode(Layout.self, forKey: .layout)
    }

    /// What the coordinator derives and hands to every role.
    public struct Layout: Codable, Equatable, Sendable {
        /// Row dimension per embedding table (feature group).
        public var tableDims: [UInt8: Int] = [:]
        /// Length of the flat dense parameter vector.
        public var denseCount = 0
        /// The prepared dataset's sample schema, as JSON (HeedData's `SampleSchema`).
        public var schemaJSON = ""
        /// Steps every worker takes per epoch (bounded and sync modes; 0 = all its batches).
        public var stepsPerEpoch = 0
        /// Tables whose rows start from a file of pre-trained vectors (`ItemVectors`): table
        /// id → absolute path. Servers load their share on a fresh start (not on resume).
        public var initialRows: [UInt8: String] = [:]
        /// Standard deviation of the key-seeded initialiser per table where it differs from
        /// `model.initScale` (e.g. a text table drawn at the pre-trained vectors' scale).
        public var initScales: [UInt8: Double] = [:]
        public init() {}

        private enum CodingKeys: String, CodingKey { case tableDims, denseCount, schemaJSON, stepsPerEpoch, initialRows, initScales }

        /// Decodes a layout; fields added since a model was saved take their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            tableDims = try c.decode([UInt8: Int].self, forKey: .tableDims)
            denseCount = try c.decode(Int.self, forKey: .denseCount)
            schemaJSON = try c.decode(String.self, forKey: .schemaJSON)
            stepsPerEpoch = try c.decode(Int.self, forKey: .stepsPerEpoch)
            initialRows = try c.decodeIfPresent([UInt8: String].self, forKey: .initialRows) ?? [:]
            initScales = try c.decodeIfPresent([UInt8: Double].self, forKey: .initScales) ?? [:]
        }
    }
}

/// Which model and its sizes.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// `base`, `din`, ... (see DESIGN.md's model table).
    public var name = "din"
    /// Embedding dimension of every table.
    public var embeddingDim = 18
    /// Hidden sizes of the prediction MLP (the last layer to 1 logit is implicit).
    public var hidden = [200, 80]
    /// Hidden sizes of DIN's attention MLP.
    public var attentionHidden = [80, 40]
    /// Activation in the MLPs: `dice`, `prelu`, `relu`.
    public var activation = "dice"
    /// Standard deviation of the key-seeded row initialiser.
    public var initScale = 0.01
    /// λ of DIN's mini-batch aware regularisation (§4.3): L2 on the embedding rows each
    /// batch uses, scaled by 1 / the feature's count in the training samples; 0 = off.
    public var miniBatchL2 = 0.0
    /// How DIN turns attention scores into pooling weights: `raw` (the paper: unnormalised)
    /// or `softmax` over each sequence's real positions (the paper's public code).
    public var attentionWeighting = "raw"
    /// Activation of DIN's attention MLP; empty = `activation` (the paper's Dice/PReLU in
    /// both MLPs). The DIN authors' public code uses `sigmoid` there.
    public var attentionActivation = ""
    /// How the base model pools the behaviour sequence: `sum` (the paper) or `mean`.
    public var basePooling = "sum"
    /// How the `self-attention` model pools its encoded behaviours: `attention` or `mean`.
    public var pooling = "attention"
    /// Next-item models (`sasrec`): self-attention blocks.
    public var blocks = 2
    /// Attention heads of the `sasrec` and `self-attention` models (divides `embeddingDim`).
    public var heads = 1
    /// Next-item models: dropout rate on the input embeddings and in every block.
    public var dropout = 0.2
    /// Next-item models: the most recent items the model reads (SASRec's maxlen n).
    public var maxLength = 50
    /// Next-item models: training loss — `bce` (one sampled negative per position, the
    /// SASRec paper), `sampled-softmax` (softmax over the positive and `negatives` items
    /// shared by the batch) or `softmax` (full cross-entropy over every catalogue item).
    public var loss = "bce"
    /// Next-item models: negatives per batch for `sampled-softmax`.
    public var negatives = 256
    /// `attention-price`: how the pooled interest meets purchasing power — `concat` or
    /// `product` (the source document's `f = Xᵀ a p`).
    public var priceFusion = "concat"
    /// `attention-price`: read the price features (false = the twin without them).
    public var priceFeatures = true
    /// `text-tower`: file of pre-trained item text vectors (`ItemVectors`) that starts the
    /// item-text table; empty = key-seeded random rows at the vectors' scale (the twin).
    public var textVectors = ""
    /// `text-tower`: width of the item-text rows (all-MiniLM-L6-v2: 384).
    public var textDim = 384
    /// `text-tower`: keep the item-text rows at their initial values (no row gradients are
    /// pushed for that table); the projection and everything else still train.
    public var freezeText = false
    /// The `long-term-interest` model's behaviour-sequence encoder: `gru` or `self-attention`.
    public var encoder = "gru"
    /// The `long-term-interest` model reads the social neighbours (trust links) when the data has them.
    public var useNeighbors = true
    /// The `long-term-interest` model reads item tags (category, attribute tokens) when the data has them.
    public var useTags = true
    /// `hybrid`: the sequence part's recurrent cell, `gru` or `lstm`.
    public var sequence = "gru"
    /// `hybrid`: the parts that score, comma-separated from `mf`, `seq`, `mlp` (one part
    /// alone is the single-part baseline).
    public var parts = "mf,seq,mlp"
    /// `hybrid`: how the parts are blended — `learned` (a softmax gate over the parts from the
    /// user-side vectors) or `fixed` (`gate_weights`).
    public var gate = "learned"
    /// `hybrid` with `gate = "fixed"`: the weights of mf, seq, mlp (parts not in `parts` get 0).
    public var gateWeights = [1.0, 1.0, 1.0]
    /// `hybrid` with `gate = "learned"`: the gate also reads log(1 + items read so far).
    public var gateHistory = false
    /// `hybrid` with two parts or more: λ of the per-part softmax losses added to the blend's
    /// (each part's own score trained as a ranker too); 0 = the blend's loss alone.
    public var partLossWeight = 0.0
    /// `hybrid`: the user rows (MF and tower) enter the network multiplied by this factor; with
    /// Adam (steps of about `lr` whatever the gradient's size) it multiplies the user rows'
    /// effective step and initial scale, for rows that get one update per epoch. 1 = off.
    public var userRowScale = 1.0
    /// `hybrid`: weight β of the anchor item in lists made around an anchor (cross-sell,
    /// upsell, alternatives): each part's block of the list's user vector becomes
    /// `U_k + β ‖U_k‖ b_k(a)/‖b_k(a)‖`, b_k(a) the anchor's item vector of that part. 0 = the
    /// user vector alone.
    public var anchorWeight = 0.0
    /// `hybrid`: the MF part also reads the last item (FPMC: user × item plus last item × item,
    /// a fourth D-wide block in the item rows).
    public var mfLastItem = false
    /// `hybrid` with `gate = "fixed"`: the weights of mf, seq, mlp in lists made around an
    /// anchor (cross-sell, upsell, alternatives); empty = `gate_weights`, as for the next item.
    public var listGateWeights: [Double] = []
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case name, embeddingDim, hidden, attentionHidden, activation, initScale, miniBatchL2, attentionWeighting, basePooling, pooling
        case attentionActivation
        case blocks, heads, dropout, maxLength, loss, negatives
        case priceFusion, priceFeatures
        case textVectors, textDim, freezeText
        case encoder, useNeighbors, useTags
        case sequence, parts, gate, gateWeights
        case gateHistory, partLossWeight
        case userRowScale, anchorWeight, mfLastItem, listGateWeights
    }

    /// Decodes a config; keys added since a model was saved take their defaults, so older
    /// saved models still load.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ModelConfig()
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? d.name
        embeddingDim = try c.decodeIfPresent(Int.self, forKey: .embeddingDim) ?? d.embeddingDim
        hidden = try c.decodeIfPresent([Int].self, forKey: .hidden) ?? d.hidden
        attentionHidden = try c.decodeIfPresent([Int].self, forKey: .attentionHidden) ?? d.attentionHidden
        activation = try c.decodeIfPresent(String.self, forKey: .activation) ?? d.activation
        initScale = try c.decodeIfPresent(Double.self, forKey: .initScale) ?? d.initScale
        miniBatchL2 = try c.decodeIfPresent(Double.self, forKey: .miniBatchL2) ?? d.miniBatchL2
        attentionWeighting = try c.decodeIfPresent(String.self, forKey: .attentionWeighting) ?? d.attentionWeighting
        attentionActivation = try c.decodeIfPresent(String.self, forKey: .attentionActivation) ?? d.attentionActivation
        basePooling = try c.decodeIfPresent(String.self, forKey: .basePooling) ?? d.basePooling
        pooling = try c.decodeIfPresent(String.self, forKey: .pooling) ?? d.pooling
        blocks = try c.decodeIfPresent(Int.self, forKey: .blocks) ?? d.blocks
        heads = try c.decodeIfPresent(Int.self, forKey: .heads) ?? d.heads
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? d.dropout
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength) ?? d.maxLength
        loss = try c.decodeIfPresent(String.self, forKey: .loss) ?? d.loss
        negatives = try c.decodeIfPresent(Int.self, forKey: .negatives) ?? d.negatives
        priceFusion = try c.decodeIfPresent(String.self, forKey: .priceFusion) ?? d.priceFusion
        priceFeatures = try c.decodeIfPresent(Bool.self, forKey: .priceFeatures) ?? d.priceFeatures
        textVectors = try c.decodeIfPresent(String.self, forKey: .textVectors) ?? d.textVectors
        textDim = try c.decodeIfPresent(Int.self, forKey: .textDim) ?? d.textDim
        freezeText = try c.decodeIfPresent(Bool.self, forKey: .freezeText) ?? d.freezeText
        encoder = try c.decodeIfPresent(String.self, forKey: .encoder) ?? d.encoder
        useNeighbors = try c.decodeIfPresent(Bool.self, forKey: .useNeighbors) ?? d.useNeighbors
        useTags = try c.decodeIfPresent(Bool.self, forKey: .useTags) ?? d.useTags
        sequence = try c.decodeIfPresent(String.self, forKey: .sequence) ?? d.sequence
        parts = try c.decodeIfPresent(String.self, forKey: .parts) ?? d.parts
        gate = try c.decodeIfPresent(String.self, forKey: .gate) ?? d.gate
        gateWeights = try c.decodeIfPresent([Double].self, forKey: .gateWeights) ?? d.gateWeights
        gateHistory = try c.decodeIfPresent(Bool.self, forKey: .gateHistory) ?? d.gateHistory
        partLossWeight = try c.decodeIfPresent(Double.self, forKey: .partLossWeight) ?? d.partLossWeight
        userRowScale = try c.decodeIfPresent(Double.self, forKey: .userRowScale) ?? d.userRowScale
        anchorWeight = try c.decodeIfPresent(Double.self, forKey: .anchorWeight) ?? d.anchorWeight
        mfLastItem = try c.decodeIfPresent(Bool.self, forKey: .mfLastItem) ?? d.mfLastItem
        listGateWeights = try c.decodeIfPresent([Double].self, forKey: .listGateWeights) ?? d.listGateWeights
    }
}

/// What a run writes besides its metrics.
public struct OutputConfig: Codable, Equatable, Sendable {
    /// Directory for the trained model (`SavedModel`: one parameter file per server and
    /// a manifest), written at the end of training; empty = do not save. In a multi-host
    /// run every server writes its own file here, so it must be a shared path.
    public var modelDirectory = ""
    public init() {}
}

/// Checkpoints the coordinator takes while training (`[checkpoint]` in TOML), and the one a
/// run resumes from. Each checkpoint is `dir/step-<global step>/` in the saved-model format.
public struct CheckpointConfig: Codable, Equatable, Sendable {
    /// Directory holding the checkpoints; empty = no checkpoints. Shared by every role of a
    /// multi-host run (servers write their files there).
    public var directory = ""
    /// Take one when the workers' steps together have grown by this many since the last (0 = off).
    public var everySteps = 0
    /// Take one when this many seconds have passed since the last (0 = off).
    public var everySeconds = 0.0
    /// Checkpoints kept; older ones are deleted after a new one is complete.
    public var keep = 3
    /// Also take one when training ends (on by default when `directory` is set).
    public var atEnd = true
    /// The checkpoint directory this run resumes from (set by `--resume`; empty = fresh start).
    public var resumeFrom = ""
    public init() {}

    /// True when the coordinator takes checkpoints.
    public var isEnabled: Bool { !directory.isEmpty }
}

/// Where the prepared samples are and how to go through them.
public struct DataConfig: Codable, Equatable, Sendable {
    /// Directory of a prepared dataset (holds its manifest).
    public var path = "out/prepared/beauty-ctr"
    /// Samples per worker step.
    public var batchSize = 256
    /// Passes over the training split.
    public var epochs = 1
    /// Stop after this many steps per worker (0 = no limit); for smoke runs and benches.
    public var maxSteps = 0
    public init() {}
}

/// Consistency between workers' clocks.
public enum ConsistencyMode: String, Codable, Sendable, CaseIterable {
    /// Each push is applied when it arrives; no waiting.
    case async
    /// A worker may be at most `staleness` steps ahead of the slowest worker.
    case bounded
    /// All workers' gradients of a step are applied before anyone pulls for the next step.
    case sync
}

/// Roles, transport and failure detection.
public struct ClusterConfig: Codable, Equatable, Sendable {
    /// Parameter servers.
    public var servers = 1
    /// Workers.
    public var workers = 1
    /// Consistency mode.
    public var mode = ConsistencyMode.async
    /// Bound for `.bounded` mode.
    public var staleness = 4
    /// `ipc` or `tcp` for the local launcher.
    public var transport = "ipc"
    /// Heartbeat period.
    public var heartbeatMilliseconds = 500
    /// A role silent for this long is declared failed.
    public var failureTimeoutMilliseconds = 10_000
    /// Requests kept in flight per server by a worker.
    public var inFlight = 4
    /// Virtual slots in the sharding plan.
    public var slots = 4096
    public init() {}
}

/// One optimizer's settings.
public struct OptimizerConfig: Codable, Equatable, Sendable {
    /// The update rule.
    public enum Kind: String, Codable, Sendable { case adam, adamw, sgd, adagrad }
    public var kind: Kind
    public var learningRate: Double
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    /// Decoupled weight decay (AdamW only).
    public var weightDecay = 0.0
    public init(kind: Kind, learningRate: Double) {
        self.kind = kind
        self.learningRate = learningRate
    }
}

extension RunConfig {
    /// Reads a TOML run config over the defaults; unknown keys and wrong types are errors
    /// naming the file and line.
    public init(toml doc: TOMLDocument) throws {
        self.init()
        var reader = TOMLReader(doc: doc)
        model.name = try reader.string("model.name") ?? model.name
        model.embeddingDim = try reader.int("model.embedding_dim") ?? model.embeddingDim
        model.hidden = try reader.intArray("model.hidden") ?? model.hidden
        model.attentionHidden = try reader.intArray("model.attention_hidden") ?? model.attentionHidden
        model.activation = try reader.string("model.activation") ?? model.activation
        model.initScale = try reader.double("model.init_scale") ?? model.initScale
        model.miniBatchL2 = try reader.double("model.mini_batch_l2") ?? model.miniBatchL2
        model.attentionWeighting = try reader.string("model.attention_weighting") ?? model.attentionWeighting
        model.attentionActivation = try reader.string("model.attention_activation") ?? model.attentionActivation
        model.basePooling = try reader.string("model.base_pooling") ?? model.basePooling
        model.pooling = try reader.string("model.pooling") ?? model.pooling
        model.blocks = try reader.int("model.blocks") ?? model.blocks
        model.heads = try reader.int("model.heads") ?? model.heads
        model.dropout = try reader.double("model.dropout") ?? model.dropout
        model.maxLength = try reader.int("model.max_len") ?? model.maxLength
        model.loss = try reader.string("model.loss") ?? model.loss
        model.negatives = try reader.int("model.negatives") ?? model.negatives
        if let v = try reader.string("model.price_fusion") {
            guard ["concat", "product"].contains(v) else { throw reader.error("model.price_fusion", "must be one of concat, product") }
            model.priceFusion = v
        }
        if let v = try reader.bool("model.price_features") { model.priceFeatures = v }
        model.textVectors = try reader.string("model.text_vectors") ?? model.textVectors
        model.textDim = try reader.int("model.text_dim") ?? model.textDim
        if let v = try reader.bool("model.freeze_text") { model.freezeText = v }
        model.encoder = try reader.string("model.encoder") ?? model.encoder
        model.useNeighbors = try reader.bool("model.use_neighbors") ?? model.useNeighbors
        model.useTags = try reader.bool("model.use_tags") ?? model.useTags
        model.sequence = try reader.string("model.sequence") ?? model.sequence
        model.parts = try reader.string("model.parts") ?? model.parts
        model.gate = try reader.string("model.gate") ?? model.gate
        model.gateWeights = try reader.doubleArray("model.gate_weights") ?? model.gateWeights
        model.gateHistory = try reader.bool("model.gate_history") ?? model.gateHistory
        model.partLossWeight = try reader.double("model.part_loss_weight") ?? model.partLossWeight
        model.userRowScale = try reader.double("model.user_row_scale") ?? model.userRowScale
        model.anchorWeight = try reader.double("model.anchor_weight") ?? model.anchorWeight
        model.mfLastItem = try reader.bool("model.mf_last_item") ?? model.mfLastItem
        model.listGateWeights = try reader.doubleArray("model.list_gate_weights") ?? model.listGateWeights
        data.path = try reader.string("data.path") ?? data.path
        data.batchSize = try reader.int("data.batch_size") ?? data.batchSize
        data.epochs = try reader.int("data.epochs") ?? data.epochs
        data.maxSteps = try reader.int("data.max_steps") ?? data.maxSteps
        cluster.servers = try reader.int("cluster.servers") ?? cluster.servers
        cluster.workers = try reader.int("cluster.workers") ?? cluster.workers
        if let m = try reader.string("cluster.mode") {
            guard let mode = ConsistencyMode(rawValue: m) else { throw reader.error("cluster.mode", "must be one of async, bounded, sync") }
            cluster.mode = mode
        }
        cluster.staleness = try reader.int("cluster.staleness") ?? cluster.staleness
        cluster.transport = try reader.string("cluster.transport") ?? cluster.transport
        cluster.heartbeatMilliseconds = try reader.int("cluster.heartbeat_ms") ?? cluster.heartbeatMilliseconds
        cluster.failureTimeoutMilliseconds = try reader.int("cluster.failure_timeout_ms") ?? cluster.failureTimeoutMilliseconds
        cluster.inFlight = try reader.int("cluster.in_flight") ?? cluster.inFlight
        cluster.slots = try reader.int("cluster.slots") ?? cluster.slots
        sparseOptimizer = try reader.optimizer("optimizer.sparse", default: sparseOptimizer)
        denseOptimizer = try reader.optimizer("optimizer.dense", default: denseOptimizer)
        if let s = try reader.int("seed") { seed = UInt64(s) }
        output.modelDirectory = try reader.string("output.model") ?? output.modelDirectory
        checkpoint.directory = try reader.string("checkpoint.dir") ?? checkpoint.directory
        checkpoint.everySteps = try reader.int("checkpoint.every_steps") ?? checkpoint.everySteps
        checkpoint.everySeconds = try reader.double("checkpoint.every_seconds") ?? checkpoint.everySeconds
        checkpoint.keep = try reader.int("checkpoint.keep") ?? checkpoint.keep
        if let v = try reader.bool("checkpoint.at_end") { checkpoint.atEnd = v }
        try reader.rejectUnread()
        try validate()
    }

    /// Checks ranges; errors say which setting is wrong.
    public func validate() throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw HeedError(.config, "invalid config: \(what)") } }
        try check(cluster.servers >= 1 && cluster.servers <= 256, "cluster.servers must be in 1...256")
        try check(cluster.workers >= 1 && cluster.workers <= 256, "cluster.workers must be in 1...256")
        try check(cluster.slots >= cluster.servers, "cluster.slots must be >= cluster.servers")
        try check(cluster.staleness >= 0, "cluster.staleness must be >= 0")
        try check(["ipc", "tcp"].contains(cluster.transport), "cluster.transport must be ipc or tcp")
        try check(cluster.inFlight >= 1, "cluster.in_flight must be >= 1")
        try check(data.batchSize >= 1, "data.batch_size must be >= 1")
        try check(data.epochs >= 1, "data.epochs must be >= 1")
        try check(model.embeddingDim >= 1, "model.embedding_dim must be >= 1")
        try check(model.miniBatchL2 >= 0 && model.miniBatchL2.isFinite, "model.mini_batch_l2 must be a finite number >= 0")
        try check(["raw", "softmax"].contains(model.attentionWeighting), "model.attention_weighting must be raw or softmax")
        try check(["sum", "mean"].contains(model.basePooling), "model.base_pooling must be sum or mean")
        try check(["attention", "mean"].contains(model.pooling), "model.pooling must be attention or mean")
        try check(model.blocks >= 1 && model.heads >= 1 && model.maxLength >= 1 && model.negatives >= 1,
                  "model.blocks, model.heads, model.max_len and model.negatives must be >= 1")
        try check(model.dropout >= 0 && model.dropout < 1, "model.dropout must be in [0, 1)")
        try check(model.textDim >= 1 && model.textDim <= 1 << 16, "model.text_dim must be in 1...65536")
        try check(["bce", "sampled-softmax", "softmax"].contains(model.loss), "model.loss must be bce, sampled-softmax or softmax")
        try check(["concat", "product"].contains(model.priceFusion), "model.price_fusion must be concat or product")
        try check(["gru", "self-attention"].contains(model.encoder), "model.encoder must be gru or self-attention")
        try check(sparseOptimizer.learningRate > 0 && denseOptimizer.learningRate > 0, "learning rates must be > 0")
        try check(checkpoint.everySteps >= 0, "checkpoint.every_steps must be >= 0")
        try check(checkpoint.everySeconds >= 0 && checkpoint.everySeconds.isFinite, "checkpoint.every_seconds must be >= 0")
        try check(checkpoint.keep >= 1, "checkpoint.keep must be >= 1")
        try check(checkpoint.isEnabled || (checkpoint.everySteps == 0 && checkpoint.everySeconds == 0),
                  "checkpoint.every_steps / every_seconds need checkpoint.dir")
    }
}

/// Typed reads from a TOML document that remember which keys were used.
private struct TOMLReader {
    let doc: TOMLDocument
    var read: Set<String> = []

    func error(_ key: String, _ message: String) -> HeedError {
        HeedError(.config, "\(doc.location(of: key))\(key) \(message)")
    }
    mutating func string(_ key: String) throws -> String? {
        read.insert(key)
        guard let v = doc[key] else { return nil }
        guard case .string(let s) = v else { throw error(key, "must be a string") }
        return s
    }
    mutating func int(_ key: String) throws -> Int? {
        read.insert(key)
        guard let v = doc[key] else { return nil }
        guard case .integer(let i) = v else { throw error(key, "must be an integer") }
        return i
    }
    mutating func double(_ key: String) throws -> Double? {
        read.insert(key)
        switch doc[key] {
        case nil: return nil
        case .float(let d)?: return d
        case .integer(let i)?: return Double(i)
        default: throw error(key, "must be a number")
        }
    }
    mutating func bool(_ key: String) throws -> Bool? {
        read.insert(key)
        guard let v = doc[key] else { return nil }
        guard case .bool(let b) = v else { throw error(key, "must be true or false") }
        return b
    }
    mutating func intArray(_ key: String) throws -> [Int]? {
        read.insert(key)
        guard let v = doc[key] else { return nil }
        guard case .array(let items) = v else { throw error(key, "must be an array of integers") }
        return try items.map { item in
            guard case .integer(let i) = item else { throw error(key, "must be an array of integers") }
            return i
        }
    }
    mutating func doubleArray(_ key: String) throws -> [Double]? {
        read.insert(key)
        guard let v = doc[key] else { return nil }
        guard case .array(let items) = v else { throw error(key, "must be an array of numbers") }
        return try items.map { item in
            switch item {
            case .float(let d): return d
            case .integer(let i): return Double(i)
            default: throw error(key, "must be an array of numbers")
            }
        }
    }
    mutating func optimizer(_ table: String, default d: OptimizerConfig) throws -> OptimizerConfig {
        var o = d
        if let k = try string(table + ".kind") {
            guard let kind = OptimizerConfig.Kind(rawValue: k) else { throw error(table + ".kind", "must be adam, adamw, sgd or adagrad") }
            o.kind = kind
        }
        o.learningRate = try double(table + ".lr") ?? o.learningRate
        o.beta1 = try double(table + ".beta1") ?? o.beta1
        o.beta2 = try double(table + ".beta2") ?? o.beta2
        o.epsilon = try double(table + ".eps") ?? o.epsilon
        o.weightDecay = try double(table + ".weight_decay") ?? o.weightDecay
        return o
    }
    func rejectUnread() throws {
        if let unknown = doc.values.keys.filter({ !read.contains($0) }).sorted().first {
            throw error(unknown, "is not a known setting")
        }
    }
}
