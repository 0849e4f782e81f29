import Foundation
import HeedCore
import HeedData
import HeedLayers
import Testing
@testable import HeedModels

/// DIN vs base on a prepared dataset: test AUC, GAUC, log loss per epoch and DIN's RelaImpr
/// over base, same seeds and settings. A measurement, not a check, so it only runs when asked:
///
///     HEED_COMPARE=beauty-sample swift test -c release --filter ModelComparison
///
/// `HEED_COMPARE` names a dataset of `ModelComparison.datasets`; optional overrides:
/// `HEED_COMPARE_EPOCHS`, `HEED_COMPARE_LR_SPARSE`, `HEED_COMPARE_LR_DENSE`, `HEED_COMPARE_BATCH`,
/// `HEED_COMPARE_DIM`, `HEED_COMPARE_ACTIVATION`, `HEED_COMPARE_MODELS` (comma list), `HEED_COMPARE_SEED`,
/// `HEED_COMPARE_USER` (1 = user embedding), `HEED_COMPARE_MAXLEN`.
@Suite struct ModelComparison {
    static let env = ProcessInfo.processInfo.environment

    /// name → (dataset, input folder or file, split).
    static let datasets: [String: (PrepareOptions.Dataset, String, PrepareOptions.SplitRule)] = [
        "beauty-sample": (.amazonBeauty, TestData.root + "/data/amazon-beauty-sample", .leaveOneOut),
        "beauty": (.amazonBeauty, "/work/shared/data/amazon2014-beauty-sports-toys-s3rec", .leaveOneOut),
        "taobao-sample": (.taobao, TestData.root + "/data/taobao-userbehavior-sample", .leaveOneOut),
        "taobao": (.taobao, "/work/shared/data/taobao-userbehavior-sample", .leaveOneOut),
        "taobao-time": (.taobao, "/work/shared/data/taobao-userbehavior-sample", .time(validFrom: nil, testFrom: nil)),
    ]

    @Test(.enabled(if: env["HEED_COMPARE"] != nil))
    func dinVersusBase() async throws {
        setBLASThreads(1)
        let name = Self.env["HEED_COMPARE"]!
        guard let (dataset, input, split) = Self.datasets[name] else {
            Issue.record("HEED_COMPARE=\(name) is not one of \(Self.datasets.keys.sorted())")
            return
        }
        func value<V: LosslessStringConvertible>(_ key: String, _ fallback: V) -> V { Self.env[key].flatMap(V.init) ?? fallback }
        let maxLength: Int = value("HEED_COMPARE_MAXLEN", 50)
        let (manifest, directory) = try TestData.prepare(dataset, input: input, split: split, maxLength: maxLength)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var settings = TrainSettings()
        settings.batchSize = value("HEED_COMPARE_BATCH", 256)
        settings.sparseLearningRate = value("HEED_COMPARE_LR_SPARSE", settings.sparseLearningRate)
        settings.denseLearningRate = value("HEED_COMPARE_LR_DENSE", settings.denseLearningRate)
        settings.seed = value("HEED_COMPARE_SEED", 1)
        let epochs: Int = value("HEED_COMPARE_EPOCHS", 3)
        var config = ModelConfig()
        config.embeddingDim = value("HEED_COMPARE_DIM", config.embeddingDim)
        config.activation = value("HEED_COMPARE_ACTIVATION", config.activation)
        var options = BehaviourModelOptions()
        options.useUserEmbedding = value("HEED_COMPARE_USER", 0) == 1
        let models = (Self.env["HEED_COMPARE_MODELS"] ?? "base,din").split(separator: ",").map(String.init)

        print("compare \(name): train \(manifest.recordCount(.train)) test \(manifest.recordCount(.test)) records; "
              + "dim \(config.embeddingDim) hidden \(config.hidden) attention \(config.attentionHidden) \(config.activation); "
              + "batch \(settings.batchSize) epochs \(epochs) lr sparse \(settings.sparseLearningRate) dense \(settings.denseLearningRate) "
              + "init N(0, \(settings.initScale)²) seed \(settings.seed) user \(options.useUserEmbedding) max-len \(maxLength)")
        var best: [String: EvalResult] = [:]
        for m in models {
            config.name = m
            let model = try ModelFactory.makeStatefulModel(config: config, schema: manifest.schema, seed: settings.seed, options: options)
            var perEpoch = settings
            perEpoch.epochs = 1
            var trainer = try InProcessTrainer(model: model, manifest: manifest, directory: directory, settings: perEpoch)
            let clock = ContinuousClock()
            for epoch in 1...epochs {
                let start = clock.now
                try await trainer.train()
                let seconds = (clock.now - start) / .seconds(1)
                let r = try await trainer.evaluate()
                let trainLoss = trainer.lossHistory.suffix(200).reduce(0, +) / Double(min(200, trainer.lossHistory.count))
                print(String(format: "  %@ epoch %d: test AUC %.4f GAUC %.4f logloss %.4f (train loss %.4f, %.0f samples/s)",
                             m, epoch, r.auc, r.gauc, r.logLoss, trainLoss, Double(settings.batchSize * (trainer.step / epoch)) / seconds))
                if best[m] == nil || r.auc > best[m]!.auc { best[m] = r }
            }
        }
        if let b = best["base"], let d = best["din"] {
            print(String(format: "  best epoch: base AUC %.4f GAUC %.4f | din AUC %.4f GAUC %.4f | RelaImpr AUC %.2f%% GAUC %.2f%%",
                         b.auc, b.gauc, d.auc, d.gauc, Metrics.relaImpr(auc: d.auc, baseAUC: b.auc), Metrics.relaImpr(auc: d.gauc, baseAUC: b.gauc)))
        }
    }
}
