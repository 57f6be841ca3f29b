import MeshConfig
import NIOCore
import NIOHTTP1

/// What every HTTP connection of a listener shares: the snapshot, the pools, the metrics, the log.
public struct HTTPProxyEnvironment: Sendable {
    public let holder: SnapshotHolder
    public let pools: HTTPConnectionPools
    public let metrics: MeshMetrics
    public let log: MeshLog
    public let port: Int
    /// `http` or `https`: the downstream scheme (`x-forwarded-proto`).
    public let scheme: String
    /// On a TLS connection, the server its SNI chose: requests for hosts it does not serve get 421.
    public let tlsServer: TLSServerPlan?
    /// Requests arrive as HTTP/2 streams (one handler per stream).
    public var isHTTP2: Bool
    /// A sidecar's inbound connection: its route to the app and what the app is told of the peer.
    public let inbound: InboundHTTP?
    /// `x-forwarded-client-cert` for every request of the connection: the client certificate a
    /// sidecar's mTLS or a gateway's MUTUAL server verified. nil: none (and any such header a
    /// client sent is removed, so nobody can claim an identity without a certificate).
    var forwardedClientCert: String?
    /// The downstream connection's addresses, when formatted once per connection (HTTP/2: shared by
    /// its streams); nil: each handler formats them from its channel.
    var downstream: DownstreamAddresses?
    /// The peer's identity (`cluster.local/ns/NS/sa/SA`) its certificate proved: a sidecar's mTLS
    /// peer, a MUTUAL gateway server's client. nil: none.
    var peerPrincipal: String?
    /// The TLS server name the client sent, for `connection.sni`.
    var serverName: String?

    /// Whether this connection's requests are checked against AuthorizationPolicies: every request
    /// at a gateway, the inbound ones at a sidecar (a sidecar's outbound calls are its caller's, and
    /// the destination's sidecar checks them).
    func enforcesAuthorization(_ snapshot: Snapshot) -> Bool {
        snapshot.role == .gateway || self.inbound != nil
    }

    public init(
        holder: SnapshotHolder, pools: HTTPConnectionPools, metrics: MeshMetrics, log: MeshLog, port: Int,
        scheme: String = "http", tlsServer: TLSServerPlan? = nil, isHTTP2: Bool = false, inbound: InboundHTTP? = nil
    ) {
        self.inbound = inbound
        self.holder = holder
        self.pools = pools
        self.metrics = metrics
        self.log = log
        self.port = port
        self.scheme = scheme
        self.tlsServer = tlsServer
        self.isHTTP2 = isHTTP2
    }
}

/// What an inbound (sidecar) HTTP connection adds to the proxying: the route to the local app, and
/// who called.
public struct InboundHTTP: Sendable {
    let routes: HTTPRouteTable
    /// The app port the connection is for (what AuthorizationPolicy `ports` match).
    let appPort: Int
    /// Who called, for the destination reporter's metric labels.
    let peer: InboundPeer
}

/// A downstream connection's addresses as the proxy writes them: the client's IP for
/// `x-forwarded-for`, and `ip:port` of both ends for the access log.
struct DownstreamAddresses: Sendable {
    let clientIP: String
    let remote: String?
    let local: String?

    init(_ channel: Channel) {
        self.clientIP = channel.remoteAddress?.ipAddress ?? "unknown"
        self.remote = channel.remoteAddress.flatMap(HTTPProxyHandler.hostPort)
        self.local = channel.localAddress.flatMap(HTTPProxyHandler.hostPort)
    }
}

/// Sent down a connection's pipeline when the process starts draining: idle keep-alive connections
/// close now, busy ones after their current response (with `connection: close`).
public struct DrainEvent: Sendable {
    public init() {}
}

/// The HTTP/1.1 connection manager and router for one downstream connection.
///
/// Per request: route with the snapshot current now (first matching VirtualService rule), pick a
/// weighted cluster and an endpoint, lease a keep-alive upstream connection from this event loop's
/// pool (or connect one), and stream the request and response through with backpressure:
///
/// - Request body: downstream reads are held while the upstream is connecting or not writable.
/// - Response body: upstream reads are held while the downstream is not writable.
/// - Pipelined requests wait in a short queue until the current response is done.
/// - An upstream answering before the request body is done gets the rest dropped and both
///   connections closed after the response, so no half-sent body ever reaches a reused connection.
/// - Every local reply names its cause (``LocalReply``).
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let environment: HTTPProxyEnvironment
    /// nil for HTTP/2 streams (the connection, not the stream, is what idles).
    let idleTimeout: TimeAmount?
    var lastActivity = NIODeadline.now()
    var idleTimer: Scheduled<Void>?
    var context: ChannelHandlerContext?
    var exchange: HTTPExchange?
    /// Pipelining, refusals after pipelined requests, draining.
    var downstream = DownstreamSequencer()
    var pendingRead = false
    var closed = false
    /// The client's IP for `x-forwarded-for`, formatted once per connection.
    lazy var addresses: DownstreamAddresses? = self.environment.downstream ?? self.context.map { DownstreamAddresses($0.channel) }
    var clientIP: String { self.addresses?.clientIP ?? "unknown" }
    /// Who is on the other end, for AuthorizationPolicy: made once per connection, when a policy applies.
    lazy var connectionFacts = ConnectionFacts(
        principal: self.environment.peerPrincipal,
        sourceIP: IPAddressParser.bytes(self.clientIP),
        destinationIP: self.context?.channel.localAddress?.ipAddress.flatMap(IPAddressParser.bytes),
        port: self.environment.inbound?.appPort ?? self.environment.port,
        serverName: self.environment.serverName
    )

    /// HTTP/1.1 only: told when the decoder produced a head and when a request ended.
    let headGuard: RequestHeadGuard?

    init(environment: HTTPProxyEnvironment, idleTimeout: TimeAmount?, headGuard: RequestHeadGuard? = nil) {
        self.environment = environment
        self.idleTimeout = idleTimeout
        self.headGuard = headGuard
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.lastActivity = context.eventLoop.now
        if let idleTimeout = self.idleTimeout {
            self.scheduleIdleCheck(in: idleTimeout)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = nil
        self.context = nil
    }

    // MARK: - Idle timeout

    /// A keep-alive connection with no exchange for `idleTimeout` is closed. Activity is one clock
    /// read per read burst; the timer runs once per timeout, not per request.
    func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context = self.context else { return }
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.checkIdle()
        }
    }

    func checkIdle() {
        guard !self.closed, let idleTimeout = self.idleTimeout else { return }
        guard let now = self.context?.eventLoop.now else { return }
        let idleFor = now - self.lastActivity
        if self.exchange == nil && idleFor >= idleTimeout {
            self.environment.log.debug("http :\(self.environment.port): idle for \(idleTimeout), closing")
            self.closeDownstream()
        } else {
            self.scheduleIdleCheck(in: self.exchange == nil ? idleTimeout - idleFor : idleTimeout)
        }
    }

    // MARK: - Downstream events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        guard !self.closed else { return }
        switch part {
        case .head: self.headGuard?.headReceived()
        case .end: self.headGuard?.requestEnded()
        case .body: break
        }
        // A pipelined request waits for the current response.
        guard self.downstream.admit(part, during: self.sequencing) else { return }
        self.handleRequestPart(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.lastActivity = context.eventLoop.now
        if case .attached(let upstream) = self.exchange?.upstream {
            upstream.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.idleTimer?.cancel()
        if let exchange = self.exchange {
            if case .attached(let upstream) = exchange.upstream {
                // The client went away mid-exchange: the upstream connection cannot be reused.
                upstream.close()
            }
            if !exchange.responseComplete {
                exchange.record.responseFlags = "DC"
                exchange.record.responseCodeDetails = "downstream_remote_disconnect"
            }
            self.report(exchange)
        }
        self.exchange = nil
        self.downstream.closed()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .attached(let upstream) = self.exchange?.upstream {
            upstream.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let reply: LocalReply
        switch error as? HTTPParserError {
        case .headerOverflow: reply = .headersTooLarge
        case .some(let parserError): reply = .badRequest("\(parserError)")
        case .none where error is RequestHeadGuard.HeadersTimeout:
            // A head still incomplete; any exchange ahead of it is answered first.
            reply = .requestHeadersTimeout
        case .none:
            // I/O errors (reset by peer, …): nothing to answer.
            context.close(promise: nil)
            return
        }
        self.environment.log.debug("http :\(self.environment.port) \(context.channel.remoteAddress?.description ?? "-"): \(error)")
        // Complete requests ahead of the malformed one (a pipeline) are served first; the 400
        // follows them, then the connection closes. Nothing more is read.
        guard self.downstream.refuse(reply, during: self.sequencing) else { return }
        if let exchange = self.exchange {
            if case .attached(let upstream) = exchange.upstream {
                upstream.close()
            }
            exchange.upstream = .finished
            if exchange.responseStarted {
                context.close(promise: nil)
                return
            }
        }
        self.sendLocalReply(reply, forceClose: true)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            if self.downstream.drain(during: self.sequencing) {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if self.shouldHoldReads {
            self.pendingRead = true
        } else {
            context.read()
        }
    }

    /// The exchange in progress, as the sequencer sees it.
    var sequencing: DownstreamSequencer.Exchange {
        guard let exchange = self.exchange else { return .none }
        return exchange.requestComplete ? .requestComplete : .readingRequest
    }

    var shouldHoldReads: Bool {
        if self.downstream.holdsReads { return true }
        // An upgrade waiting for its 101: the parser stopped at it, so anything read now would only
        // pile up until the tunnel opens. Reading resumes in the tunnel (with its backpressure).
        if self.exchange?.upgrade != nil { return true }
        guard let exchange = self.exchange, !exchange.requestComplete, !exchange.discardRequestBody else { return false }
        switch exchange.upstream {
        case .connecting, .waiting: return true
        case .attached(let upstream): return !upstream.isWritable
        case .none, .finished: return false
        }
    }

    func releaseHeldRead() {
        if self.pendingRead, !self.shouldHoldReads, let context = self.context {
            self.pendingRead = false
            context.read()
        }
    }
}
