import CBLAS
import HeedCore
import HeedLayers

/// One `cblas_sgemm` call of a layer step, described by its shape so the raw reference can
/// repeat exactly the same products.
struct GemmShape: Sendable {
    var transA: Bool
    var transB: Bool
    var m: Int
    var n: Int
    var k: Int
    /// 0 when the layer overwrites C, 1 when it accumulates into it.
    var beta: Float

    /// Floating-point operations of the product, `2·m·n·k`.
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// A workload measured by `heed bench dense`: one forward+backward step of a layer, and the
/// same step's GEMMs replayed alone through `cblas_sgemm` (the limit in the same run).
struct DenseBenchCase {
    /// Shown in the report, e.g. "mlp 200-200-80-1 relu".
    var name: String
    /// Batch size (rows or sequences) of the step.
    var batch: Int
    /// GEMM flops of one step (`2·M·N·K` summed over its products): the GFLOP/s numerator.
    var flops: Double
    /// Runs one forward+backward step of the layer on preallocated inputs.
    var step: () -> Void
    /// Runs exactly the step's GEMMs (shapes, transposes, betas) and nothing else.
    var raw: () -> Void
}

/// Runs a list of GEMM shapes through `cblas_sgemm` on buffers allocated once: the raw limit a
/// layer step is compared with.
final class RawGemmRunner {
    private let shapes: [GemmShape]
    private var a: [[Float]], b: [[Float]], c: [[Float]]

    /// Allocates and fills operand buffers for `shapes` from a seeded generator.
    init(shapes: [GemmShape], seed: UInt64) {
        self.shapes = shapes
        var rng = SeededGenerator(seed: seed)
        func fill(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextUnitFloat() - 0.5 } }
        a = shapes.map { fill($0.m * $0.k) }
        b = shapes.map { fill($0.k * $0.n) }
        c = shapes.map { fill($0.m * $0.n) }
    }

    /// Performs every GEMM once.
    func run() {
        for (i, s) in shapes.enumerated() {
            // Row-major leading dimensions of op(A) (m × k) and op(B) (k × n) as stored.
            let lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n
            a[i].withUnsafeBufferPointer { pa in
                b[i].withUnsafeBufferPointer { pb in
                    c[i].withUnsafeMutableBufferPointer { pc in
                        // Safe: buffers were sized m·k, k·n and m·n for this shape.
                        cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans,
                                    Int32(s.m), Int32(s.n), Int32(s.k), 1, pa.baseAddress, Int32(lda),
                                    pb.baseAddress, Int32(ldb), s.beta, pc.baseAddress, Int32(s.n))
                    }
                }
            }
        }
    }
}

/// Holds an `MLPLayer` and its step buffers so a bench closure can mutate them in place.
final class MLPBenchState {
    var mlp: MLPLayer<Float>
    let x: Tensor<Float>
    let dout: Tensor<Float>
    var out = Tensor<Float>.empty
    var dx: Tensor<Float>

    /// An MLP of `sizes` with `activation`, random inputs of `batch` rows and a random output gradient.
    init(sizes: [Int], activation: ActivationKind, batch: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        mlp = MLPLayer(sizes: sizes, activation: activation, generator: &rng)
        x = Tensor(gaussian: [batch, sizes[0]], std: 1, generator: &rng)
        dout = Tensor(gaussian: [batch, sizes[sizes.count - 1]], std: 1e-3, generator: &rng)
        dx = Tensor(zeros: [batch, sizes[0]])
    }

    /// One training step's layer work: zero gradients, forward, backward (including the input gradient).
    func step() {
        mlp.zeroGradients()
        mlp.forward(&out, x, training: true)
        mlp.backward(&dx, dout)
    }

    /// The GEMMs `MLPLayer` performs per step: per layer a forward product, the weight gradient,
    /// and the input gradient (accumulating into `dx` for the first layer, overwriting scratch above it).
    static func gemms(sizes: [Int], batch: Int) -> [GemmShape] {
        let layers = sizes.count - 1
        var shapes: [GemmShape] = []
        for l in 0..<layers {
            shapes.append(GemmShape(transA: false, transB: false, m: batch, n: sizes[l + 1], k: sizes[l], beta: 1))
        }
        for l in stride(from: layers - 1, through: 0, by: -1) {
            shapes.append(GemmShape(transA: true, transB: false, m: sizes[l], n: sizes[l + 1], k: batch, beta: 1))
            shapes.append(GemmShape(transA: false, transB: true, m: batch, n: sizes[l], k: sizes[l + 1], beta: l == 0 ? 1 : 0))
        }
        return shapes
    }
}
