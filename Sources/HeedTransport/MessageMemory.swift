import CNNG

/// How the process allocates message buffers.
///
/// nng allocates every received message and every request with `malloc`. glibc serves
/// blocks above its mmap threshold (128 KiB at first) with a fresh `mmap`, and trims
/// freed memory at the top of a heap back to the kernel, so a server receiving 256 KiB
/// to 1 MiB pushes page-faults every page of every message (~100k faults/s measured with
/// `perf stat` on `heed bench cluster --sections server`). Keeping freed blocks in the
/// heap instead roughly doubled raw nng and Heed push throughput at 1 MiB. The price: each
/// malloc arena may keep up to `trimThreshold` of freed memory resident.
public enum MessageMemory {
    /// Blocks up to this size come from the heap (glibc's largest allowed threshold).
    public static let mmapThreshold: Int32 = 32 << 20
    /// Free memory kept at the top of a heap before it is returned to the kernel.
    public static let trimThreshold: Int32 = 256 << 20

    /// Makes glibc keep freed message buffers for reuse; call once at process start,
    /// before threads exist. Returns false where the allocator refused (or is not glibc).
    @discardableResult
    public static func retainFreedBuffers() -> Bool {
        #if canImport(Glibc)
        return mallopt(M_MMAP_THRESHOLD, mmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, trimThreshold) == 1
        #else
        return false
        #endif
    }
}
