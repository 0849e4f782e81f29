#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A file descriptor opened for reading at absolute offsets; every call retries EINTR and
/// throws a `HeedError` naming the path (`.io` for a failed read, `.corrupt` for a file
/// that ends before the bytes asked for).
package final class PosixReadFile {
    /// Path used in error messages.
    package let path: String
    /// Size in bytes when opened.
    package let size: Int
    private var fd: Int32

    /// Opens `path` read-only; `.notFound` if it cannot be opened.
    package init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw HeedError(.notFound, "\(path): cannot open (\(String(cString: strerror(errno))))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw HeedError(.io, "\(path): cannot stat (\(message))")
        }
        size = Int(st.st_size)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Fills all of `buffer` from absolute `offset`.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        guard offset >= 0, buffer.count <= size - offset else {
            throw HeedError(.corrupt, "\(path): byte offset \(offset): file ends inside a \(buffer.count)-byte read (\(size) bytes)")
        }
        var done = 0
        while done < buffer.count {
            // Safe: the range [done, count) lies inside `buffer`.
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw HeedError(.io, "\(path): read of \(buffer.count) bytes at offset \(offset) failed (\(String(cString: strerror(errno))))")
            }
            if n == 0 { throw HeedError(.corrupt, "\(path): byte offset \(offset + done): unexpected end of file") }
            done += n
        }
    }

    /// `count` bytes from absolute `offset`.
    package func read(count: Int, at offset: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        return bytes
    }

    /// Tells the kernel the file will be read sequentially (larger read-ahead); advisory.
    package func adviseSequential() {
        #if canImport(Glibc)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
        #endif
    }
}
