#if canImport(Glibc)
import Glibc
#endif

/// Zero-filled anonymous memory straight from `mmap`, for the big storage arrays.
///
/// Large regions are 2 MiB-aligned and advised `MADV_HUGEPAGE`: random row updates on a
/// table of gigabytes miss the TLB on nearly every row with 4 KiB pages, and transparent
/// huge pages roughly halve that cost (PLATFORM.md). The machine runs THP in `madvise`
/// mode, so without the advice the kernel would never use them.
package enum PageMemory {
    /// Size of a transparent huge page on x86-64.
    package static let hugePageSize = 2 << 20
    /// Size of a base page.
    package static let pageSize = 4096

    /// Bytes actually mapped for a request of `bytes`: whole huge pages when advised, else whole pages.
    package static func mappedSize(_ bytes: Int, hugePages: Bool) -> Int {
        let unit = hugePages ? hugePageSize : pageSize
        return (bytes + unit - 1) / unit * unit
    }

    /// Maps `mappedSize(bytes, hugePages:)` zero bytes. Running out of address space or
    /// memory is fatal here, as it is for any Swift allocation; tables bound their growth
    /// with `EmbeddingTableConfig.maxRows` so no peer can cause it.
    package static func map(bytes: Int, hugePages: Bool) -> UnsafeMutableRawPointer {
        let size = mappedSize(bytes, hugePages: hugePages)
        let slack = hugePages ? hugePageSize : 0
        let raw = mmap(nil, size + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            preconditionFailure("mmap of \(size) bytes failed: \(String(cString: strerror(errno)))")
        }
        guard hugePages else { return raw }
        // Trim the over-allocation so the region starts on a huge-page boundary.
        let start = (Int(bitPattern: raw) + hugePageSize - 1) & ~(hugePageSize - 1)
        let head = start - Int(bitPattern: raw)
        if head > 0 { munmap(raw, head) }
        let tail = slack - head
        let aligned = UnsafeMutableRawPointer(bitPattern: start)!
        if tail > 0 { munmap(aligned + size, tail) }
        // Advice is best effort: without THP the memory still works, only slower.
        _ = madvise(aligned, size, MADV_HUGEPAGE)
        return aligned
    }

    /// Returns a region obtained from `map(bytes:hugePages:)` with the same arguments.
    package static func unmap(_ p: UnsafeMutableRawPointer, bytes: Int, hugePages: Bool) {
        munmap(p, mappedSize(bytes, hugePages: hugePages))
    }
}
