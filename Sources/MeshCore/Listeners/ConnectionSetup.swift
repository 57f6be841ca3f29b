import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

/// What a listener does with an accepted connection, read from the snapshot current at accept:
///
/// ```
/// plain HTTP port ─ h2c preface? ─ yes → HTTP/2 ─┐
///                                └ no  → HTTP/1.1 ┴→ HTTPProxyHandler (per request / per stream)
/// TCP port ─────────────────────────────────────────→ TCP proxy (route picked now)
/// TLS port ─ TLSInspector (SNI, ALPN) ─ passthrough server → SNI route → TCP proxy (bytes untouched)
///                                     └ terminating server → TLS ─ HTTPS: ALPN h2 / http/1.1
///                                                                 └ TLS:   TCP proxy (tcp routes)
/// ```
public struct ConnectionSetup: Sendable {
    /// HTTP request limits: Envoy's 60 KiB header list; at most 100 headers (Envoy's default).
    static let maxHeaderListSize = 60 * 1024
    static let maxHeaderCount = 100
    /// The same limits for HTTP/1.1 heads either way: requests from clients, responses from upstreams.
    static var http1DecoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = Self.maxHeaderListSize
        limits.maxHeaderFieldSize = Self.maxHeaderListSize
        limits.maxHeaderFieldCount = Self.maxHeaderCount
        return limits
    }
    /// HTTP/2: at most 100 concurrent streams per connection (Envoy's gateway default).
    static let maxConcurrentStreams = 100

    let holder: SnapshotHolder
    let pools: HTTPConnectionPools
    let identity: MeshIdentity?
    let metrics: MeshMetrics
    let log: MeshLog

    func accept(_ channel: Channel, port: Int) -> EventLoopFuture<Void> {
        let snapshot = self.holder.load()
        guard let plan = snapshot.listeners[port] else {
            // The port is being removed: refuse new work.
            return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: port))
        }
        if let inbound = plan.inbound {
            return channel.eventLoop.makeCompletedFuture {
                // A peer's close_notify (or FIN) may come before the app is connected: keep it a half-close.
                try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
                try channel.pipeline.syncOperations.addHandler(self.inboundSniffer(plan: plan, inbound: inbound, snapshot: snapshot))
            }
        }
        if let tls = plan.tls {
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(self.inspector(channel: channel, plan: plan, tls: tls, snapshot: snapshot))
            }
        }
        if plan.protocol.isHTTP {
            let environment = self.environment(port: port, scheme: "http", tlsServer: nil)
            let idleTimeout = TimeAmount(snapshot.settings.httpIdleTimeout)
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(self.plainHTTP(environment: environment, idleTimeout: idleTimeout))
            }
        }
        return TCPProxy.initialize(
            downstream: channel, plan: plan, snapshot: snapshot, identity: self.identity, metrics: self.metrics, log: self.log
        )
    }

    func environment(
        port: Int, scheme: String, tlsServer: TLSServerPlan?, isHTTP2: Bool = false, inbound: InboundHTTP? = nil
    ) -> HTTPProxyEnvironment {
        HTTPProxyEnvironment(
            holder: self.holder, pools: self.pools, metrics: self.metrics, log: self.log, port: port,
            scheme: scheme, tlsServer: tlsServer, isHTTP2: isHTTP2, inbound: inbound
        )
    }

    /// A plain HTTP connection: HTTP/2 with prior knowledge (`curl --http2-prior-knowledge`) starts
    /// with the connection preface; anything else is HTTP/1.1.
    func plainHTTP(environment: HTTPProxyEnvironment, idleTimeout: TimeAmount) -> some ChannelHandler {
        Self.priorKnowledgeSniffer(
            http1: { channel in try Self.configureHTTP1(channel: channel, environment: environment, idleTimeout: idleTimeout) },
            http2: { channel in
                var environment = environment
                environment.isHTTP2 = true
                try self.configureHTTP2(channel: channel, environment: environment)
            }
        )
    }

    /// The first stage of a plain-text HTTP server connection (the proxy's, and the sample app's):
    /// waits for the first bytes, installs `http2` when they are the HTTP/2 connection preface and
    /// `http1` otherwise, then hands every byte over and leaves.
    public static func priorKnowledgeSniffer(
        http1: @escaping (Channel) throws -> Void, http2: @escaping (Channel) throws -> Void
    ) -> some ChannelHandler & RemovableChannelHandler {
        let preface = Self.http2Preface
        return HandOverHandler { context, event in
            guard case .bytes(let bytes) = event else { return nil }
            let seen = bytes.prefix(preface.count)
            let isPrefix = seen.elementsEqual(preface.prefix(seen.count))
            guard !isPrefix || seen.count == preface.count else { return nil }  // undecided: read more
            let channel = context.channel
            return channel.eventLoop.makeCompletedFuture {
                try (isPrefix ? http2 : http1)(channel)
            }
        }
    }

    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    // MARK: - TLS

    private func inspector(channel: Channel, plan: ListenerPlan, tls: TLSListenerPlan, snapshot: Snapshot) -> HandOverHandler {
        let port = plan.port
        let log = self.log
        let metrics = self.metrics
        let peer = channel.remoteAddress?.description ?? "-"
        return TLSInspector.handler(
            decide: { context, hello in
                let channel = context.channel
                guard let server = tls.server(for: hello.serverName) else {
                    log.info("tls :\(port) \(peer): no server for SNI '\(hello.serverName ?? "")': unrecognized_name")
                    return Self.refuseWithAlert(context)
                }
                guard let sslContext = server.context else {
                    // Passthrough: route by SNI, bytes untouched; the inspector forwards the ClientHello.
                    guard let route = tls.passthroughRoute(serverName: hello.serverName, port: port) else {
                        log.info("tls :\(port) \(peer): no tls route for SNI '\(hello.serverName ?? "")': unrecognized_name")
                        return Self.refuseWithAlert(context)
                    }
                    return TCPProxy.proxy(
                        downstream: channel, port: port, routeName: route.name, destinations: route.destinations,
                        serverName: hello.serverName, snapshot: snapshot, identity: self.identity, metrics: metrics, log: log,
                        authorization: snapshot.role == .gateway ? ConnectionFacts(channel, port: port, serverName: hello.serverName) : nil
                    )
                }
                do {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                if !server.protocol.isHTTP {
                    // TLS terminated, then TCP routing.
                    let route = plan.tcp.first { $0.matches(port: port) }
                    return TCPProxy.proxy(
                        downstream: channel, port: port, routeName: route?.name, destinations: route?.destinations,
                        serverName: hello.serverName, snapshot: snapshot, identity: self.identity, metrics: metrics, log: log,
                        authorization: snapshot.role == .gateway ? ConnectionFacts(channel, port: port, serverName: hello.serverName) : nil
                    )
                }
                let idleTimeout = TimeAmount(snapshot.settings.httpIdleTimeout)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ApplicationProtocolNegotiationHandler { result, negotiated in
                            negotiated.eventLoop.makeCompletedFuture {
                                let isHTTP2: Bool
                                if case .negotiated("h2") = result { isHTTP2 = true } else { isHTTP2 = false }
                                var environment = self.environment(port: port, scheme: "https", tlsServer: server, isHTTP2: isHTTP2)
                                // MUTUAL and OPTIONAL_MUTUAL: the verified client certificate goes to the
                                // upstream in x-forwarded-client-cert (Istio's gateway default, SANITIZE_SET).
                                let client = (try? negotiated.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?
                                    .peerCertificate.map(PeerIdentity.init(certificate:))
                                environment.forwardedClientCert = client?.forwardedClientCert(by: nil)
                                environment.peerPrincipal = client?.principal
                                environment.serverName = hello.serverName
                                if isHTTP2 {
                                    try self.configureHTTP2(channel: negotiated, environment: environment)
                                } else {
                                    try Self.configureHTTP1(channel: negotiated, environment: environment, idleTimeout: idleTimeout)
                                }
                            }
                        }
                    )
                }
            },
            reject: { rejection, detail in
                metrics.addControl("meshgate_tls_inspector_rejected_total{port=\"\(port)\",reason=\"\(rejection.rawValue)\"}")
                log.info("tls :\(port) \(peer): closing: \(detail)")
            }
        )
    }

    static func refuseWithAlert(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let alert = TLSInspector.alert(TLSInspector.unrecognizedName, allocator: context.channel.allocator)
        context.writeAndFlush(NIOAny(alert), promise: nil)
        return context.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: 0))
    }

    // MARK: - HTTP

    static func configureHTTP1(channel: Channel, environment: HTTPProxyEnvironment, idleTimeout: TimeAmount) throws {
        var encoderConfiguration = HTTPResponseEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let sync = channel.pipeline.syncOperations
        let guardHandler = RequestHeadGuard(timeout: TimeAmount(environment.holder.load().settings.requestHeadersTimeout))
        try sync.addHandler(guardHandler)
        try sync.addHandler(
            ByteToMessageHandler(
                HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: Self.http1DecoderLimits)
            )
        )
        try sync.addHandler(HTTPResponseEncoder(configuration: encoderConfiguration))
        try sync.addHandler(HTTPProxyHandler(environment: environment, idleTimeout: idleTimeout, headGuard: guardHandler))
    }

    /// HTTP/2 with swift-nio-http2's denial-of-service limits on (rapid reset, CONTINUATION
    /// flood, control-frame floods: its defaults), 100 concurrent streams and a 60 KiB header list.
    /// Each stream is a child channel running the same proxy handler as HTTP/1.1.
    func configureHTTP2(channel: Channel, environment: HTTPProxyEnvironment) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: Self.maxHeaderListSize),
            HTTP2Setting(parameter: .initialWindowSize, value: 1 << 20),
        ]
        connection.targetWindowSize = 1 << 20
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = 1 << 20
        let drainer = HTTP2ConnectionDrainer()
        // The client's addresses, formatted once for all the connection's streams.
        var environment = environment
        environment.downstream = DownstreamAddresses(channel)
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream
        ) { [environment] streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                drainer.track(streamChannel)
                let sync = streamChannel.pipeline.syncOperations
                try sync.addHandler(TrailersOnlyCoalescer())
                try sync.addHandler(HTTP2RequestAuthority())
                try sync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try sync.addHandler(HTTPProxyHandler(environment: environment, idleTimeout: nil))
            }
        }
        try channel.pipeline.syncOperations.addHandler(drainer)
    }
}
