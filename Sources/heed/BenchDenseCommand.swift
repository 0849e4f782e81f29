import ArgumentParser
import HeedBench
import HeedCore
import HeedLayers

extension ActivationKind: ExpressibleByArgument {}

/// `heed bench dense`: forward+backward GFLOP/s of layers vs raw cblas_sgemm on the same shapes.
///
/// For every case and batch size it times one layer step (forward + backward, GEMM flops
/// `2·M·N·K` per product, three products per dense layer) and, interleaved with it, the same
/// GEMM shapes run alone through `cblas_sgemm`; the ratio is the share of BLAS speed the layer
/// keeps after its non-GEMM work (bias, activations, bookkeeping).
struct BenchDenseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dense",
        abstract: "Layer forward+backward GFLOP/s vs raw cblas_sgemm on the same GEMM shapes, as a ratio.")

    @Option(name: .long, parsing: .upToNextOption, help: "Batch sizes to measure.")
    var batches: [Int] = [256, 1024, 2048, 4096]

    @Option(name: .long, help: "MLP widths, input first (a DIN-sized top MLP by default).")
    var sizes: String = "200,200,80,1"

    @Option(name: .long, parsing: .upToNextOption, help: "Activations between the MLP's layers, one case each.")
    var activations: [ActivationKind] = [.relu, .prelu, .dice]

    @Option(name: .long, help: "Timed repetitions per measurement; medians are reported.")
    var repeats: Int = 7

    @Option(name: .long, help: "Approximate seconds per timed repetition.")
    var seconds: Double = 0.15

    /// The ratio the issue asks for at batch ≥ 1024.
    static let targetRatio = 0.70

    func validate() throws {
        guard !batches.isEmpty, batches.allSatisfy({ $0 > 0 }) else { throw ValidationError("--batches must be positive") }
        guard parsedSizes != nil else { throw ValidationError("--sizes must be at least two positive integers separated by commas, e.g. 200,200,80,1") }
        guard repeats >= 1, seconds > 0 else { throw ValidationError("--repeats must be >= 1 and --seconds > 0") }
    }

    var parsedSizes: [Int]? {
        let parts = sizes.split(separator: ",").map { Int($0.filter { !$0.isWhitespace }) }
        guard parts.count >= 2, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }

    func run() throws {
        // One BLAS thread: Heed scales across worker processes, each with one thread
        // (PLATFORM.md: two OpenBLAS threads are erratic here, median 0.95x of one), and a
        // single-thread ratio measures the layer code rather than thread scheduling.
        setBLASThreads(1)
        let widths = parsedSizes!
        print("heed bench dense: forward+backward GEMM GFLOP/s of layers vs raw cblas_sgemm on the same shapes")
        print("(1 BLAS thread; GEMM flops 2·M·N·K, 3 GEMMs per dense layer; median of \(repeats) interleaved repetitions)")
        print(pad("case", 28) + pad("batch", 7, right: true) + pad("MFLOP/step", 12, right: true) + pad("layer ms", 10, right: true)
              + pad("layer GF/s", 12, right: true) + pad("sgemm GF/s", 12, right: true) + pad("ratio", 8, right: true))
        var worstAtTarget = Double.infinity
        for batch in batches {
            for benchCase in Self.cases(sizes: widths, activations: activations, batch: batch) {
                let r = measure(benchCase)
                print(pad(benchCase.name, 28) + pad("\(batch)", 7, right: true) + pad(fmt(benchCase.flops / 1e6, 1), 12, right: true)
                      + pad(fmt(r.layerSeconds * 1e3, 3), 10, right: true) + pad(fmt(r.layerGFLOPs, 1), 12, right: true)
                      + pad(fmt(r.rawGFLOPs, 1), 12, right: true) + pad(fmt(r.ratio, 3), 8, right: true))
                if batch >= 1024 { worstAtTarget = min(worstAtTarget, r.ratio) }
            }
        }
        if worstAtTarget.isFinite {
            let verdict = worstAtTarget >= Self.targetRatio ? "met" : "NOT met"
            print("lowest ratio at batch >= 1024: \(fmt(worstAtTarget, 3)) (target >= \(fmt(Self.targetRatio, 2)): \(verdict))")
        }
    }

    // MARK: - Bench cases (hook for other layers)

    /// Every workload measured at one batch size.
    ///
    /// HOOK: add a workload by appending a `DenseBenchCase` (name, batch, GEMM flops per step,
    /// a closure running one layer step, and a closure replaying exactly that step's GEMMs).
    /// Self-attention cases use L = 50, D = 64, 2 heads (a SASRec-sized block); their batch
    /// is sequences per step.
    static func cases(sizes: [Int], activations: [ActivationKind], batch: Int) -> [DenseBenchCase] {
        var list: [DenseBenchCase] = []
        for kind in activations {
            let state = MLPBenchState(sizes: sizes, activation: kind, batch: batch, seed: 42)
            let gemms = MLPBenchState.gemms(sizes: sizes, batch: batch)
            let raw = RawGemmRunner(shapes: gemms, seed: 7)
            list.append(DenseBenchCase(name: "mlp \(sizes.map(String.init).joined(separator: "-")) \(kind.rawValue)",
                                       batch: batch, flops: gemms.reduce(0) { $0 + $1.flops },
                                       step: state.step, raw: raw.run))
        }
        for component in [SelfAttentionBench.Component.attention, .block] {
            let bench = SelfAttentionBench(component: component, batch: batch)
            list.append(DenseBenchCase(name: "self-attention \(component.rawValue) L50 D64 H2", batch: batch,
                                       flops: bench.flops, step: bench.step, raw: bench.runRawGemms))
        }
        return list
    }

    /// Medians of interleaved layer and raw-sgemm timings for one case.
    func measure(_ benchCase: DenseBenchCase) -> (layerSeconds: Double, layerGFLOPs: Double, rawGFLOPs: Double, ratio: Double) {
        // Warm up both (first-touch page faults, BLAS buffers) and size the repetitions.
        benchCase.step(); benchCase.raw()
        let once = max(time(1, benchCase.step), 1e-6)
        let steps = max(2, Int(seconds / once))
        var layerTimes: [Double] = [], rawTimes: [Double] = [], ratios: [Double] = []
        for _ in 0..<repeats {
            let t = time(steps, benchCase.step) / Double(steps)
            let r = time(steps, benchCase.raw) / Double(steps)
            layerTimes.append(t); rawTimes.append(r); ratios.append(r / t)
        }
        let t = median(layerTimes), r = median(rawTimes)
        return (t, benchCase.flops / t / 1e9, benchCase.flops / r / 1e9, median(ratios))
    }

    func time(_ n: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<n { body() }
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// `value` with `digits` decimals.
func fmt(_ value: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (value * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else if digits > 0 {
        s += "." + String(repeating: "0", count: digits)
    }
    return s
}

/// Pads `s` to `width` columns, on the left when `right` (numbers) else on the right.
func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}
