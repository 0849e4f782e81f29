import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when released.
///
/// The mapping's base address is the one pointer this type keeps: it owns the
/// mapping for its lifetime and hands the bytes out only inside `withBytes`.
final class MappedFile: @unchecked Sendable {
    // Sendable: the mapping is read-only and never changes after init.
    /// Path used in error messages.
    let path: String
    /// File size in bytes.
    let count: Int
    private let base: UnsafeRawPointer?

    /// Maps `path` read-only.
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw HeedError(.notFound, "\(path): cannot open shard (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw HeedError(.io, "\(path): cannot stat shard (\(String(cString: strerror(errno))))")
        }
        count = Int(st.st_size)
        if count == 0 { base = nil; return }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw HeedError(.io, "\(path): mmap of \(count) bytes failed (\(String(cString: strerror(errno))))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Runs `body` with the mapped bytes.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}
