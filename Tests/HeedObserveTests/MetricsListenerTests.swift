import Foundation
import Testing
@testable import HeedObserve

struct MetricsListenerTests {
    /// One HTTP/1.1 GET over a plain socket; returns the status line and the body.
    static func get(port: Int, path: String) throws -> (status: String, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return (text, "") }
        return (text[..<split.lowerBound].components(separatedBy: "\r\n").first ?? "", String(text[split.upperBound...]))
    }

    @Test func servesTheRenderedTextAtSlashMetricsAndNothingElse() throws {
        let listener = try MetricsListener(port: 0) { "# TYPE up gauge\nup 1\n" }
        defer { listener.close() }
        #expect(listener.port > 0)
        let ok = try Self.get(port: listener.port, path: "/metrics")
        #expect(ok.status == "HTTP/1.1 200 OK")
        #expect(ok.body == "# TYPE up gauge\nup 1\n")
        let missing = try Self.get(port: listener.port, path: "/secrets")
        #expect(missing.status.hasPrefix("HTTP/1.1 404"))
    }

    @Test func aClosedListenerRefusesConnections() async throws {
        let listener = try MetricsListener(port: 0) { "" }
        let port = listener.port
        listener.close()
        // The accept thread closes the socket on its way out; wait for that, with a deadline.
        let deadline = ContinuousClock.now + .seconds(10)
        var refused = false
        while !refused && ContinuousClock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            refused = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } != 0
            close(fd)
            if !refused { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(refused)
    }
}
