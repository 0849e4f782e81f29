import HeedCore
import HeedLayers
import HeedWorker
import Testing
@testable import HeedModels

/// base and DIN against an independent NumPy float64 implementation
/// (`scripts/reference-models.py`, fixture `Fixtures/reference-models.json`): one training
/// step from fixed weights on a 4-sample batch whose histories have 3, 1, 0 and 4 real
/// positions, padded positions carrying real keys. Compared: logits, probabilities, loss,
/// every dense gradient (flat server order), every row gradient, the Dice running
/// statistics after the step, inference probabilities that use them, DIN's attention
/// weights, and the mini-batch aware L2.
///
/// Tolerances (|swift − ref| ≤ abs + rel·|ref|, and the worst error below a bound), from the
/// largest errors measured on x86-64/OpenBLAS (values are O(0.01–1)):
/// - Double network: abs 1e-12, rel 1e-9, worst < 1e-13 (measured 2.2e-16: the two sides
///   differ only in summation order);
/// - Float model: abs 2e-6, rel 2e-5, worst < 2e-6 (measured 1.8e-7: Float rounding
///   through Dice's batch statistics and two MLPs).
/// A value the reference gives as exactly 0 (rows read only at padded positions, a sample
/// with no history) must be exactly 0 in Swift.
@Suite struct ReferenceModelTests {
    static let fixture = ReferenceFixture.shared

    /// Tolerance check that also reports the worst error seen (for the numbers above).
    struct Closeness {
        let abs: Double, rel: Double
        var worst = 0.0

        mutating func check(_ value: Double, _ reference: Double, _ what: @autoclosure () -> String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
            let error = Swift.abs(value - reference)
            worst = max(worst, error)
            if reference == 0 {
                #expect(value == 0, "\(what()): \(value), reference exactly 0", sourceLocation: sourceLocation)
            } else {
                #expect(error <= abs + rel * Swift.abs(reference), "\(what()): \(value) vs reference \(reference)", sourceLocation: sourceLocation)
            }
        }

        mutating func check<S: Sequence>(_ values: S, _ reference: [Double], _ what: String,
                                         sourceLocation: SourceLocation = #_sourceLocation) where S.Element: BinaryFloatingPoint {
            let v = values.map { Double($0) }
            #expect(v.count == reference.count, "\(what): \(v.count) values for \(reference.count)", sourceLocation: sourceLocation)
            for (i, (a, b)) in zip(v, reference).enumerated() { check(a, b, "\(what)[\(i)]", sourceLocation: sourceLocation) }
        }
    }

    static let doubleTolerance = (abs: 1e-12, rel: 1e-9)
    static let floatTolerance = (abs: 2e-6, rel: 2e-5)

    @Test(arguments: fixture.cases)
    func doubleNetworkMatchesNumPyReference(_ c: ReferenceFixture.Case) {
        let f = Self.fixture
        var rng = SeededGenerator(seed: 1)
        var net = BehaviourNetwork<Double>(fields: ReferenceFixture.fields, dim: f.config.dim, hidden: f.config.hidden,
                                           attentionHidden: f.config.attention_hidden, activation: c.activationKind,
                                           pooling: c.behaviourPooling, generator: &rng)
        net.loadFlatParameters(c.dense)
        net.loadFlatStatistics(c.statistics_before)
        let rows = f.tableRows()
        let (loss, rowGradients) = net.trainStep(f.modelBatch(), rows: rows)
        var close = Closeness(abs: Self.doubleTolerance.abs, rel: Self.doubleTolerance.rel)
        close.check(loss, c.expected.loss, "loss")
        close.check(net.logits.data, c.expected.logits, "logits")
        close.check(net.flatGradients(), c.expected.dense_gradient, "dense gradient")
        for g: UInt8 in [1, 2, 3] {
            close.check(rowGradients[g]!.data, f.keyOrdered(g, c.expected.row_gradients[String(g)]!), "table \(g) row gradient")
        }
        close.check(net.flatStatistics(), c.expected.statistics_after, "Dice statistics after the step")
        if let weights = c.expected.attention_weights {
            close.check(net.attentionWeights!.data, weights.flatMap { $0 }, "attention weights")
        }
        net.forward(f.modelBatch(), rows: rows, training: false)
        close.check(net.logits.data.map { sigmoid($0) }, c.expected.inference_probabilities, "inference probabilities")
        #expect(close.worst < 1e-13, "worst |double − reference| = \(close.worst)")
    }

    /// The Float models the cluster trains, through their public step/predict/statistics API.
    @Test(arguments: fixture.cases)
    func floatModelMatchesNumPyReference(_ c: ReferenceFixture.Case) {
        let f = Self.fixture
        var model: any StatefulRecommender = switch c.behaviourPooling {
        case .pooled(let mode): BaseModel(config: f.modelConfig, fields: ReferenceFixture.fields, activation: c.activationKind, pooling: mode, seed: 9)
        case .targetAttention(let w): DINModel(config: f.modelConfig, fields: ReferenceFixture.fields, activation: c.activationKind, weighting: w, seed: 9)
        }
        #expect(model.name == c.model)
        #expect(model.denseParameterCount == c.dense.count)
        model.loadDenseParameters(c.dense.map { Float($0) })
        model.loadStatistics(c.statistics_before.map { Float($0) })
        let rows = f.batchRows()
        let out = model.trainStep(f.modelBatch(), rows: rows)
        var close = Closeness(abs: Self.floatTolerance.abs, rel: Self.floatTolerance.rel)
        close.check(out.loss, c.expected.loss, "loss")
        close.check(out.predictions, c.expected.probabilities, "probabilities")
        close.check(out.denseGradient, c.expected.dense_gradient, "dense gradient")
        #expect(Set(out.rowGradients.keys) == [1, 2, 3])
        for g: UInt8 in [1, 2, 3] {
            close.check(out.rowGradients[g] ?? [], f.keyOrdered(g, c.expected.row_gradients[String(g)]!), "table \(g) row gradient")
        }
        close.check(model.statistics(), c.expected.statistics_after, "Dice statistics after the step")
        close.check(model.predict(f.modelBatch(), rows: rows), c.expected.inference_probabilities, "inference probabilities")
        #expect(close.worst < 2e-6, "worst |float − reference| = \(close.worst)")
    }

    /// DIN §4.3's mini-batch aware L2 on top of the model's row gradients: what a worker pushes.
    @Test(arguments: fixture.cases)
    func miniBatchL2GradientsMatchNumPyReference(_ c: ReferenceFixture.Case) {
        let f = Self.fixture
        var model: any StatefulRecommender = switch c.behaviourPooling {
        case .pooled(let mode): BaseModel(config: f.modelConfig, fields: ReferenceFixture.fields, activation: c.activationKind, pooling: mode, seed: 9)
        case .targetAttention(let w): DINModel(config: f.modelConfig, fields: ReferenceFixture.fields, activation: c.activationKind, weighting: w, seed: 9)
        }
        model.loadDenseParameters(c.dense.map { Float($0) })
        model.loadStatistics(c.statistics_before.map { Float($0) })
        let rows = f.batchRows()
        var gradients = model.trainStep(f.modelBatch(), rows: rows).rowGradients
        let regularizer = MiniBatchRegularizer(lambda: Float(f.l2.lambda), counts: f.l2Counts())
        regularizer.addGradients(rows: rows, to: &gradients)
        var close = Closeness(abs: Self.floatTolerance.abs, rel: Self.floatTolerance.rel)
        for g: UInt8 in [1, 2, 3] {
            close.check(gradients[g] ?? [], f.keyOrdered(g, c.expected.l2_row_gradients[String(g)]!), "table \(g) regularised row gradient")
        }
        close.check(regularizer.penalty(rows: rows), c.expected.l2_penalty, "penalty")
    }
}
