/// A 64-bit feature key: the feature group in the top 8 bits, a hash of the raw id below.
///
/// Layout: `key = (group << 56) | (hash64(rawID) & 0x00FF_FFFF_FFFF_FFFF)`.
/// No vocabulary is needed for huge id spaces. Two raw ids of one group collide only
/// if their 56-bit hashes are equal (for 10M ids the chance that any pair collides
/// is about n²/2⁵⁷ ≈ 7e-4); the parameter server itself never merges two keys.
public struct FeatureKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The packed key.
    public var rawValue: UInt64

    /// Number of bits below the group id.
    public static let hashBits: UInt64 = 56
    /// Mask for the hashed-id part.
    public static let hashMask: UInt64 = (1 << hashBits) - 1

    /// Wraps an already packed key.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Key for a numeric raw id in `group`.
    public init(group: UInt8, id: UInt64) {
        rawValue = (UInt64(group) << Self.hashBits) | (KeyHash.mix64(id) & Self.hashMask)
    }

    /// Key for a textual raw id in `group` (hashes the UTF-8 bytes).
    public init(group: UInt8, id: some StringProtocol) {
        rawValue = (UInt64(group) << Self.hashBits) | (KeyHash.hashBytes(id.utf8) & Self.hashMask)
    }

    /// The feature group id stored in the top 8 bits.
    public var group: UInt8 { UInt8(truncatingIfNeeded: rawValue >> Self.hashBits) }

    public static func < (a: FeatureKey, b: FeatureKey) -> Bool { a.rawValue < b.rawValue }

    public var description: String { "\(group):\(String(rawValue & Self.hashMask, radix: 16))" }
}

/// Deterministic 64-bit hashes used for feature keys, slots and row initialisers.
/// They must never change: checkpoints and prepared shards depend on them.
public enum KeyHash {
    /// SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective avalanche mix.
    @inlinable
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// FNV-1a over bytes followed by `mix64`, so short ids still spread over all bits.
    @inlinable
    public static func hashBytes<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return mix64(h)
    }
}
