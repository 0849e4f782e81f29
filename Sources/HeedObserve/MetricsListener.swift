#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HeedCore

/// A tiny HTTP listener for Prometheus scrapes: `GET /metrics` answers `render()` as the
/// text exposition format; anything else gets 404. One thread accepts and answers
/// connections one at a time (a scrape every few seconds needs nothing more), so Heed
/// needs no HTTP stack for it.
public final class MetricsListener: @unchecked Sendable {
    /// The port actually bound (for port 0, the one the kernel chose).
    public let port: Int
    /// The address bound, e.g. 127.0.0.1.
    public let host: String
    private let fd: Int32
    private let render: @Sendable () -> String
    private let lock = NSLock()
    private var closed = false
    private var thread: Thread?

    /// Binds `host:port` (IPv4; port 0 = any free port) and starts answering.
    public init(host: String = "127.0.0.1", port: Int, render: @escaping @Sendable () -> String) throws {
        self.host = host
        self.render = render
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Self.error("socket()") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            Glibc.close(fd)
            throw HeedError(.config, "--metrics-address must be an IPv4 address, not \(host)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            // Safe: p points at a sockaddr_in of length len for the duration of the calls.
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound, listen(fd, 16) == 0 else {
            let e = Self.error("cannot listen for metrics on \(host):\(port)")
            Glibc.close(fd)
            throw e
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [self] in serve() }
        thread.name = "heed-metrics"
        self.thread = thread
        thread.start()
    }

    /// `http://host:port/metrics`.
    public var url: String { "http://\(host):\(port)/metrics" }

    /// Stops accepting; a scrape in progress finishes.
    public func close() {
        let first = lock.withLock { () -> Bool in defer { closed = true }; return !closed }
        guard first else { return }
        // shutdown wakes the thread blocked in accept(); it closes the socket on its way out.
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { close() }

    private var isClosed: Bool { lock.withLock { closed } }

    private func serve() {
        defer { Glibc.close(fd) }
        while !isClosed {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            answer(client)
            Glibc.close(client)
        }
    }

    /// Reads the request head (up to 8 KiB, 2 s) and writes one response.
    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192 {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            head += chunk[0..<n]
            if head.count >= 4 && head.suffix(4) == [13, 10, 13, 10] { break }
            if let text = String(bytes: head, encoding: .utf8), text.contains("\r\n\r\n") || text.contains("\n\n") { break }
        }
        let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        let path = parts.count >= 2 ? parts[1].split(separator: "?").first.map(String.init) ?? "" : ""
        let response: String
        if parts.first == "GET" && (path == "/metrics" || path == "/") {
            let body = render()
            response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        } else {
            let body = "not found: Heed serves GET /metrics\n"
            response = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
        var bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { b in
                // Safe: sent < b.count, so the pointer stays inside the buffer.
                Glibc.send(client, b.baseAddress! + sent, b.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }

    private static func error(_ what: String) -> HeedError {
        HeedError(.io, "\(what): \(String(cString: strerror(errno)))")
    }
}
