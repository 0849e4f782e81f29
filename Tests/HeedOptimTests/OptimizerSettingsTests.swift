import Foundation
import HeedCore
import Testing
@testable import HeedOptim

@Suite struct OptimizerSettingsTests {
    @Test func decodesFlatKindTaggedJSONWithDefaults() throws {
        let json = Data(#"{"kind": "adam", "lr": 0.01}"#.utf8)
        let c = try JSONDecoder().decode(OptimizerSettings.self, from: json)
        #expect(c == .adam(AdamConfig(lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)))
        #expect(c.stateWidth == 3)
    }

    @Test(arguments: [
        OptimizerSettings.adam(AdamConfig(lr: 0.002, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.01)),
        .sgd(SGDConfig(lr: 0.5, momentum: 0.9)),
        .adagrad(AdagradConfig(lr: 0.05, eps: 1e-7, initialAccumulator: 0.1)),
    ])
    func roundTripsThroughJSON(config: OptimizerSettings) throws {
        let data = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(OptimizerSettings.self, from: data) == config)
        #expect(String(decoding: data, as: UTF8.self).contains("\"kind\":\"\(config.kind)\""))
    }

    @Test func unknownKindIsADecodingError() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(OptimizerSettings.self, from: Data(#"{"kind": "lion"}"#.utf8))
        }
    }

    @Test(arguments: [
        OptimizerSettings.adam(AdamConfig(lr: 0)), .adam(AdamConfig(beta1: 1)), .adam(AdamConfig(beta2: -0.1)),
        .adam(AdamConfig(eps: 0)), .adam(AdamConfig(weightDecay: -1)), .sgd(SGDConfig(lr: .nan)),
        .sgd(SGDConfig(momentum: 1)), .adagrad(AdagradConfig(initialAccumulator: -1)),
    ])
    func validateRejectsOutOfRangeSettings(config: OptimizerSettings) {
        #expect(throws: HeedError.self) { try config.validate() }
    }

    @Test func stateWidthFollowsTheRowLayout() {
        #expect(OptimizerSettings.sgd(SGDConfig()).stateWidth == 1)
        #expect(OptimizerSettings.sgd(SGDConfig(momentum: 0.5)).stateWidth == 2)
        #expect(OptimizerSettings.adagrad(AdagradConfig()).stateWidth == 2)
    }
}

@Suite struct OptimizerSettingsFromRunConfigTests {
    @Test func adamWKeepsDecayAndAdamDropsIt() {
        var run = HeedCore.OptimizerConfig(kind: .adamw, learningRate: 0.01)
        run.weightDecay = 0.05
        #expect(OptimizerSettings(run) == .adam(AdamConfig(lr: 0.01, weightDecay: 0.05)))
        run.kind = .adam
        #expect(OptimizerSettings(run) == .adam(AdamConfig(lr: 0.01, weightDecay: 0)))
    }

    @Test func sgdAndAdagradTakeRateAndEpsilon() {
        #expect(OptimizerSettings(HeedCore.OptimizerConfig(kind: .sgd, learningRate: 0.5)) == .sgd(SGDConfig(lr: 0.5)))
        #expect(OptimizerSettings(HeedCore.OptimizerConfig(kind: .adagrad, learningRate: 0.1)) == .adagrad(AdagradConfig(lr: 0.1, eps: 1e-8)))
    }
}
