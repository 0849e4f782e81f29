import CKernels
import HeedCore
import HeedServer
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

    /// The bandwidth of the access pattern a sparse update has: rows of `rowBytes` read
    /// and written back at uniformly random positions of a `bytesPerArray` array (huge
    /// pages, rows prefetched towards L2 `far` updates early and into L1 `ahead` updates
    /// early, as the table's push does), split over `threads` threads, best of
    /// `repeats`; counts 2 · rowBytes per update. Random rows cannot use the hardware
    /// streaming prefetchers that triad does, so this, not triad, is what one core can
    /// reach for row updates; it bounds sparse Adam from above.
    /// - Returns: bytes read + written per second.
    public static func randomRows(rowBytes: Int, bytesPerArray: Int = 2 << 30, updates: Int = 2_000_000,
                                  threads: Int = 1, ahead: Int = 4, far: Int = 16, repeats: Int = 3, seed: UInt64 = 1) -> Double {
        precondition(rowBytes >= 4 && rowBytes % 4 == 0 && bytesPerArray >= 16 * rowBytes && threads >= 1 && repeats >= 1,
                     "MemoryBandwidth.randomRows: rows of whole floats, an array of 16 rows or more, threads and repeats >= 1")
        let rowFloats = rowBytes / 4
        let rowCount = min(bytesPerArray / rowBytes, Int(UInt32.max))
        let bytes = rowCount * rowBytes
        let raw = PageMemory.map(bytes: bytes, hugePages: true)
        defer { PageMemory.unmap(raw, bytes: bytes, hugePages: true) }
        let base = raw.bindMemory(to: Float.self, capacity: rowCount * rowFloats)
        base.initialize(repeating: 0, count: rowCount * rowFloats)
        var rng = SeededGenerator(seed: seed)
        let rows = (0..<updates).map { _ in UInt32(rng.next() % UInt64(rowCount)) }
        let box = RowPointer(base: base)
        var best = Double.infinity
        rows.withUnsafeBufferPointer { r in
            let indices = IndexPointer(rows: r.baseAddress!)
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let lo = updates * t / threads, hi = updates * (t + 1) / threads
                    // Safe: every index is < rowCount and [lo, hi) lies inside `rows`. Threads may
                    // hit the same row; the lost increments do not matter for a bandwidth figure.
                    heed_random_rows_add(box.base, Int64(rowFloats), indices.rows + lo, Int64(hi - lo), Int64(ahead), Int64(far))
                }
                best = min(best, seconds(ContinuousClock.now - start))
            }
        }
        return Double(2 * rowBytes * updates) / best
    }

    private struct RowPointer: @unchecked Sendable { var base: UnsafeMutablePointer<Float> }
    private struct IndexPointer: @unchecked Sendable { var rows: UnsafePointer<UInt32> }

    /// The three arrays, shared read-only between the measuring threads.
    private struct Pointers: @unchecked Sendable {
        var a: UnsafeMutablePointer<Float>
        var b: UnsafeMutablePointer<Float>
        var c: UnsafeMutablePointer<Float>
    }
}

/// A duration in seconds as a Double.
private func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) * 1e-18
}
