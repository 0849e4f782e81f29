import CBLAS
import HeedCore
import HeedLayers

/// One `cblas_sgemm` call of a layer step, described by its shape so the raw reference can
/// repeat exactly the same products.
package struct GemmShape: Sendable {
    /// Whether A is stored transposed.
    package var transA: Bool
    /// Whether B is stored transposed.
    package var transB: Bool
    /// Rows of op(A) and C.
    package var m: Int
    /// Columns of op(B) and C.
    package var n: Int
    /// Inner dimension.
    package var k: Int
    /// 0 when the layer overwrites C, 1 when it accumulates into it.
    package var beta: Float

    /// The product op(A) (m × k) · op(B) (k × n) into C (m × n).
    package init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, beta: Float) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k; self.beta = beta
    }

    /// Floating-point operations of the product, `2·m·n·k`.
    package var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// A workload measured by `heed bench dense`: one forward+backward step of a layer, and the
/// same step's GEMMs replayed alone through `cblas_sgemm` (the limit in the same run).
package struct DenseBenchCase {
    /// Shown in the report, e.g. "mlp 200-200-80-1 relu".
    package var name: String
    /// Batch size (rows or sequences) of the step.
    package var batch: Int
    /// GEMM flops of one step (`2·M·N·K` summed over its products): the GFLOP/s numerator.
    package var flops: Double
    /// Runs one forward+backward step of the layer on preallocated inputs.
    package var step: () -> Void
    /// Runs exactly the step's GEMMs (shapes, transposes, betas) and nothing else.
    package var raw: () -> Void

    /// A workload from its parts.
    package init(name: String, batch: Int, flops: Double, step: @escaping () -> Void, raw: @escaping () -> Void) {
        self.name = name; self.batch = batch; self.flops = flops; self.step = step; self.raw = raw
    }
}

/// Runs a list of GEMM shapes through `cblas_sgemm` on buffers allocated once: the raw limit a
/// layer step is compared with.
package final class RawGemmRunner {
    private let shapes: [GemmShape]
    private var a: [[Float]], b: [[Float]], c: [[Float]]

    /// Allocates and fills operand buffers for `shapes` from a seeded generator.
    package init(shapes: [GemmShape], seed: UInt64) {
        self.shapes = shapes
        var rng = SeededGenerator(seed: seed)
        func fill(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextUnitFloat() - 0.5 } }
        a = shapes.map { fill($0.m * $0.k) }
        b = shapes.map { fill($0.k * $0.n) }
        c = shapes.map { fill($0.m * $0.n) }
    }

    /// Performs every GEMM once.
    package func run() {
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
package final class MLPBenchState {
    /// The layer under test.
    package var mlp: MLPLayer<Float>
    /// (batch × sizes[0]) the input.
    package let x: Tensor<Float>
    /// (batch × sizes.last) the output gradient.
    package let dout: Tensor<Float>
    /// (batch × sizes.last) the last output.
    package var out = Tensor<Float>.empty
    /// (batch × sizes[0]) the input gradient, accumulated.
    package var dx: Tensor<Float>

    /// An MLP of `sizes` with `activation`, random inputs of `batch` rows and a random output gradient.
    package init(sizes: [Int], activation: ActivationKind, batch: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        mlp = MLPLayer(sizes: sizes, activation: activation, generator: &rng)
        x = Tensor(gaussian: [batch, sizes[0]], std: 1, generator: &rng)
        dout = Tensor(gaussian: [batch, sizes[sizes.count - 1]], std: 1e-3, generator: &rng)
        dx = Tensor(zeros: [batch, sizes[0]])
    }

    /// One training step's layer work: zero gradients, forward, backward (including the input gradient).
    package func step() {
        mlp.zeroGradients()
        mlp.forward(&out, x, training: true)
        mlp.backward(&dx, dout)
    }

    /// The GEMMs `MLPLayer` performs per step: per layer a forward product, the weight gradient,
    /// and the input gradient (accumulating into `dx` for the first layer, overwriting scratch above it).
    package static func gemms(sizes: [Int], batch: Int) -> [GemmShape] {
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
