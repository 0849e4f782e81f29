import CBLAS
import HeedCore
import HeedLayers

/// Forward+backward throughput of self-attention in Float against raw `cblas_sgemm` on the same
/// GEMM shapes, for `heed bench dense`.
///
/// One step is a training forward and a full backward (input and every parameter gradient) of
/// either the multi-head attention layer alone or a whole SASRec block (layer norms, attention,
/// dropout, feed-forward, residuals). The raw reference replays exactly the GEMM calls of a step
/// (same shapes, transposes, strides, betas and buffer sizes) with nothing between them, so
/// `ratio = raw time / layer time` is the share of BLAS speed the layer keeps after its
/// non-GEMM work (softmax, masks, norms, copies).
public final class SelfAttentionBench {
    /// What one step runs.
    public enum Component: String, CaseIterable, Sendable {
        /// `SelfAttentionLayer` (Q/K/V/O projections, scores, softmax, context).
        case attention
        /// `SelfAttentionBlock` (pre-norm SASRec block with FFN width D and dropout 0.2).
        case block
    }

    /// One GEMM shape of a step and how many times the step performs it.
    public struct Gemm: Sendable, Equatable {
        /// Whether A is stored transposed.
        public var transA: Bool
        /// Whether B is stored transposed.
        public var transB: Bool
        /// Rows of op(A) and C.
        public var m: Int
        /// Columns of op(B) and C.
        public var n: Int
        /// Inner dimension.
        public var k: Int
        /// 0 when the step overwrites C, 1 when it accumulates into it.
        public var beta: Float
        /// How many times per step (B·H for the per-head score products, 1 otherwise).
        public var count: Int
        /// Floating-point operations of all `count` products, `2·m·n·k·count`.
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(count) }
    }

    /// Timings of one measurement (medians over interleaved repetitions).
    public struct Result: Sendable {
        /// GEMM flops of one step.
        public var flops: Double
        /// Seconds per layer step.
        public var layerSeconds: Double
        /// Seconds per raw replay of the step's GEMMs.
        public var rawSeconds: Double
        /// GEMM flops per second of the layer step, in GFLOP/s.
        public var layerGFLOPs: Double { flops / layerSeconds / 1e9 }
        /// GFLOP/s of `cblas_sgemm` alone on the same shapes.
        public var rawGFLOPs: Double { flops / rawSeconds / 1e9 }
        /// Median of per-repetition `raw / layer` time ratios.
        public var ratio: Double
    }

    /// The measured component.
    public let component: Component
    /// Sequences per step B.
    public let batch: Int
    /// Sequence length L.
    public let length: Int
    /// Model width D.
    public let dim: Int
    /// Heads H.
    public let heads: Int
    /// Every distinct GEMM of one step, in call order (per-head products once, with their count).
    public let gemms: [Gemm]
    /// GEMM flops of one step.
    public var flops: Double { gemms.reduce(0) { $0 + $1.flops } }

    private var attention: SelfAttentionLayer<Float>
    private var block: SelfAttentionBlock<Float>
    private let x: Tensor<Float>
    private let mask: Tensor<Float>
    private let dout: Tensor<Float>
    private var out = Tensor<Float>.empty
    private var dx: Tensor<Float>
    /// Operand buffers of the raw replay, one arena addressed by name.
    private var arena: [Float] = []
    private var offsets: [String: Int] = [:]

    /// Sets up a step on random inputs (all positions real) drawn from `seed`.
    public init(component: Component, batch: Int, length: Int = 50, dim: Int = 64, heads: Int = 2, seed: UInt64 = 42) {
        precondition(batch > 0 && length > 0 && heads > 0 && dim % heads == 0, "bench: bad shape")
        self.component = component
        self.batch = batch; self.length = length; self.dim = dim; self.heads = heads
        var rng = SeededGenerator(seed: seed)
        attention = SelfAttentionLayer(dim: dim, heads: heads, causal: true, generator: &rng)
        block = SelfAttentionBlock(dim: dim, heads: heads, hidden: dim, causal: true, dropout: 0.2, generator: &rng)
        x = Tensor(gaussian: [batch, length, dim], std: 1, generator: &rng)
        mask = Tensor(shape: [batch, length], data: [Float](repeating: 1, count: batch * length))
        dout = Tensor(gaussian: [batch, length, dim], std: 1e-3, generator: &rng)
        dx = Tensor(zeros: [batch, length, dim])
        gemms = Self.gemmShapes(component: component, batch: batch, length: length, dim: dim, heads: heads)
        let n = batch * length * dim
        func add(_ name: String, _ count: Int, _ value: () -> Float) {
            offsets[name] = arena.count
            for _ in 0..<count { arena.append(value()) }
        }
        for name in ["x", "q", "k", "v", "ctx", "out", "dout", "dctx", "dq", "dk", "dv", "dx", "h", "dh", "f"] {
            add(name, n) { rng.nextUnitFloat() - 0.5 }
        }
        add("p", batch * heads * length * length) { rng.nextUnitFloat() / Float(length) }
        add("ds", length * length) { 0 }
        for name in ["wq", "wk", "wv", "wo", "w1", "w2", "dw"] { add(name, dim * dim) { rng.nextUnitFloat() - 0.5 } }
    }

    /// One training step of the component: zero gradients, forward, backward.
    public func step() {
        switch component {
        case .attention:
            attention.zeroGradients()
            attention.forward(&out, x, mask: mask)
            attention.backward(&dx, dout)
        case .block:
            block.zeroGradients()
            block.forward(&out, x, mask: mask, training: true)
            block.backward(&dx, dout)
        }
    }

    /// Replays the GEMM calls of one step through `cblas_sgemm` with nothing in between.
    public func runRawGemms() {
        let b = batch, l = length, d = dim, dh = dim / heads, rows = batch * length
        func g(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int,
               _ a: UnsafePointer<Float>, _ lda: Int, _ bp: UnsafePointer<Float>, _ ldb: Int,
               _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), bp, Int32(ldb), beta, c, Int32(ldc))
        }
        let offsets = self.offsets
        arena.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            let p = offsets.mapValues { base + $0 }
            // Safe: every buffer was allocated in init with the size its role needs
            // ((B·L × D) activations, (D × D) weights, (B·H × L × L) weights, (L × L) scratch).
            for (src, w, dst) in [("x", "wq", "q"), ("x", "wk", "k"), ("x", "wv", "v")] {
                g(false, false, rows, d, d, p[src]!, d, p[w]!, d, 1, p[dst]!, d)
            }
            for s in 0..<b { for h in 0..<heads {
                let off = s * l * d + h * dh, probs = p["p"]! + (s * heads + h) * l * l
                g(false, true, l, l, dh, p["q"]! + off, d, p["k"]! + off, d, 0, probs, l)
                g(false, false, l, dh, l, probs, l, p["v"]! + off, d, 0, p["ctx"]! + off, d)
            } }
            g(false, false, rows, d, d, p["ctx"]!, d, p["wo"]!, d, 1, p["out"]!, d)
            if component == .block {
                g(false, false, rows, d, d, p["out"]!, d, p["w1"]!, d, 1, p["h"]!, d)
                g(false, false, rows, d, d, p["h"]!, d, p["w2"]!, d, 1, p["f"]!, d)
                g(true, false, d, d, rows, p["h"]!, d, p["dout"]!, d, 1, p["dw"]!, d)
                g(false, true, rows, d, d, p["dout"]!, d, p["w2"]!, d, 1, p["dh"]!, d)
                g(true, false, d, d, rows, p["out"]!, d, p["dh"]!, d, 1, p["dw"]!, d)
                g(false, true, rows, d, d, p["dh"]!, d, p["w1"]!, d, 1, p["dx"]!, d)
            }
            g(true, false, d, d, rows, p["ctx"]!, d, p["dout"]!, d, 1, p["dw"]!, d)
            g(false, true, rows, d, d, p["dout"]!, d, p["wo"]!, d, 0, p["dctx"]!, d)
            for s in 0..<b { for h in 0..<heads {
                let off = s * l * d + h * dh, probs = p["p"]! + (s * heads + h) * l * l
                g(false, true, l, l, dh, p["dctx"]! + off, d, p["v"]! + off, d, 0, p["ds"]!, l)
                g(true, false, l, dh, l, probs, l, p["dctx"]! + off, d, 0, p["dv"]! + off, d)
                g(false, false, l, dh, l, p["ds"]!, l, p["k"]! + off, d, 0, p["dq"]! + off, d)
                g(true, false, l, dh, l, p["ds"]!, l, p["q"]! + off, d, 0, p["dk"]! + off, d)
            } }
            for (grad, w) in [("dq", "wq"), ("dk", "wk"), ("dv", "wv")] {
                g(true, false, d, d, rows, p["x"]!, d, p[grad]!, d, 1, p["dw"]!, d)
                g(false, true, rows, d, d, p[grad]!, d, p[w]!, d, 1, p["dx"]!, d)
            }
        }
    }

    /// Times `step` and `runRawGemms`, interleaved, and returns the medians.
    ///
    /// - Parameters:
    ///   - repeats: timed repetitions of each.
    ///   - seconds: approximate duration of one repetition (it runs as many steps as fit).
    public func measure(repeats: Int = 7, seconds: Double = 0.15) -> Result {
        Self.measure(flops: flops, repeats: repeats, seconds: seconds, layer: step, raw: runRawGemms)
    }

    /// The timing loop of `measure` for any pair of bodies (tests time bodies of known length).
    /// `now` reads the clock in seconds (tests pass a clock their bodies advance).
    static func measure(flops: Double, repeats: Int, seconds: Double, layer: () -> Void, raw: () -> Void,
                        now: () -> Double = SelfAttentionBench.monotonicSeconds) -> Result {
        layer(); raw()
        let once = max(time(1, layer, now), 1e-6)
        let steps = max(2, Int(seconds / once))
        var layerTimes: [Double] = [], rawTimes: [Double] = [], ratios: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t = time(steps, layer, now) / Double(steps)
            let r = time(steps, raw, now) / Double(steps)
            layerTimes.append(t); rawTimes.append(r); ratios.append(r / t)
        }
        return Result(flops: flops, layerSeconds: median(layerTimes), rawSeconds: median(rawTimes), ratio: median(ratios))
    }

    /// (B × L × D) the output of the last `step`.
    var lastOutput: Tensor<Float> { out }
    /// (B × L × D) the input gradient accumulated by `step` since `init`.
    var accumulatedInputGradient: Tensor<Float> { dx }

    /// The GEMMs one step performs, in call order, as the kernels issue them.
    public static func gemmShapes(component: Component, batch: Int, length: Int, dim: Int, heads: Int) -> [Gemm] {
        let rows = batch * length, l = length, d = dim, dh = dim / heads, perHead = batch * heads
        func gemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ beta: Float, _ count: Int = 1) -> Gemm {
            Gemm(transA: ta, transB: tb, m: m, n: n, k: k, beta: beta, count: count)
        }
        var list: [Gemm] = [gemm(false, false, rows, d, d, 1, 3),                        // Q, K, V projections
                            gemm(false, true, l, l, dh, 0, perHead),                       // scores
                            gemm(false, false, l, dh, l, 0, perHead),                      // context
                            gemm(false, false, rows, d, d, 1)]                             // output projection
        if component == .block {
            list += [gemm(false, false, rows, d, d, 1), gemm(false, false, rows, d, d, 1), // FFN forward
                     gemm(true, false, d, d, rows, 1), gemm(false, true, rows, d, d, 1),   // FFN second layer backward
                     gemm(true, false, d, d, rows, 1), gemm(false, true, rows, d, d, 1)]   // FFN first layer backward
        }
        list += [gemm(true, false, d, d, rows, 1),                                         // dWo
                 gemm(false, true, rows, d, d, 0),                                         // dContext
                 gemm(false, true, l, l, dh, 0, perHead),                                  // dP
                 gemm(true, false, l, dh, l, 0, perHead),                                  // dV
                 gemm(false, false, l, dh, l, 0, perHead),                                 // dQ
                 gemm(true, false, l, dh, l, 0, perHead),                                  // dK
                 gemm(true, false, d, d, rows, 1, 3),                                      // dWq, dWk, dWv
                 gemm(false, true, rows, d, d, 1, 3)]                                      // dx from Q, K, V
        return list
    }

    private static func time(_ n: Int, _ body: () -> Void, _ now: () -> Double) -> Double {
        let start = now()
        for _ in 0..<n { body() }
        return now() - start
    }

    /// Seconds on the monotonic clock.
    static func monotonicSeconds() -> Double {
        let d = ContinuousClock.now - Self.epoch
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    private static let epoch = ContinuousClock.now

    private static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
