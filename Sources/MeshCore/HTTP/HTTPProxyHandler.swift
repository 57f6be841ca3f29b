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

    // MARK: - Requests

    func handleRequestPart(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            self.startExchange(head)
        case .body(let buffer):
            self.decideFraming(hasBody: true)
            self.exchange?.record.bytesReceived += buffer.readableBytes
            self.forwardRequestPart(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            self.decideFraming(hasBody: false)
            self.exchange?.requestComplete = true
            self.startTimeout()
            self.forwardRequestPart(.end(trailers))
            if let exchange = self.exchange { self.sendMirrors(exchange) }
            self.finishIfDone()
        }
    }

    /// An HTTP/2 request without `content-length` is chunked upstream if DATA follows its head, and
    /// has no body if the stream ended with the head: never body bytes without framing (which an
    /// HTTP/1.1 upstream would read as the next request).
    func decideFraming(hasBody: Bool) {
        guard let exchange = self.exchange, exchange.bodyFraming == .decidedByFirstPart else { return }
        exchange.bodyFraming = hasBody ? .chunked : .none
        if hasBody {
            exchange.target?.head.headers.add(name: "transfer-encoding", value: "chunked")
            exchange.deferredHead?.headers.add(name: "transfer-encoding", value: "chunked")
        }
        if let head = exchange.deferredHead, case .attached(let upstream) = exchange.upstream {
            exchange.deferredHead = nil
            upstream.send(.head(head), flush: false)
        }
    }

    func forwardRequestPart(_ part: HTTPClientRequestPart) {
        guard let exchange = self.exchange, !exchange.discardRequestBody else { return }
        Self.keepForReplay(part, exchange)
        switch exchange.upstream {
        case .connecting, .waiting:
            exchange.pendingRequestParts.append(part)
        case .attached(let upstream):
            let isEnd: Bool
            if case .end = part { isEnd = true } else { isEnd = false }
            if !isEnd && !exchange.bodySent {
                exchange.bodySent = true
            }
            upstream.send(part, flush: isEnd)
        case .none, .finished:
            break
        }
    }

    func startExchange(_ head: HTTPRequestHead) {
        // An HTTP/2 stream carries one request; the connection's life is not this handler's.
        let keepAlive = self.environment.isHTTP2 || (head.isKeepAlive && !self.downstream.draining)
        let exchange = HTTPExchange(
            requestHead: head, keepAlive: keepAlive, isHead: head.method == .HEAD, started: self.context?.eventLoop.now ?? .now()
        )
        self.exchange = exchange
        exchange.record.startMicros = WallClock.nowMicros()
        exchange.record.method = head.method.rawValue
        exchange.record.path = head.uri
        exchange.record.protocolName = self.environment.isHTTP2 ? "HTTP/2" : head.version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1"
        var summary = HopByHop.RequestSummary()
        var upstreamHeaders = HopByHop.upstreamRequestHeaders(
            head.headers, clientIP: self.clientIP, scheme: self.environment.scheme,
            trustedPeer: self.environment.inbound?.peer.principal != nil, consumePeerMetadata: self.environment.inbound != nil,
            summary: &summary
        )
        exchange.record.authority = summary.host
        exchange.record.userAgent = summary.userAgent
        exchange.record.xForwardedFor = summary.forwardedFor
        exchange.record.requestID = summary.requestID
        exchange.record.downstreamRemoteAddress = self.addresses?.remote
        exchange.record.downstreamLocalAddress = self.addresses?.local

        let requestTarget: RequestHeadCheck.Target
        switch RequestHeadCheck.check(head, summary: summary, isHTTP2: self.environment.isHTTP2) {
        case .success(let target): requestTarget = target
        case .failure(let refusal):
            self.sendLocalReply(refusal, forceClose: true)
            return
        }
        if summary.upgrade != nil && !self.environment.isHTTP2 {
            // The request parser stops at an upgrade: this connection serves no further request,
            // whatever the answer (a local reply too: bytes after the head would only pile up).
            exchange.keepAlive = false
        }
        exchange.bodyFraming = Framing.request(summary.framing, isHTTP2: self.environment.isHTTP2)
        exchange.bodyFraming.apply(to: &upstreamHeaders)
        var routedHead = head
        if let authority = requestTarget.authority {
            // Absolute-form: its authority is the request's host (RFC 9112 §3.2.2), upstream too.
            summary.host = authority
            exchange.record.authority = authority
            upstreamHeaders.replaceOrAdd(name: "host", value: authority)
        }
        routedHead.uri = requestTarget.path
        let snapshot = self.environment.holder.load()
        exchange.telemetry = ExchangeTelemetry(snapshot.telemetry)
        guard let plan = snapshot.listeners[self.environment.port] else {
            self.sendLocalReply(.noRoute)
            return
        }
        let request = FilterRequest(
            head: head, target: routedHead.uri, routing: RouteRequest(head: routedHead, host: summary.host ?? "", port: self.environment.port),
            summary: summary, snapshot: snapshot, httpsRedirectHosts: plan.httpsRedirectHosts,
            connection: snapshot.authorization == nil ? nil : self.connectionFacts
        )
        self.requestHeaders(request, plan: plan, upstreamHeaders: upstreamHeaders, from: 0)
    }

    /// The request-headers phase from filter `start` on: a filter may answer, or hold the request
    /// while its check runs off the loop (a new JWT) and resume after it; then the route is picked.
    func requestHeaders(_ request: FilterRequest, plan: ListenerPlan, upstreamHeaders: HTTPHeaders, from start: Int) {
        guard let exchange = self.exchange else { return }
        let (verdict, next) = HTTPFilterChain.requestHeaders(from: start, request, exchange, self.environment)
        switch verdict {
        case .continue:
            guard let route = (self.environment.inbound?.routes ?? plan.http).route(request.routing) else {
                self.environment.log.debug("http :\(self.environment.port): no route for \(request.routing.authority)\(request.routing.path) (NR)")
                self.sendLocalReply(.noRoute)
                return
            }
            exchange.record.routeName = route.name
            self.routeSelected(route, request, upstreamHeaders: upstreamHeaders, from: 0)
        case .reply(let reply):
            self.sendLocalReply(reply)
        case .delay(_, let then):
            // (No request-headers filter delays; a delay here would answer at once.)
            self.sendLocalReply(then ?? .noRoute)
        case .suspend(let work):
            guard let eventLoop = self.context?.eventLoop else { return }
            exchange.upstream = .waiting
            work(eventLoop) { verdict in
                guard self.exchange === exchange, case .waiting = exchange.upstream else { return }
                exchange.upstream = .none
                switch verdict {
                case .continue: self.requestHeaders(request, plan: plan, upstreamHeaders: upstreamHeaders, from: next)
                case .reply(let reply): self.sendLocalReply(reply)
                case .delay, .suspend: self.sendLocalReply(.noRoute)
                }
            }
        }
    }

    /// The route-selected phase from filter `start` on: a filter may answer, or hold the request (an
    /// injected delay) and resume the phase after it; past the last one the router takes over.
    func routeSelected(_ route: CompiledHTTPRoute, _ request: FilterRequest, upstreamHeaders: HTTPHeaders, from start: Int) {
        guard let exchange = self.exchange else { return }
        let (verdict, next) = HTTPFilterChain.routeSelected(from: start, route, request, exchange, self.environment)
        switch verdict {
        case .continue:
            self.route(route, request, upstreamHeaders: upstreamHeaders)
        case .reply(let reply):
            self.sendLocalReply(reply)
        case .suspend:
            // (No route-selected filter suspends.)
            self.sendLocalReply(.noRoute)
        case .delay(let delay, let then):
            guard let eventLoop = self.context?.eventLoop else { return }
            exchange.upstream = .waiting
            exchange.waitTimer = eventLoop.assumeIsolated().scheduleTask(in: delay) {
                guard self.exchange === exchange, case .waiting = exchange.upstream else { return }
                exchange.upstream = .none
                if let then {
                    self.sendLocalReply(then)
                } else {
                    self.routeSelected(route, request, upstreamHeaders: upstreamHeaders, from: next)
                }
            }
        }
    }

    // MARK: - Finishing

    /// After the response is complete and the request is read: release the upstream, then close or
    /// serve the next (queued) request.
    func finishIfDone() {
        // Done when the response is out and the request is read, or when the connection closes anyway.
        guard let exchange = self.exchange, exchange.responseComplete,
            exchange.requestComplete || (exchange.discardRequestBody && !exchange.keepAlive)
        else { return }
        self.releaseUpstream(exchange)
        self.exchange = nil
        self.report(exchange)
        if self.environment.isHTTP2 { return }  // the stream ends with its response
        let next = self.downstream.afterExchange(
            keepAlive: exchange.keepAlive, closeAfterResponse: exchange.closeAfterResponse, requestComplete: exchange.requestComplete
        )
        guard next == .serve else {
            self.closeDownstream()
            return
        }
        // Serve pipelined requests in order, up to the next complete request.
        while !self.closed, let part = self.downstream.nextQueued(during: self.sequencing) {
            self.handleRequestPart(part)
        }
        if let refusal = self.downstream.takeRefusal(during: self.sequencing) {
            self.sendLocalReply(refusal, forceClose: true)
            return
        }
        self.releaseHeldRead()
    }

    func sendLocalReply(_ reply: LocalReply, forceClose: Bool = false) {
        guard let context = self.context else { return }
        let exchange = self.exchange ?? HTTPExchange(
            requestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), keepAlive: false, isHead: false,
            started: context.eventLoop.now
        )
        self.exchange = exchange
        if let reason = reply.rejected {
            self.environment.metrics.addControl("meshgate_downstream_rejected_total{reason=\"\(reason)\"}")
            self.environment.log.debug("http :\(self.environment.port) \(self.addresses?.remote ?? "-"): refused (\(reason)): \(reply.details)")
        }
        if exchange.telemetry.accessLogger == nil && exchange.telemetry.tracer == nil {
            // Refused before routing: the access log still gets its line.
            exchange.telemetry = ExchangeTelemetry(self.environment.holder.load().telemetry)
        }
        // A request whose body is still coming cannot be followed by another on this connection;
        // one without a body only has its end marker left, which is read and dropped.
        let bodyPending = !exchange.requestComplete && exchange.bodyFraming != .none
        let close = !self.environment.isHTTP2 && (forceClose || !exchange.keepAlive || bodyPending || self.downstream.draining)
        exchange.keepAlive = !close
        exchange.responseStarted = true
        exchange.responseComplete = true
        exchange.discardRequestBody = true
        switch exchange.upstream {
        case .connecting, .waiting: exchange.upstream = .finished
        default: break
        }
        exchange.record.responseCode = Int(reply.status.code)
        exchange.record.responseFlags = reply.flags
        exchange.record.responseCodeDetails = reply.details
        exchange.record.bytesSent = exchange.isHead ? 0 : reply.body.count
        var head = reply.head(version: exchange.requestHead.version, close: close)
        HTTPFilterChain.responseHeaders(&head.headers, exchange)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !reply.body.isEmpty && !exchange.isHead {
            let buffer = context.channel.allocator.buffer(bytes: reply.body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        if close {
            self.exchange = nil
            self.report(exchange)
            self.closeDownstream()
        } else {
            self.finishIfDone()
        }
    }

    /// Hands the finished exchange to the metrics, the access log and the tracer (once).
    func report(_ exchange: HTTPExchange) {
        guard !exchange.reported, let eventLoop = self.context?.eventLoop else { return }
        exchange.reported = true
        exchange.timeoutTimer?.cancel()
        exchange.waitTimer?.cancel()
        exchange.perTryTimer?.cancel()
        self.endAttempt(exchange)
        self.releaseLimits(exchange)
        if exchange.retriesExhausted {
            let flags = exchange.record.responseFlags
            exchange.record.responseFlags = flags.isEmpty || flags == "-" ? "URX" : "\(flags),URX"
        }
        exchange.record.durationMicros = (eventLoop.now - exchange.started).nanoseconds / 1000
        HTTPFilterChain.complete(exchange)
        self.environment.metrics.shard(for: eventLoop).recordHTTP(exchange.record)
        exchange.telemetry.accessLogger?.write(exchange.record)
    }

    func closeDownstream() {
        self.closed = true
        self.downstream.closed()
        self.context?.close(promise: nil)
    }

    static func hostPort(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

}
