import NIOCore
import NIOHTTP1
import NIOPosix

/// Upstream HTTP/1.1 keep-alive connections, one pool per event loop (as Envoy keeps per-worker
/// pools), so a downstream connection and its upstream always share a loop and nothing locks.
///
/// Idle connections are kept LIFO per `cluster|endpoint` (the most recently used is the warmest and
/// the least likely to have been closed by the server).
public final class HTTPConnectionPools: Sendable {
    /// Opens an upstream connection on the given loop; tests substitute in-memory channels.
    typealias Connector = @Sendable (_ eventLoop: EventLoop, _ key: String, _ endpoint: ClusterEndpoint, _ timeout: TimeAmount)
        -> EventLoopFuture<UpstreamHTTPHandler>

    private let pools: [ObjectIdentifier: LoopPool]

    /// `identity`: this instance's mesh certificate, for endpoints reached with ISTIO_MUTUAL.
    public convenience init(group: EventLoopGroup, identity: MeshIdentity? = nil) {
        self.init(group: group, connector: LoopPool.connector(identity: identity))
    }

    init(group: EventLoopGroup, connector: @escaping Connector) {
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = LoopPool(eventLoop: loop, connector: connector)
        }
        self.pools = pools
    }

    /// The pool of `eventLoop`; call only on that loop.
    func pool(for eventLoop: EventLoop) -> LoopPool {
        guard let pool = self.pools[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("event loop \(eventLoop) is not part of the proxy's group")
        }
        return pool
    }
}

/// The idle connections of one event loop. Confined to that loop: every method asserts it.
final class LoopPool: @unchecked Sendable {
    /// At most this many idle connections per key; more are closed when released.
    static let maxIdlePerKey = 256

    let eventLoop: EventLoop
    private let connector: HTTPConnectionPools.Connector
    private var idle: [String: [UpstreamHTTPHandler]] = [:]

    init(eventLoop: EventLoop, connector: @escaping HTTPConnectionPools.Connector) {
        self.eventLoop = eventLoop
        self.connector = connector
    }

    /// An idle, still-open connection for `key`, or nil. Mutates the idle list in place (no copy).
    func takeIdle(key: String) -> UpstreamHTTPHandler? {
        self.eventLoop.assertInEventLoop()
        while let connection = self.idle[key]?.popLast() {
            if connection.isActive { return connection }
        }
        return nil
    }

    /// Opens a new connection to `endpoint` on this loop.
    func connect(key: String, endpoint: ClusterEndpoint, timeout: TimeAmount) -> EventLoopFuture<UpstreamHTTPHandler> {
        self.eventLoop.assertInEventLoop()
        return self.connector(self.eventLoop, key, endpoint, timeout)
    }

    /// The upstream pipeline: request encoder (framing left to the proxy), response decoder, handler.
    static func configureUpstream(_ channel: Channel, key: String) throws {
        var encoderConfiguration = HTTPRequestEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTPRequestEncoder(configuration: encoderConfiguration))
        try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
        try sync.addHandler(UpstreamHTTPHandler(key: key))
    }

    /// Connects over TCP, with TLS when the endpoint asks for it: then the connection is handed
    /// out only after the handshake and the server's identity check.
    static func connector(identity: MeshIdentity?) -> HTTPConnectionPools.Connector {
        { eventLoop, key, endpoint, timeout in
            ClientBootstrap(group: eventLoop)
                .connectTimeout(timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try endpoint.tls?.secure(channel, identity: identity, carriesHTTP: true)
                        try configureUpstream(channel, key: key)
                    }
                }
                .connect(to: endpoint.address)
                .flatMap { channel in
                    UpstreamTLS.verified(channel).flatMapThrowing {
                        let sync = channel.pipeline.syncOperations
                        if let gate = try? sync.handler(type: UpstreamTLSGate.self) { sync.removeHandler(gate, promise: nil) }
                        return channel
                    }
                }
                .flatMapThrowing { channel in
                    try channel.pipeline.syncOperations.handler(type: UpstreamHTTPHandler.self)
                }
        }
    }

    /// Returns a connection after a complete exchange; closed if the pool for its key is full.
    func release(_ connection: UpstreamHTTPHandler) {
        self.eventLoop.assertInEventLoop()
        connection.owner = nil
        guard connection.isActive else { return }
        if self.idle[connection.key, default: []].count >= Self.maxIdlePerKey {
            connection.close()
        } else {
            self.idle[connection.key, default: []].append(connection)
        }
    }
}
