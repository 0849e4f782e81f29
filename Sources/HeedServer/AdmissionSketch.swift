import HeedCore

/// Approximate per-key counts in fixed memory, to admit a key only once it was seen N times.
///
/// A count-min sketch (Cormode & Muthukrishnan 2005) of `depth` rows of saturating 8-bit
/// counters with conservative update: a pull raises only the counters at the current
/// minimum, and the estimate is the minimum over rows. Estimates never undercount within
/// a window; hash collisions can only overcount, so a rare key may be admitted a little
/// early, never late. To forget old counts in bounded memory the sketch ages like
/// TinyLFU (Einziger, Friedman & Manes 2017): after `8 · width` counted pulls every
/// counter is halved, so a key must reach N within a recent window of pulls.
struct AdmissionSketch {
    /// Counters per row (a power of two).
    let width: Int
    /// Number of rows (independent hash functions).
    static let depth = 4
    private var counters: [UInt8]
    private var additions = 0
    private let resetAfter: Int

    /// A sketch with `width` counters per row (rounded up to a power of two ≥ 64).
    init(width: Int) {
        self.width = max(64, width).nextPowerOfTwo
        self.counters = [UInt8](repeating: 0, count: Self.depth * self.width)
        self.resetAfter = 8 * self.width
    }

    /// Memory held by the counters.
    var bytes: Int { counters.count }

    /// Counts one sighting of the key with this `hash` and returns its estimated count.
    mutating func increment(hash: UInt64) -> Int {
        // Double hashing (Kirsch & Mitzenmacher 2006) from a fresh mix, independent of the
        // bits the key index and stripe selection use.
        let h = KeyHash.mix64(hash ^ 0xAD31_7710_5EED_0001)
        let a = Int(truncatingIfNeeded: h & 0xFFFF_FFFF), b = Int(truncatingIfNeeded: h >> 32) | 1
        let mask = width - 1, width = width
        let estimate = counters.withUnsafeMutableBufferPointer { c -> Int in
            var low = Int(UInt8.max)
            for r in 0..<Self.depth {
                // Safe: r < depth and the column is masked into 0..<width.
                low = min(low, Int(c[r * width + ((a &+ r &* b) & mask)]))
            }
            guard low < Int(UInt8.max) else { return low }
            for r in 0..<Self.depth {
                let i = r * width + ((a &+ r &* b) & mask)
                if Int(c[i]) == low { c[i] = UInt8(low + 1) }
            }
            return low + 1
        }
        additions += 1
        if additions >= resetAfter { age() }
        return estimate
    }

    /// Halves every counter.
    mutating func age() {
        for i in counters.indices { counters[i] >>= 1 }
        additions /= 2
    }
}
