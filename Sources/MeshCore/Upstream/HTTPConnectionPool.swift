import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// Upstream HTTP/1.1 keep-alive connections, one pool per event loop (as Envoy keeps per-worker
/// pools), so a downstream connection and its upstream always share a loop and nothing locks.
///
/// Idle connections are kept LIFO per `cluster|endpoint` (the most recently used is the warmest and
/// the least likely to have been closed by the server).
public final class HTTPConnectionPools: Sendable {
    /// Opens an upstream connection on the given loop; tests substitute in-memory channels.
    typealias Connector = @Sendable (_ eventLoop: EventLoop, _ key: String, _ endpoint: ClusterEndpoint, _ options: UpstreamConnectOptions)
        -> EventLoopFuture<UpstreamHTTPHandler>

    private let pools: [ObjectIdentifier: LoopPool]

    /// `identity`: this instance's mesh certificate, for endpoints reached with ISTIO_MUTUAL.
    public convenience init(group: EventLoopGroup, identity: MeshIdentity? = nil) {
        self.init(group: group, identity: identity, connector: LoopPool.connector(identity: identity))
    }

    init(group: EventLoopGroup, identity: MeshIdentity? = nil, connector: @escaping Connector) {
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = LoopPool(eventLoop: loop, identity: identity, connector: connector)
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

/// The upstream connections of one event loop: idle HTTP/1.1 connections, and the HTTP/2
/// connections whose streams requests share. Confined to that loop: every method asserts it.
final class LoopPool: @unchecked Sendable {
    /// At most this many idle connections per key; more are closed when released. Istio leaves
    /// Envoy's connection limits at their maximum, so pooled connections grow to the peak
    /// concurrency and live until their `idleTimeout`; this cap only bounds file descriptors. It
    /// must stay above the concurrency one loop sees: an HTTP/2 client's 100 streams per connection
    /// each hold an HTTP/1.1 upstream, and when a burst exceeded the cap the surplus was closed and
    /// reopened (h2load -c16 -m100, 1600 concurrent streams, on the HTTP/2 benchmark: a cap of 256
    /// gave 0.41× nginx, 1024 and 4096 both 0.45–0.79× per round).
    static let maxIdlePerKey = 4096
    /// How often idle connections past their cluster's `idleTimeout` are closed.
    static let sweepInterval = TimeAmount.seconds(5)

    let eventLoop: EventLoop
    private let identity: MeshIdentity?
    private let connector: HTTPConnectionPools.Connector
    private var idle: [String: [UpstreamHTTPHandler]] = [:]
    /// For clusters with connection limits: connections open or opening per key on this loop, and
    /// the requests waiting for one of them (`http1MaxPendingRequests`), oldest first.
    private var limited: [String: LimitedKey] = [:]
    private var http2: [String: [HTTP2UpstreamConnection]] = [:]
    private var sweeper: RepeatedTask?

    init(eventLoop: EventLoop, identity: MeshIdentity?, connector: @escaping HTTPConnectionPools.Connector) {
        self.eventLoop = eventLoop
        self.identity = identity
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

    /// Opens a new connection to `endpoint` on this loop. With a `breaker`, the caller has taken
    /// the connection's slot; it is given back when the connection closes (or fails to open), and
    /// the next request waiting for this key gets the chance to connect.
    func connect(
        key: String, endpoint: ClusterEndpoint, options: UpstreamConnectOptions, breaker: CircuitBreaker? = nil
    ) -> EventLoopFuture<UpstreamHTTPHandler> {
        self.eventLoop.assertInEventLoop()
        let connecting = self.connector(self.eventLoop, key, endpoint, options)
        guard let breaker else { return connecting }
        self.limited[key, default: LimitedKey()].open += 1
        connecting.assumeIsolated().whenComplete { result in
            guard case .success(let connection) = result, let channel = connection.context?.channel else {
                self.connectionClosed(key: key, breaker: breaker)
                return
            }
            channel.closeFuture.assumeIsolated().whenComplete { _ in self.connectionClosed(key: key, breaker: breaker) }
        }
        return connecting
    }

    /// Connections of a limited cluster open or opening on this loop for `key`.
    func openConnections(key: String) -> Int { self.limited[key]?.open ?? 0 }

    /// Queues a request for a connection of `key`: it resumes with an idle connection handed over,
    /// or with nil once a connection slot was taken for it (then it connects).
    func enqueue(_ request: PendingRequest, key: String) {
        self.eventLoop.assertInEventLoop()
        // Requests that went away leave here, so the queue stays within the live ones.
        self.limited[key, default: LimitedKey()].waiting.removeAll { $0.cancelled }
        self.limited[key, default: LimitedKey()].waiting.append(request)
    }

    private func nextWaiting(key: String) -> PendingRequest? {
        // Read first: a mutating access would copy-on-write the empty dictionary (three
        // allocations on every release of a connection, measured).
        guard self.limited[key]?.waiting.isEmpty == false else { return nil }
        while let request = self.limited[key]?.waiting.popFirst() {
            if !request.cancelled { return request }
        }
        return nil
    }

    private func connectionClosed(key: String, breaker: CircuitBreaker) {
        breaker.release(.connection)
        self.limited[key]?.open -= 1
        guard let request = self.nextWaiting(key: key) else {
            if self.limited[key].map({ $0.open == 0 && $0.waiting.isEmpty }) == true { self.limited[key] = nil }
            return
        }
        // A pool left with no connection opens one whatever the limit (as Envoy's does), so a
        // waiting request is never stranded by other loops' connections.
        if !breaker.tryAcquire(.connection) {
            guard self.openConnections(key: key) == 0 else {
                self.limited[key]?.waiting.prepend(request)
                return
            }
            breaker.acquire(.connection)
        }
        request.resume(nil)
    }

    /// The upstream pipeline: request encoder (framing left to the proxy), response decoder, handler.
    static func configureUpstream(_ channel: Channel, key: String) throws {
        var encoderConfiguration = HTTPRequestEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTPRequestEncoder(configuration: encoderConfiguration))
        // Bytes after a 101 belong to the upgraded protocol: forwarded to the tunnel when the decoder leaves.
        try sync.addHandler(
            ByteToMessageHandler(
                HTTPResponseDecoder(
                    leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop,
                    limitConfiguration: ConnectionSetup.http1DecoderLimits
                )
            )
        )
        try sync.addHandler(UpstreamHTTPHandler(key: key))
    }

    static func connector(identity: MeshIdentity?) -> HTTPConnectionPools.Connector {
        { eventLoop, key, endpoint, options in
            self.connect(eventLoop: eventLoop, endpoint: endpoint, options: options, identity: identity, carrying: .http1) { channel in
                try configureUpstream(channel, key: key)
            }
            .flatMapThrowing { channel in
                try channel.pipeline.syncOperations.handler(type: UpstreamHTTPHandler.self)
            }
        }
    }

    /// Connects over TCP, with TLS when the endpoint asks for it: then the channel is handed out
    /// only after the handshake and the server's identity check (and, for HTTP/2, `h2` agreed).
    static func connect(
        eventLoop: EventLoop, endpoint: ClusterEndpoint, options: UpstreamConnectOptions, identity: MeshIdentity?,
        carrying application: UpstreamTLS.Application, configure: @escaping @Sendable (Channel) throws -> Void
    ) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            .upstreamOptions(options)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try endpoint.tls?.secure(channel, identity: identity, carrying: application)
                    try configure(channel)
                }
            }
            .connect(to: endpoint.address)
            .flatMap { channel in
                UpstreamTLS.verified(channel).flatMapThrowing {
                    let sync = channel.pipeline.syncOperations
                    if let gate = try? sync.handler(type: UpstreamTLSGate.self) {
                        if application == .http2, !MeshIdentity.http2ALPN.contains(gate.negotiatedProtocol ?? "") {
                            channel.close(promise: nil)
                            throw UpstreamTLSError.noHTTP2(negotiated: gate.negotiatedProtocol)
                        }
                        sync.removeHandler(gate, promise: nil)
                    }
                    return channel
                }
            }
    }

    /// A stream for one request to `endpoint`: on an HTTP/2 connection of this loop with room for
    /// it (`fresh`: always a new connection), else on a new one; while that connects, later
    /// requests queue on it rather than opening more.
    func openStream(key: String, endpoint: ClusterEndpoint, cluster: Cluster, fresh: Bool) -> EventLoopFuture<UpstreamHTTPHandler> {
        self.eventLoop.assertInEventLoop()
        let scheme: HTTP2FramePayloadToHTTP1ClientCodec.HTTPProtocol = endpoint.tls == nil ? .http : .https
        if !fresh, let connection = self.http2[key]?.first(where: \.acceptsStreams) {
            return connection.openStream(scheme: scheme)
        }
        // The connection object exists before its channel: the channel initializer installs it.
        let ready = self.eventLoop.makePromise(of: Void.self)
        let connection = HTTP2UpstreamConnection(
            key: key, ready: ready.futureResult, streamLimit: cluster.maxConcurrentStreams,
            requestLimit: cluster.maxRequestsPerConnection, idleTimeout: cluster.upstreamIdleTimeout
        )
        self.startSweeping()
        let bound = NIOLoopBound(connection, eventLoop: self.eventLoop)
        let channel = Self.connect(
            eventLoop: self.eventLoop, endpoint: endpoint, options: cluster.connectOptions, identity: self.identity, carrying: .http2
        ) { channel in
            try bound.value.install(on: channel)
        }
        channel.map { _ in }.cascade(to: ready)
        self.http2[key, default: []].append(connection)
        channel.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.forget(connection) }
            case .failure:
                self.forget(connection)
            }
        }
        return connection.openStream(scheme: scheme)
    }

    private func forget(_ connection: HTTP2UpstreamConnection) {
        self.http2[connection.key]?.removeAll { $0 === connection }
        if self.http2[connection.key]?.isEmpty == true { self.http2[connection.key] = nil }
    }

    /// Returns a connection after a complete exchange; closed if the pool for its key is full.
    /// An HTTP/2 stream is not pooled: it closes by itself when both ends are done. An idle
    /// connection is closed once it has been idle for `idleTimeout` (the cluster's).
    func release(_ connection: UpstreamHTTPHandler, idleTimeout: TimeAmount) {
        self.eventLoop.assertInEventLoop()
        connection.owner = nil
        guard connection.isActive, !connection.isStream else { return }
        if connection.isReading {
            // The response ended inside a read: pooled once the read is done, if nothing followed it.
            connection.pendingRelease = (self, idleTimeout)
            return
        }
        if let request = self.nextWaiting(key: connection.key) {
            // A request waits for a connection of this key (its cluster is at its limit).
            request.resume(connection)
            return
        }
        if self.idle[connection.key, default: []].count >= Self.maxIdlePerKey {
            connection.close()
        } else {
            connection.idleDeadline = self.eventLoop.now + idleTimeout
            self.idle[connection.key, default: []].append(connection)
            self.startSweeping()
        }
    }

    /// Every `sweepInterval` while anything is pooled: closes HTTP/1.1 connections idle past their
    /// deadline, and HTTP/2 connections without a stream since theirs.
    private func startSweeping() {
        guard self.sweeper == nil else { return }
        self.sweeper = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { task in
            let now = self.eventLoop.now
            for key in Array(self.idle.keys) {
                self.idle[key]?.removeAll { connection in
                    guard connection.idleDeadline <= now || !connection.isActive else { return false }
                    connection.close()
                    return true
                }
                if self.idle[key]?.isEmpty == true { self.idle[key] = nil }
            }
            for connections in self.http2.values {
                for connection in connections { connection.closeIfIdle(now: now) }
            }
            if self.idle.isEmpty && self.http2.isEmpty {
                task.cancel()
                self.sweeper = nil
            }
        }
    }
}

/// A request waiting for an upstream connection of a cluster at its `maxConnections`.
final class PendingRequest {
    /// With an idle connection handed over, or nil: a connection slot was taken for it.
    let resume: (UpstreamHTTPHandler?) -> Void
    /// The request went away (the pool skips it).
    var cancelled = false

    init(resume: @escaping (UpstreamHTTPHandler?) -> Void) {
        self.resume = resume
    }
}

/// One key's connections and waiting requests, on one loop.
struct LimitedKey {
    var open = 0
    var waiting = CircularBuffer<PendingRequest>()
}
