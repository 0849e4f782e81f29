import CKernels
import Dispatch

/// STREAM-style memory bandwidth (McCalpin 1995), measured in-process so storage
/// benchmarks can report their throughput as a fraction of what the machine moves.
public struct MemoryBandwidth: Hashable, Sendable {
    /// Best "copy" rate `a[i] = b[i]`, counting 8 bytes per element (read + write).
    public var copyBytesPerSecond: Double
    /// Best "triad" rate `a[i] = b[i] + s·c[i]`, counting 12 bytes per element.
    public var triadBytesPerSecond: Double

    /// Measures copy and triad over three arrays of `bytesPerArray` each (make them far
    /// larger than the last-level cache), split over `threads` threads, best of `repeats`.
    /// Arrays use huge pages like the tables do, so both sides see the same TLB behaviour.
    public static func measure(bytesPerArray: Int = 256 << 20, threads: Int = 1, repeats: Int = 5) -> MemoryBandwidth {
        precondition(bytesPerArray >= 1 << 20 && threads >= 1 && repeats >= 1, "MemoryBandwidth: arrays >= 1 MiB, threads and repeats >= 1")
        let n = bytesPerArray / 4
        let bytes = n * 4
        let raws = (0..<3).map { _ in PageMemory.map(bytes: bytes, hugePages: true) }
        defer { for r in raws { PageMemory.unmap(r, bytes: bytes, hugePages: true) } }
        let a = raws[0].bindMemory(to: Float.self, capacity: n)
        let b = raws[1].bindMemory(to: Float.self, capacity: n)
        let c = raws[2].bindMemory(to: Float.self, capacity: n)
        // Touch every page first so the timed loops measure bandwidth, not page faults.
        a.initialize(repeating: 1, count: n)
        b.initialize(repeating: 2, count: n)
        c.initialize(repeating: 0.5, count: n)
        let box = Pointers(a: a, b: b, c: c)

        func run(_ kernel: (Int, Int) -> Void) -> Double {
            let start = ContinuousClock.now
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let lo = n * t / threads, hi = n * (t + 1) / threads
                kernel(lo, hi - lo)
            }
            return seconds(ContinuousClock.now - start)
        }
        var bestCopy = Double.infinity, bestTriad = Double.infinity
        for _ in 0..<repeats {
            // Safe: every slice [lo, lo + count) lies inside the n-element arrays.
            bestCopy = min(bestCopy, run { lo, count in heed_stream_copy(box.a + lo, box.b + lo, Int64(count)) })
            bestTriad = min(bestTriad, run { lo, count in heed_stream_triad(box.a + lo, box.b + lo, box.c + lo, 3, Int64(count)) })
        }
        return MemoryBandwidth(copyBytesPerSecond: Double(8 * n) / bestCopy, triadBytesPerSecond: Double(12 * n) / bestTriad)
    }

    /// The three arrays, shared read-only between the measuring threads.
    private struct Pointers: @unchecked Sendable {
        var a: UnsafeMutablePointer<Float>
        var b: UnsafeMutablePointer<Float>
        var c: UnsafeMutablePointer<Float>
    }
}

/// A duration in seconds as a Double.
func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) * 1e-18
}
