/// The production transport: nng REQ/REP over `tcp://` or `ipc://`.
public struct NNGTransport: Transport {
    /// Creates the transport (it holds no state; sockets live in clients and servers).
    public init() {}

    public func connect(to address: String, options: ClientOptions) throws -> any RequestClient {
        try NNGClient(address: address, options: options)
    }

    public func listen(on address: String, options: ServerOptions, handler: @escaping RequestHandler) throws -> any RequestServer {
        try NNGServer(address: address, options: options, handler: handler)
    }
}
