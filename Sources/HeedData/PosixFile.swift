import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A file descriptor opened for writing; every call retries EINTR and throws `HeedError(.io)` naming the path.
final class PosixFile {
    /// Path used in error messages.
    let path: String
    private var fd: Int32

    /// Creates (or truncates) `path` for writing.
    init(creating path: String) throws {
        self.path = path
        fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 { throw HeedError(.io, "\(path): cannot create file (\(String(cString: strerror(errno))))") }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Writes all of `bytes` at absolute `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            // Safe: the range [done, count) lies inside `bytes`.
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw HeedError(.io, "\(path): write of \(bytes.count) bytes at offset \(offset) failed (\(String(cString: strerror(errno))))")
            }
            done += n
        }
    }

    /// Writes an array's bytes at `offset`.
    func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Flushes the file to stable storage and closes it.
    func syncAndClose() throws {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw HeedError(.io, "\(path): fsync failed (\(String(cString: strerror(errno))))")
        }
        close(fd)
        fd = -1
    }
}

/// File-system helpers for atomic output directories.
enum FileOps {
    /// Whether `path` exists (any type).
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Whether `path` is a directory.
    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Size of a regular file in bytes.
    static func size(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw HeedError(.notFound, "\(path): cannot stat (\(String(cString: strerror(errno))))") }
        return Int(st.st_size)
    }

    /// Creates one directory.
    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 {
            throw HeedError(.io, "\(path): cannot create directory (\(String(cString: strerror(errno))))")
        }
    }

    /// Creates a directory and its missing parents.
    static func makeDirectories(_ path: String) throws {
        if isDirectory(path) || path.isEmpty { return }
        let parent = dirname(of: path)
        if parent != path { try makeDirectories(parent) }
        if !isDirectory(path) { try makeDirectory(path) }
    }

    /// Renames atomically within one file system.
    static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw HeedError(.io, "cannot rename \(from) to \(to) (\(String(cString: strerror(errno))))")
        }
    }

    /// Removes a file or a directory tree; errors are ignored (used for clean-up).
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if let d = opendir(path) {
                var names: [String] = []
                while let e = readdir(d) {
                    let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(d)
                for n in names { removeTree(path + "/" + n) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Names in a directory (not recursive), sorted.
    static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(d)
        return names.sorted()
    }

    /// The parent directory of `path` ("." for a bare name).
    static func dirname(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        if slash == p.startIndex { return "/" }
        return String(p[..<slash])
    }

    /// The last path component.
    static func basename(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return p }
        return String(p[p.index(after: slash)...])
    }
}
