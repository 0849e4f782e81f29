import Testing
@testable import HeedOptim

/// `|a − b| ≤ tol` elementwise.
func close(_ a: [Float], _ b: [Double], tol: Double = 1e-6) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) <= tol }
}

/// `|a − b| ≤ rel·|b|` elementwise: for optimizer state, where Float rounding of the betas
/// (0.999 is stored as 0.99899999) shows up in the fifth significant digit.
func closeRelative(_ a: [Float], _ b: [Double], rel: Double = 1e-4) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) <= rel * abs($1) }
}

@Suite struct DenseOptimizerTests {
    // Kingma & Ba (2015), Algorithm 1, with α = 0.1, β₁ = 0.9, β₂ = 0.999, ε = 1e-8:
    //   m_t = β₁ m + (1−β₁) g,  v_t = β₂ v + (1−β₂) g²,
    //   m̂ = m_t/(1−β₁ᵗ),  v̂ = v_t/(1−β₂ᵗ),  w -= α m̂/(√v̂ + ε).
    // Step 1 has m̂ = g and v̂ = g², so each weight with g ≠ 0 moves by exactly α·sign(g).
    @Test func adamFirstStepMovesEachWeightByLearningRateTimesSign() {
        var opt = DenseOptimizer(config: .adam(AdamConfig(lr: 0.1)), count: 3)
        var w: [Float] = [1, -2, 0.5]
        opt.update(&w, grads: [0.5, -1, 0])
        #expect(opt.step == 1)
        #expect(close(w, [0.9, -1.9, 0.5]))
        // m = 0.1 g; v = 0.001 g².
        #expect(closeRelative(opt.state, [0.05, -0.1, 0, 0.00025, 0.001, 0]))
    }

    // Step 2 with g₂ = [0.25, 1, 2] (bias corrections 1−0.9² = 0.19, 1−0.999² = 0.001999):
    //   w₀: m = 0.9·0.05 + 0.1·0.25 = 0.07, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
    //       m̂ = 0.368421, v̂ = 0.156203, w = 0.9 − 0.1·0.368421/0.395225 = 0.806782
    //   w₁: m = 0.01, v = 0.001999, m̂ = 0.0526316, v̂ = 1, w = −1.9 − 0.00526316 = −1.905263
    //   w₂: m = 0.2, v = 0.004, m̂ = 1.052632, v̂ = 2.001001, w = 0.5 − 0.0744137 = 0.425586
    @Test func adamSecondStepAppliesBiasCorrection() {
        var opt = DenseOptimizer(config: .adam(AdamConfig(lr: 0.1)), count: 3)
        var w: [Float] = [1, -2, 0.5]
        opt.update(&w, grads: [0.5, -1, 0])
        opt.update(&w, grads: [0.25, 1, 2])
        #expect(opt.step == 2)
        #expect(close(w, [0.806782040, -1.905263159, 0.425586318]))
        #expect(closeRelative(opt.state, [0.07, 0.01, 0.2, 0.00031225, 0.001999, 0.004]))
    }

    // AdamW (Loshchilov & Hutter 2019, Alg. 2 with schedule η = 1): the decay is decoupled,
    // w -= α·λ·w_{t−1} on top of the Adam step. With λ = 0.1, α = 0.1 step 1 gives
    //   w₀ = 1 − 0.01·1 − 0.1 = 0.89,  w₁ = −2 + 0.02 + 0.1 = −1.88,  w₂ = 0.5 − 0.005 = 0.495;
    // step 2 (decay of 0.01·w before the same Adam step as above):
    //   w₀ = 0.89·0.99 − 0.093218 = 0.787882, w₁ = −1.88·0.99 − 0.005263 = −1.866463,
    //   w₂ = 0.495·0.99 − 0.074414 = 0.415636.
    @Test func adamWDecaysWeightsIndependentlyOfTheGradient() {
        var opt = DenseOptimizer(config: .adam(AdamConfig(lr: 0.1, weightDecay: 0.1)), count: 3)
        var w: [Float] = [1, -2, 0.5]
        opt.update(&w, grads: [0.5, -1, 0])
        #expect(close(w, [0.89, -1.88, 0.495]))
        opt.update(&w, grads: [0.25, 1, 2])
        #expect(close(w, [0.787882040, -1.866463159, 0.415636318]))
        // The moments are those of plain Adam: decay never enters m or v.
        #expect(closeRelative(opt.state, [0.07, 0.01, 0.2, 0.00031225, 0.001999, 0.004]))
    }

    // SGD: w -= lr·g. lr = 0.1, g = [0.5, −2] → w = [1 − 0.05, 3 + 0.2].
    @Test func sgdStepsAgainstTheGradient() {
        var opt = DenseOptimizer(config: .sgd(SGDConfig(lr: 0.1)), count: 2)
        var w: [Float] = [1, 3]
        opt.update(&w, grads: [0.5, -2])
        #expect(close(w, [0.95, 3.2]))
        #expect(opt.state.isEmpty)
    }

    // Heavy-ball momentum (Sutskever et al. 2013, PyTorch form): buf = μ buf + g, w -= lr buf.
    // μ = 0.9, lr = 0.1, g = 0.5 twice: buf₁ = 0.5, w₁ = 0.95; buf₂ = 0.45 + 0.5 = 0.95, w₂ = 0.855.
    @Test func sgdMomentumAccumulatesVelocity() {
        var opt = DenseOptimizer(config: .sgd(SGDConfig(lr: 0.1, momentum: 0.9)), count: 1)
        var w: [Float] = [1]
        opt.update(&w, grads: [0.5])
        #expect(close(w, [0.95]) && close(opt.state, [0.5]))
        opt.update(&w, grads: [0.5])
        #expect(close(w, [0.855]) && close(opt.state, [0.95]))
    }

    // Adagrad (Duchi, Hazan & Singer 2011, diagonal): acc += g², w -= lr·g/(√acc + ε).
    // lr = 0.1, acc₀ = 0.1: g = 0.5 → acc = 0.35, w = 1 − 0.05/0.591608 = 0.915485;
    // g = 1 → acc = 1.35, w = 0.915485 − 0.1/1.161895 = 0.829418.
    @Test func adagradShrinksStepsAsSquaredGradientsAccumulate() {
        var opt = DenseOptimizer(config: .adagrad(AdagradConfig(lr: 0.1, initialAccumulator: 0.1)), count: 1)
        var w: [Float] = [1]
        opt.update(&w, grads: [0.5])
        #expect(close(w, [0.915484575]) && close(opt.state, [0.35]))
        opt.update(&w, grads: [1])
        #expect(close(w, [0.829418278]) && close(opt.state, [1.35]))
    }
}
