import CZlib

/// CRC-32 (zlib polynomial) over byte buffers: used in shard files, checkpoints and manifests.
public struct CRC32: Sendable {
    /// The running checksum value.
    public private(set) var value: UInt32 = 0

    public init() {}

    /// Folds `bytes` into the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // Safe: zlib reads exactly `count` bytes from a valid buffer.
        value = UInt32(crc32_z(UInt(value), base.assumingMemoryBound(to: UInt8.self), bytes.count))
    }

    /// Folds the bytes of an array into the checksum.
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// Checksum of a whole buffer.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32(); c.update(bytes); return c.value
    }

    /// Checksum of an array's bytes.
    public static func of(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { of($0) } }
}
