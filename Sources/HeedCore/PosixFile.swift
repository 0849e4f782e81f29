#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A file descriptor opened for writing; every call retries EINTR and throws `HeedError(.io)` naming the path.
package final class PosixFile {
    /// Path used in error messages.
    package let path: String
    private var fd: Int32

    /// Creates (or truncates) `path` for writing.
    package init(creating path: String) throws {
        self.path = path
        fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 { throw HeedError(.io, "\(path): cannot create file (\(String(cString: strerror(errno))))") }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Writes all of `bytes` at absolute `offset`.
    package func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
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
    package func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Flushes the file to stable storage and closes it.
    package func syncAndClose() throws {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw HeedError(.io, "\(path): fsync failed (\(String(cString: strerror(errno))))")
        }
        close(fd)
        fd = -1
    }
}

/// File-system helpers for atomic output files and directories (prepared data, saved models).
package enum FileOps {
    /// Whether `path` exists (any type).
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Whether `path` is a directory.
    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Size of a regular file in bytes.
    package static func size(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw HeedError(.notFound, "\(path): cannot stat (\(String(cString: strerror(errno))))") }
        return Int(st.st_size)
    }

    /// Creates one directory.
    package static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 {
            throw HeedError(.io, "\(path): cannot create directory (\(String(cString: strerror(errno))))")
        }
    }

    /// Creates a directory and its missing parents.
    package static func makeDirectories(_ path: String) throws {
        if isDirectory(path) || path.isEmpty { return }
        let parent = dirname(of: path)
        if parent != path { try makeDirectories(parent) }
        if !isDirectory(path) { try makeDirectory(path) }
    }

    /// Renames atomically within one file system.
    package static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw HeedError(.io, "cannot rename \(from) to \(to) (\(String(cString: strerror(errno))))")
        }
    }

    /// Writes `bytes` to `path` so that a reader sees either the old file or the whole new
    /// one: a temporary name beside it, fsync, rename, directory fsync. Nothing is left
    /// behind on failure.
    package static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        do {
            let file = try PosixFile(creating: temporary)
            try file.write(bytes, at: 0)
            try file.syncAndClose()
            try rename(temporary, path)
        } catch {
            removeTree(temporary)
            throw error
        }
        try syncDirectory(dirname(of: path))
    }

    /// Flushes a directory's entries (a rename into it) to stable storage.
    package static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw HeedError(.io, "\(path): cannot open directory (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw HeedError(.io, "\(path): fsync of the directory failed (\(String(cString: strerror(errno))))")
        }
    }

    /// Removes a file or a directory tree; errors are ignored (used for clean-up).
    package static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for n in list(path) { removeTree(path + "/" + n) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Names in a directory (not recursive), sorted.
    package static func list(_ path: String) -> [String] {
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
    package static func dirname(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        if slash == p.startIndex { return "/" }
        return String(p[..<slash])
    }

    /// The last path component.
    package static func basename(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return p }
        return String(p[p.index(after: slash)...])
    }
}
