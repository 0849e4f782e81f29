import ArgumentParser
import Foundation
import HeedCheckpoint
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
    @Option(name: .long, help: "λ of DIN's mini-batch aware L2 on embedding rows (0 = off).") var miniBatchL2: Double?
    @Option(name: .long, help: "DIN's attention weights: raw (the paper) or softmax.") var attentionWeighting: String?
    @Option(name: .long, help: "Activation of DIN's attention MLP (default: --activation's; the authors' code: sigmoid).") var attentionActivation: String?
    @Option(name: .long, help: "The base model's behaviour pooling: sum (the paper) or mean.") var basePooling: String?
    @Option(name: .long, help: "The self-attention model's pooling: attention or mean (its twin without attention weights).") var pooling: String?
    @Option(name: .long, help: "Attention heads of the sasrec and self-attention models.") var heads: Int?
    @Option(name: .long, help: "The attention-price model's fusion of interest and purchasing power: concat or product.") var priceFusion: String?
    @Option(name: .long, help: "The attention-price model reads the price features: true, or false for its twin without them.") var priceFeatures: Bool?
    @Option(name: .long, help: "text-tower: pre-trained item text vectors (scripts/embed-item-text.py); 'none' = random rows.") var textVectors: String?
    @Flag(name: .long, help: "text-tower: keep the item text vectors frozen (train the projection and the rest only).") var freezeText = false
    @Option(name: .long, help: "The long-term-interest model's sequence encoder: gru or self-attention.") var encoder: String?
    @Option(name: .long, help: "The long-term-interest model reads social neighbours: true or false (its twin without them).") var useNeighbors: Bool?
    @Option(name: .long, help: "The long-term-interest model reads item tags/categories: true or false (its twin without them).") var useTags: Bool?
    @Option(name: .long, help: "hybrid: the scoring parts, comma-separated from mf, seq, mlp (one alone = that part's baseline).") var parts: String?
    @Option(name: .long, help: "hybrid: the sequence cell, gru or lstm.") var sequence: String?
    @Option(name: .long, help: "hybrid: blend by a learned gate or fixed gate_weights (learned, fixed).") var gate: String?
    @Option(name: .long, help: "hybrid: the learned gate also reads log(1 + items read): true or false.") var gateHistory: Bool?
    @Option(name: .long, help: "hybrid: weight of the per-part softmax losses added to the blend's (0 = off).") var partLossWeight: Double?
    @Option(name: .long, help: "hybrid: factor on the user rows (MF and tower) as the network reads them (1 = off).") var userRowScale: Double?
    @Option(name: .long, help: "hybrid: weight of the anchor item in cross-sell / upsell / alternatives lists (0 = the user vector alone).") var anchorWeight: Double?
    @Option(name: .long, help: "hybrid: the MF part also reads the last item (FPMC): true or false.") var mfLastItem: Bool?
    @Option(name: .long, help: "hybrid with a fixed gate: weights of mf, seq, mlp in cross-sell / upsell / alternatives lists, comma-separated ('' = gate_weights).") var listGateWeights: String?
    @Option(name: .long, help: "Save the trained model to this directory (read it back with heed eval --model).") var saveModel: String?
    @Option(name: .long, help: "Directory for checkpoints (TOML [checkpoint] dir).") var checkpointDir: String?
    @Option(name: .long, help: "Checkpoint when the workers' steps together grew by this many (0 = off).") var checkpointEverySteps: Int?
    @Option(name: .long, help: "Checkpoint every this many seconds (0 = off).") var checkpointEverySeconds: Double?
    @Option(name: .long, help: "Checkpoints to keep.") var checkpointKeep: Int?
    @Option(name: .long, help: "Continue from a checkpoint: its directory, 'latest' (the newest valid one in the checkpoint directory), or 'auto' (latest if there is one, else a fresh start: for jobs a scheduler may requeue).")
    var resume: String?

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
        if let v = miniBatchL2 { c.model.miniBatchL2 = v }
        if let v = attentionWeighting { c.model.attentionWeighting = v }
        if let v = attentionActivation { c.model.attentionActivation = v }
        if let v = basePooling { c.model.basePooling = v }
        if let v = pooling { c.model.pooling = v }
        if let v = heads { c.model.heads = v }
        if let v = priceFusion { c.model.priceFusion = v }
        if let v = priceFeatures { c.model.priceFeatures = v }
        if let v = textVectors { c.model.textVectors = v == "none" ? "" : v }
        if freezeText { c.model.freezeText = true }
        if !c.model.textVectors.isEmpty { c.model.textVectors = absolute(c.model.textVectors) }
        if let v = encoder { c.model.encoder = v }
        if let v = useNeighbors { c.model.useNeighbors = v }
        if let v = useTags { c.model.useTags = v }
        if let v = parts { c.model.parts = v }
        if let v = sequence { c.model.sequence = v }
        if let v = gate { c.model.gate = v }
        if let v = gateHistory { c.model.gateHistory = v }
        if let v = partLossWeight { c.model.partLossWeight = v }
        if let v = userRowScale { c.model.userRowScale = v }
        if let v = anchorWeight { c.model.anchorWeight = v }
        if let v = mfLastItem { c.model.mfLastItem = v }
        if let v = listGateWeights { c.model.listGateWeights = try parseWeights(v, flag: "--list-gate-weights") }
        if let v = saveModel {
            // Absolute, so every role of a local cluster writes to the same place.
            c.output.modelDirectory = v.hasPrefix("/") ? v : FileManager.default.currentDirectoryPath + "/" + v
        }
        if let v = checkpointDir { c.checkpoint.directory = absolute(v) }
        if let v = checkpointEverySteps { c.checkpoint.everySteps = v }
        if let v = checkpointEverySeconds { c.checkpoint.everySeconds = v }
        if let v = checkpointKeep { c.checkpoint.keep = v }
        if !c.checkpoint.directory.isEmpty { c.checkpoint.directory = absolute(c.checkpoint.directory) }
        if let resume {
            let found: (path: String, model: SavedModel)?
            if resume == "auto" {
                found = CheckpointStore.resolveAuto(directory: c.checkpoint.directory, skipped: { printError("resume: \($0)") })
                if found == nil {
                    printError("resume auto: no valid checkpoint\(c.checkpoint.directory.isEmpty ? " (no checkpoint directory configured)" : " in \(c.checkpoint.directory)"); starting fresh")
                }
            } else {
                found = try CheckpointStore.resolve(resume == "latest" ? resume : absolute(resume), directory: c.checkpoint.directory,
                                                    skipped: { printError("resume: \($0)") })
            }
            if let found {
                c.checkpoint.resumeFrom = found.path
                // Resuming a named checkpoint keeps checkpointing beside it unless told otherwise.
                if c.checkpoint.directory.isEmpty { c.checkpoint.directory = FileOps.dirname(of: found.path) }
            }
        }
        try c.validate()
        return c
    }

    /// `path` made absolute, so every role of a local cluster reads and writes the same place.
    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

