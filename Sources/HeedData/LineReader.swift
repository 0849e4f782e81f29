import CZlib
import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Streams the lines of a plain or gzip-compressed text file, one buffer at a time.
///
/// Lines are handed out as views into an internal buffer (no allocation per line);
/// a trailing `\r` is removed. Truncated or corrupt gzip data and empty files are
/// errors that name the file and the byte offset.
public struct LineReader {
    /// The path as given by the caller; used in every error message.
    public let path: String
    /// Bytes requested per `gzread` call.
    public var chunkSize: Int

    /// A reader for `path`; nothing is opened until `forEachLine` runs.
    public init(path: String, chunkSize: Int = 1 << 20) {
        self.path = path
        self.chunkSize = chunkSize
    }

    /// Calls `body(line, lineNumber)` for each line (1-based numbers); `body` returns false to stop.
    ///
    /// - Parameter expected: what the file should contain, for the empty-file error.
    /// - Returns: the number of decompressed bytes read.
    @discardableResult
    public func forEachLine(expected: String, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Bool) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw HeedError(.notFound, "\(path): cannot open input file (\(String(cString: strerror(errno))))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw HeedError(.invalidInput, "\(path): is a directory, expected a file with \(expected)")
        }
        guard let gz = gzopen(path, "rb") else {
            throw HeedError(.io, "\(path): cannot open input file (\(String(cString: strerror(errno))))")
        }
        defer { gzclose_r(gz) }
        gzbuffer(gz, 1 << 18)

        var buffer = [UInt8](repeating: 0, count: max(chunkSize, 4096) * 2)
        var filled = 0          // bytes of `buffer` holding data
        var total = 0           // decompressed bytes so far
        var lineNumber = 0
        var stopped = false
        var atEOF = false
        let meter = PrepareProgress.active
        var reported = 0        // compressed bytes already reported to the meter
        while !stopped {
            if buffer.count - filled < chunkSize { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            let want = UInt32(min(buffer.count - filled, Int(Int32.max)))
            let n = buffer.withUnsafeMutableBytes { raw -> Int32 in
                // Safe: `filled + want <= buffer.count`.
                gzread(gz, raw.baseAddress! + filled, want)
            }
            if n < 0 { throw gzipError(gz, decompressed: total, lines: lineNumber) }
            if n == 0 {
                // zlib reports a stream cut short as end of data plus a stored error.
                var code: Int32 = 0
                _ = gzerror(gz, &code)
                if code != Z_OK { throw gzipError(gz, decompressed: total, lines: lineNumber) }
                atEOF = true
            }
            filled += Int(n)
            total += Int(n)
            if let meter {
                // Compressed bytes for a gzip file; a plain file is read as is.
                let consumed = gzdirect(gz) != 0 ? total : Int(gzoffset(gz))
                meter.read(bytes: consumed - reported)
                reported = consumed
            }
            if total == 0 && atEOF {
                throw HeedError(.invalidInput, "\(path): file is empty (expected \(expected))")
            }
            var consumed = 0
            try buffer.withUnsafeBufferPointer { buf in
                let base = buf.baseAddress!
                while consumed < filled {
                    // Safe: memchr scans [consumed, filled) inside `buffer`.
                    let hit = memchr(base + consumed, 0x0A, filled - consumed)
                    let end: Int
                    if let hit {
                        end = UnsafeRawPointer(hit).assumingMemoryBound(to: UInt8.self) - base
                    } else if atEOF {
                        end = filled
                    } else {
                        break
                    }
                    var lineEnd = end
                    if lineEnd > consumed, buf[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                    lineNumber += 1
                    let line = UnsafeBufferPointer(start: base + consumed, count: lineEnd - consumed)
                    consumed = end + 1
                    if !(try body(line, lineNumber)) { stopped = true; return }
                }
            }
            if atEOF { break }
            if consumed > 0 {
                let rest = filled - min(consumed, filled)
                if rest > 0 {
                    buffer.withUnsafeMutableBytes { raw in
                        // Safe: both ranges lie inside `buffer`; memmove handles overlap.
                        _ = memmove(raw.baseAddress!, raw.baseAddress! + consumed, rest)
                    }
                }
                filled = rest
            }
        }
        return total
    }

    /// Builds the error for a failed `gzread`, naming the compressed byte offset.
    private func gzipError(_ gz: gzFile, decompressed: Int, lines: Int) -> HeedError {
        var code: Int32 = 0
        let text = gzerror(gz, &code).map { String(cString: $0) } ?? "unknown zlib error"
        let offset = gzoffset(gz)
        let what = code == Z_BUF_ERROR ? "truncated gzip stream" : "corrupt gzip stream"
        return HeedError(.corrupt, "\(path): \(what) at compressed byte offset \(offset) after \(decompressed) decompressed bytes (\(lines) complete lines); zlib says: \(text)")
    }
}
