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
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamHTTPOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Pipelined request parts held before reads stop.
    static let maxQueuedParts = 128


    private let environment: HTTPProxyEnvironment
    /// nil for HTTP/2 streams (the connection, not the stream, is what idles).
    private let idleTimeout: TimeAmount?
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var exchange: HTTPExchange?
    private var queuedParts: [HTTPServerRequestPart] = []
    private var pendingRead = false
    private var draining = false
    /// The parser refused what followed the requests still being served: answered after them.
    private var pendingRefusal: LocalReply?
    private var closed = false
    /// The client's IP for `x-forwarded-for`, formatted once per connection.
    private lazy var addresses: DownstreamAddresses? = self.environment.downstream ?? self.context.map { DownstreamAddresses($0.channel) }
    private var clientIP: String { self.addresses?.clientIP ?? "unknown" }

    /// HTTP/1.1 only: told when the decoder produced a head and when a request ended.
    private let headGuard: RequestHeadGuard?

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
    private func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context = self.context else { return }
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.checkIdle()
        }
    }

    private func checkIdle() {
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
        if let exchange = self.exchange, exchange.requestComplete || !self.queuedParts.isEmpty {
            // A pipelined request: it waits for the current response.
            self.queuedParts.append(part)
            return
        }
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
        self.queuedParts.removeAll()
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
        if let exchange = self.exchange, exchange.requestComplete || !self.queuedParts.isEmpty {
            // Complete requests ahead of the malformed one (a pipeline) are served first; the 400
            // follows them, then the connection closes. Nothing more is read. The malformed
            // request's own parts (queued after the last complete one) are never dispatched.
            let lastEnd = self.queuedParts.lastIndex { if case .end = $0 { true } else { false } }
            self.queuedParts.removeSubrange((lastEnd.map { $0 + 1 } ?? 0)...)
            self.pendingRefusal = reply
            return
        }
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
            self.draining = true
            if self.exchange == nil {
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

    private var shouldHoldReads: Bool {
        if self.queuedParts.count >= Self.maxQueuedParts || self.pendingRefusal != nil { return true }
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

    private func releaseHeldRead() {
        if self.pendingRead, !self.shouldHoldReads, let context = self.context {
            self.pendingRead = false
            context.read()
        }
    }

    // MARK: - Requests

    private func handleRequestPart(_ part: HTTPServerRequestPart) {
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
    private func decideFraming(hasBody: Bool) {
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

    private func forwardRequestPart(_ part: HTTPClientRequestPart) {
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

    /// RFC 9110 §9.2.2: repeating the request has the effect of sending it once.
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }

    /// Request bodies up to this size are kept for retries (Envoy buffers what it may retry, too).
    static let maxReplayBytes = 64 * 1024

    private static func keepForReplay(_ part: HTTPClientRequestPart, _ exchange: HTTPExchange) {
        guard exchange.replayable else { return }
        switch part {
        case .body(let body):
            if case .byteBuffer(let buffer) = body { exchange.replayBytes += buffer.readableBytes }
            if exchange.replayBytes > Self.maxReplayBytes {
                exchange.replayable = false
                exchange.replayBody = []
            } else {
                exchange.replayBody.append(part)
            }
        case .end(let trailers): exchange.replayTrailers = trailers
        case .head: break
        }
    }

    /// The request's parts after its head, as received so far: to send again.
    private static func replayParts(_ exchange: HTTPExchange) -> [HTTPClientRequestPart] {
        exchange.requestComplete ? exchange.replayBody + [.end(exchange.replayTrailers)] : exchange.replayBody
    }

    /// Copies the complete request to the mirrors its route picked (fire-and-forget). A body too
    /// large to keep is not mirrored; an upgrade is never mirrored.
    private func sendMirrors(_ exchange: HTTPExchange) {
        guard !exchange.mirrors.isEmpty, exchange.requestComplete, let target = exchange.target, let eventLoop = self.context?.eventLoop else {
            return
        }
        let mirrors = exchange.mirrors
        exchange.mirrors = []
        guard exchange.replayable, exchange.upgrade == nil else {
            self.environment.log.debug("http :\(self.environment.port): request not mirrored: its body is over \(Self.maxReplayBytes) bytes")
            return
        }
        let body = Self.replayParts(exchange)
        for cluster in mirrors {
            RequestMirror.send(head: target.head, body: body, to: cluster, pools: self.environment.pools, eventLoop: eventLoop)
        }
    }

    private func startExchange(_ head: HTTPRequestHead) {
        // An HTTP/2 stream carries one request; the connection's life is not this handler's.
        let keepAlive = self.environment.isHTTP2 || (head.isKeepAlive && !self.draining)
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
        exchange.telemetry = snapshot.telemetry
        guard let plan = snapshot.listeners[self.environment.port] else {
            self.sendLocalReply(.noRoute)
            return
        }
        let request = FilterRequest(
            head: head, target: routedHead.uri, routing: RouteRequest(head: routedHead, host: summary.host ?? "", port: self.environment.port),
            summary: summary, snapshot: snapshot, plan: plan
        )
        let chain = HTTPFilterChain.standard
        if case .reply(let reply) = chain.run({ $0.requestHeaders(request, exchange, self.environment) }).verdict {
            self.sendLocalReply(reply)
            return
        }
        guard let route = (self.environment.inbound?.routes ?? plan.http).route(request.routing) else {
            self.environment.log.debug("http :\(self.environment.port): no route for \(request.routing.authority)\(request.routing.path) (NR)")
            self.sendLocalReply(.noRoute)
            return
        }
        exchange.record.routeName = route.name
        self.routeSelected(route, request, upstreamHeaders: upstreamHeaders, from: 0)
    }

    /// The route-selected phase from filter `start` on: a filter may answer, or hold the request (an
    /// injected delay) and resume the phase after it; past the last one the router takes over.
    private func routeSelected(_ route: CompiledHTTPRoute, _ request: FilterRequest, upstreamHeaders: HTTPHeaders, from start: Int) {
        guard let exchange = self.exchange else { return }
        let (verdict, next) = HTTPFilterChain.standard.run(from: start) { $0.routeSelected(route, request, exchange, self.environment) }
        switch verdict {
        case .continue:
            self.route(route, request, upstreamHeaders: upstreamHeaders)
        case .reply(let reply):
            self.sendLocalReply(reply)
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

    /// The router: picks the route's cluster and an endpoint, lets the filters shape the upstream
    /// request, and starts the first attempt (its retries are ``RetryState``'s to decide).
    private func route(_ route: CompiledHTTPRoute, _ request: FilterRequest, upstreamHeaders: HTTPHeaders) {
        guard let exchange = self.exchange else { return }
        let head = request.head
        let cluster: Cluster
        let picked = route.destinations.pickEntry()
        switch picked?.target {
        case .cluster(let picked)?:
            cluster = picked
        case .missing(let name)?:
            exchange.record.upstreamCluster = name
            self.sendLocalReply(.clusterNotFound(name))
            return
        case nil:
            self.sendLocalReply(.clusterNotFound)
            return
        }
        exchange.record.upstreamCluster = cluster.name
        guard let endpointIndex = cluster.pickEndpointIndex() else {
            self.sendLocalReply(.noHealthyUpstream)
            return
        }
        exchange.retry = route.retries.attempts > 0 ? RetryState(policy: route.retries, idempotent: Self.isIdempotent(head.method)) : nil
        let endpoint = cluster.endpoints[endpointIndex]
        exchange.record.upstreamHost = endpoint.hostPort
        exchange.record.destination = endpoint.identity

        if request.summary.expectsContinue && head.version == .http1_1 {
            // (An HTTP/1.0 client does not know 1xx responses: RFC 9110 §15.2.)
            // Answer 100-continue here (as Envoy does) so the client sends its body at once.
            self.context?.writeAndFlush(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                promise: nil
            )
        }
        var upstream = UpstreamRequest(
            headers: upstreamHeaders, target: request.target, cluster: cluster, endpoint: endpoint, destinationHeaders: picked?.headers
        )
        if let upgrade = request.summary.upgrade {
            if !self.environment.isHTTP2, !cluster.http2, !upgrade.lowercased().hasPrefix("h2c") {
                exchange.upgrade = upgrade
                upstream.headers.add(name: "connection", value: "upgrade")
                upstream.headers.add(name: "upgrade", value: upgrade)
            }
        }
        HTTPFilterChain.standard.upstreamRequest(&upstream, route, request, exchange, self.environment)
        exchange.timeout = route.timeout
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: upstream.target, headers: upstream.headers)
        exchange.target = HTTPExchange.Target(cluster: cluster, endpointIndex: endpointIndex, head: upstreamHead)
        for mirror in route.mirrors where FastRandom.shared.nextPercent() < mirror.percentage {
            exchange.mirrors.append(mirror.cluster)
        }
        self.sendMirrors(exchange)
        self.connectUpstream(allowPooled: true)
    }

    /// Leases an idle pooled connection for the exchange's target, or opens a new one.
    private func connectUpstream(allowPooled: Bool) {
        guard let exchange = self.exchange, let target = exchange.target, let eventLoop = self.context?.eventLoop else { return }
        let cluster = target.cluster
        let endpoint = cluster.endpoints[target.endpointIndex]
        let key = cluster.poolKeys[target.endpointIndex]
        let pool = self.environment.pools.pool(for: eventLoop)
        exchange.upstreamStart = .now()
        let connecting: EventLoopFuture<UpstreamHTTPHandler>
        if cluster.http2 {
            exchange.reusedConnection = false
            connecting = pool.openStream(key: key, endpoint: endpoint, cluster: cluster, fresh: !allowPooled)
        } else if allowPooled, let connection = pool.takeIdle(key: key) {
            exchange.reusedConnection = true
            self.attach(connection, head: target.head, maxRequests: cluster.maxRequestsPerConnection)
            return
        } else {
            exchange.reusedConnection = false
            connecting = pool.connect(key: key, endpoint: endpoint, timeout: cluster.connectTimeout)
        }
        exchange.upstream = .connecting
        connecting
            .assumeIsolated()
            .whenComplete { result in
                guard let current = self.exchange, case .connecting = current.upstream, !self.closed else {
                    // The client left (or the exchange ended) while we were connecting.
                    if case .success(let connection) = result { connection.close() }
                    return
                }
                switch result {
                case .success(let connection):
                    self.attach(connection, head: target.head, maxRequests: cluster.maxRequestsPerConnection)
                case .failure(let error):
                    self.environment.log.info(
                        "http :\(self.environment.port): connect to \(endpoint.hostPort) (\(cluster.name)) failed: \(error) (UF)"
                    )
                    if self.retry(current, after: .connectFailure) { return }
                    self.exchange?.upstream = .finished
                    self.sendLocalReply((error as? UpstreamTLSError).map(LocalReply.upstreamTLSFailure) ?? .connectionFailure)
                }
            }
    }

    private func attach(_ connection: UpstreamHTTPHandler, head: HTTPRequestHead, maxRequests: Int) {
        guard let exchange = self.exchange else { return }
        connection.owner = self
        connection.requestsSent += 1
        exchange.record.upstreamLocalAddress = connection.localAddressText
        exchange.upstream = .attached(connection)
        let pending = exchange.pendingRequestParts
        exchange.pendingRequestParts = []
        var upstreamHead = exchange.target?.head ?? head
        if maxRequests > 0 && connection.requestsSent >= maxRequests && !connection.isStream {
            upstreamHead.headers.replaceOrAdd(name: "connection", value: "close")
            exchange.upstreamReusable = false
        }
        if let retries = exchange.retry?.retries, retries > 0 {
            // Envoy's `x-envoy-attempt-count`, on the attempts after the first.
            upstreamHead.headers.replaceOrAdd(name: "x-envoy-attempt-count", value: String(retries + 1))
        }
        if exchange.bodyFraming == .decidedByFirstPart {
            // Sent with the request's first part (no part can be pending before it).
            exchange.deferredHead = upstreamHead
            self.releaseHeldRead()
            return
        }
        connection.send(.head(upstreamHead), flush: pending.isEmpty)
        for part in pending {
            connection.send(part, flush: false)
        }
        connection.flush()
        self.startPerTryTimeout(exchange)
        self.releaseHeldRead()
    }

    // MARK: - Retries

    /// After a failed attempt: the route's retry policy decides. On a retry the failed upstream
    /// (`closing`) is dropped and, after the backoff, the request goes again, from its replay
    /// buffer, to another endpoint when there is one. Returns false when the failure stands.
    private func retry(_ exchange: HTTPExchange, after outcome: RetryState.Outcome, closing upstream: UpstreamHTTPHandler? = nil) -> Bool {
        guard var state = exchange.retry, let eventLoop = self.context?.eventLoop, !self.closed else { return false }
        let action = state.next(after: outcome, replayable: exchange.replayable && !exchange.responseStarted, roll: FastRandom.shared.nextUnit())
        exchange.retry = state
        guard case .retry(let backoff) = action else {
            if action == .exhausted { exchange.retriesExhausted = true }
            return false
        }
        exchange.perTryTimer?.cancel()
        upstream?.close()
        let cluster = exchange.target.map(\.cluster)
        self.environment.log.debug(
            "http :\(self.environment.port): \(outcome) from \(exchange.record.upstreamHost ?? "-"); retry \(state.retries) of \(state.policy.attempts) in \(backoff)"
        )
        self.environment.metrics.addControl("meshgate_upstream_retries_total{cluster=\"\(cluster?.name ?? "-")\"}")
        exchange.upstream = .waiting
        if let failed = exchange.target?.endpointIndex, state.policy.avoidPreviousHosts { exchange.failedEndpoints.append(failed) }
        exchange.waitTimer = eventLoop.assumeIsolated().scheduleTask(in: backoff) {
            guard self.exchange === exchange, case .waiting = exchange.upstream, var target = exchange.target else { return }
            guard let index = target.cluster.pickEndpointIndex(avoiding: exchange.failedEndpoints) else {
                self.sendLocalReply(.noHealthyUpstream)
                return
            }
            target.endpointIndex = index
            exchange.target = target
            exchange.record.upstreamHost = target.cluster.endpoints[index].hostPort
            exchange.record.destination = target.cluster.endpoints[index].identity
            exchange.upstream = .none
            exchange.bodySent = false
            exchange.upstreamReusable = true
            exchange.pendingRequestParts = Self.replayParts(exchange)
            self.connectUpstream(allowPooled: true)
        }
        return true
    }

    /// `perTryTimeout`: each attempt's response must be complete within it, from when the whole
    /// request is on its way (Envoy's per-try timeout). A head not yet received is a retriable
    /// failure; mid-response it resets the client connection, as the route timeout does.
    private func startPerTryTimeout(_ exchange: HTTPExchange) {
        guard let perTry = exchange.retry?.policy.perTryTimeout, exchange.requestComplete, let eventLoop = self.context?.eventLoop else { return }
        exchange.perTryTimer?.cancel()
        exchange.perTryTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(perTry)) {
            guard self.exchange === exchange, !exchange.responseComplete, case .attached(let upstream) = exchange.upstream else { return }
            self.environment.log.debug("http :\(self.environment.port): no response within perTryTimeout \(perTry)")
            if !exchange.responseStarted && self.retry(exchange, after: .perTryTimeout, closing: upstream) { return }
            self.failUpstream(exchange, .upstreamPerTryTimeout, afterResponseStarted: "upstream_per_try_timeout")
        }
    }

    // MARK: - Upstream events (UpstreamHTTPOwner)

    var downstreamWritable: Bool { self.context?.channel.isWritable ?? false }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange = self.exchange, let context = self.context else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols {
                guard let upgrade = exchange.upgrade else {
                    self.upstreamProtocolError(exchange, "101 Switching Protocols to a request that did not ask to upgrade")
                    return
                }
                self.acceptUpgrade(exchange, head: head, upgrade: upgrade)
                return
            }
            if exchange.retry != nil {
                let outcome = RetryState.Outcome.response(
                    status: Int(head.status.code), grpcStatus: head.headers.first(name: "grpc-status").flatMap { Int($0) }
                )
                if case .attached(let upstream) = exchange.upstream, self.retry(exchange, after: outcome, closing: upstream) { return }
            }
            exchange.perTryTimer?.cancel()
            var framingHeaders = HopByHop.FramingHeaders()
            var headers = HopByHop.downstreamResponseHeaders(head.headers, framing: &framingHeaders)
            let framing: Framing
            switch Framing.response(
                framingHeaders, status: head.status, isHeadRequest: exchange.isHead,
                clientVersion: self.environment.isHTTP2 ? nil : exchange.requestHead.version, upstreamVersion: head.version
            ) {
            case .success(let decided): framing = decided
            case .failure(let error):
                self.upstreamProtocolError(exchange, error.reason)
                return
            }
            exchange.responseStarted = true
            exchange.upstreamReusable = exchange.upstreamReusable && head.isKeepAlive
            let elapsed = NIODeadline.now() - exchange.upstreamStart
            HTTPFilterChain.standard.responseHeaders(&headers, exchange)
            let serviceTime = Int(elapsed.nanoseconds / 1_000_000)
            if self.environment.inbound == nil {
                // The proxy nearest the client says it (a sidecar's inbound leaves it to the caller's).
                headers.add(name: "x-envoy-upstream-service-time", value: String(serviceTime))
            }
            exchange.record.responseCode = Int(head.status.code)
            exchange.record.responseCodeDetails = "via_upstream"
            exchange.record.upstreamServiceTimeMillis = serviceTime
            framing.apply(to: &headers)
            if framing == .closeDelimited { exchange.closeAfterResponse = true }
            if self.environment.isHTTP2 {
                // No connection headers on a stream.
            } else if !exchange.keepAlive || exchange.closeAfterResponse || !exchange.requestComplete || self.draining {
                headers.add(name: "connection", value: "close")
                exchange.keepAlive = false
            } else if exchange.requestHead.version != .http1_1 {
                headers.add(name: "connection", value: "keep-alive")
            }
            exchange.suppressEndMarker = exchange.isHead && framing == .chunked
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: exchange.requestHead.version, status: head.status, headers: headers))),
                promise: nil
            )
        case .body(let buffer):
            if !exchange.isHead {
                exchange.record.bytesSent += buffer.readableBytes
                context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
        case .end(let trailers):
            if exchange.switching, case .attached(let upstream) = exchange.upstream {
                self.tunnel(exchange, upstream: upstream)
                return
            }
            exchange.responseComplete = true
            if !exchange.requestComplete {
                // Early response: the rest of the request body is dropped, and neither connection is reused.
                exchange.discardRequestBody = true
                exchange.keepAlive = false
                if case .attached(let upstream) = exchange.upstream {
                    upstream.close()
                }
                exchange.upstream = .finished
            } else {
                // Released before the end goes downstream: writing it may end an HTTP/2 stream,
                // and this handler with it, at once.
                self.releaseUpstream(exchange)
            }
            if exchange.suppressEndMarker {
                context.flush()
            } else {
                context.writeAndFlush(self.wrapOutboundOut(.end(exchange.closeAfterResponse ? nil : trailers)), promise: nil)
            }
            self.finishIfDone()
        }
    }

    /// The upstream's response cannot be read unambiguously (Envoy's `UPE`): its connection closes;
    /// the client gets 502, or, when part of the response already went out, a cut connection.
    func upstreamProtocolError(_ reason: String) {
        guard let exchange = self.exchange else { return }
        self.upstreamProtocolError(exchange, reason)
    }

    private func upstreamProtocolError(_ exchange: HTTPExchange, _ reason: String) {
        self.environment.log.info("http :\(self.environment.port): upstream \(exchange.record.upstreamHost ?? "-"): protocol error: \(reason) (UPE)")
        self.environment.metrics.addControl("meshgate_upstream_protocol_errors_total")
        self.failUpstream(exchange, .upstreamProtocolError(reason), afterResponseStarted: "upstream_reset_after_response_started{protocol_error}")
    }

    /// The upstream failed: its connection closes; the client gets `reply`, or, once part of the
    /// response went out, a cut connection (a cut response must never look complete).
    private func failUpstream(_ exchange: HTTPExchange, _ reply: LocalReply, afterResponseStarted details: String) {
        if case .attached(let upstream) = exchange.upstream { upstream.close() }
        exchange.upstream = .finished
        if exchange.responseStarted {
            exchange.record.responseFlags = reply.flags
            exchange.record.responseCodeDetails = details
            self.exchange = nil
            self.report(exchange)
            self.closeDownstream()
        } else {
            self.sendLocalReply(reply)
        }
    }

    func upstreamReadComplete() {
        self.lastActivity = self.context?.eventLoop.now ?? self.lastActivity
        self.context?.flush()
    }

    func upstreamClosed() {
        guard let exchange = self.exchange, case .attached(let upstream) = exchange.upstream else { return }
        exchange.upstream = .finished
        if exchange.responseComplete { return }
        if !exchange.responseStarted && (exchange.reusedConnection || upstream.refused) && !exchange.bodySent && !exchange.replayed {
            // A pooled connection the server had closed while idle, or a stream it refused:
            // nothing of this request was processed, so it is sent again on a new connection
            // (never for a request whose body was already on its way).
            self.environment.log.debug("http :\(self.environment.port): upstream closed or refused before processing; retrying on a new connection")
            exchange.upstream = .none
            exchange.replayed = true
            // The head is re-sent by attach; a request already complete needs its end again.
            exchange.pendingRequestParts = exchange.requestComplete ? [.end(nil)] : []
            self.connectUpstream(allowPooled: false)
            return
        }
        if !exchange.responseStarted && self.retry(exchange, after: upstream.refused ? .refusedStream : .reset) { return }
        if exchange.responseStarted {
            // Reset mid-response: the client must see a broken response, not a short one.
            exchange.record.responseFlags = "UC"
            exchange.record.responseCodeDetails = "upstream_reset_after_response_started{connection_termination}"
            self.report(exchange)
            self.context?.close(promise: nil)
        } else {
            self.sendLocalReply(.connectionTermination)
        }
    }

    func upstreamBecameWritable() {
        self.releaseHeldRead()
    }

    // MARK: - Finishing

    /// After the response is complete and the request is read: release the upstream, then close or
    /// serve the next (queued) request.
    private func finishIfDone() {
        // Done when the response is out and the request is read, or when the connection closes anyway.
        guard let exchange = self.exchange, exchange.responseComplete,
            exchange.requestComplete || (exchange.discardRequestBody && !exchange.keepAlive)
        else { return }
        self.releaseUpstream(exchange)
        self.exchange = nil
        self.report(exchange)
        if self.environment.isHTTP2 { return }  // the stream ends with its response
        guard exchange.keepAlive, !exchange.closeAfterResponse, !self.draining, exchange.requestComplete else {
            self.closeDownstream()
            return
        }
        // Serve pipelined requests in order, up to the next complete request.
        while !self.closed, !self.queuedParts.isEmpty, !(self.exchange?.requestComplete ?? false) {
            self.handleRequestPart(self.queuedParts.removeFirst())
        }
        if let refusal = self.pendingRefusal, self.exchange == nil, self.queuedParts.isEmpty {
            self.pendingRefusal = nil
            self.sendLocalReply(refusal, forceClose: true)
            return
        }
        self.releaseHeldRead()
    }

    /// The upstream agreed to the upgrade: the 101 goes to the client now; the tunnel follows at
    /// the end of the 101 (the decoder's last part before the upgraded bytes).
    private func acceptUpgrade(_ exchange: HTTPExchange, head: HTTPResponseHead, upgrade: String) {
        guard let context = self.context else { return }
        var framing = HopByHop.FramingHeaders()
        var headers = HopByHop.downstreamResponseHeaders(head.headers, framing: &framing)
        headers.add(name: "connection", value: "upgrade")
        headers.add(name: "upgrade", value: head.headers.first(name: "upgrade") ?? upgrade)
        context.writeAndFlush(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil
        )
        exchange.switching = true
        exchange.responseStarted = true
        exchange.record.responseCode = 101
        exchange.record.responseCodeDetails = "via_upstream"
    }

    /// Both connections drop their HTTP handlers and are glued into a byte tunnel (as Envoy proxies
    /// WebSocket), with the TCP proxy's backpressure and half-close. Bytes already read past either
    /// head (the first frames) reach the tunnel as the decoders leave. Reported now, as a 101.
    private func tunnel(_ exchange: HTTPExchange, upstream: UpstreamHTTPHandler) {
        guard let context = self.context, let upstreamContext = upstream.context else { return }
        exchange.responseComplete = true
        exchange.upstream = .finished
        upstream.owner = nil
        self.exchange = nil
        self.closed = true
        self.report(exchange)
        let (downstreamGlue, upstreamGlue) = GlueHandler.matchedPair()
        do {
            // Both glues first, so the bytes each leaving decoder hands on have somewhere to go;
            // the typed HTTP handlers leave before the decoders.
            let up = upstreamContext.pipeline.syncOperations
            let down = context.pipeline.syncOperations
            let upstreamDecoder = try up.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
            let upstreamEncoder = try up.handler(type: HTTPRequestEncoder.self)
            let decoder = try down.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let encoder = try down.handler(type: HTTPResponseEncoder.self)
            try up.addHandler(upstreamGlue)
            try down.addHandler(downstreamGlue)
            let channels = (context.channel, upstreamContext.channel)
            up.removeHandler(upstream, promise: nil)
            up.removeHandler(upstreamEncoder, promise: nil)
            down.removeHandler(context: context, promise: nil)
            down.removeHandler(encoder, promise: nil)
            // A decoder leaves later in this loop tick, handing on the bytes it held; then they are
            // flushed, and a read either HTTP handler held back is asked again through the glue.
            let upstreamLeft = channels.1.eventLoop.makePromise(of: Void.self)
            let downstreamLeft = channels.0.eventLoop.makePromise(of: Void.self)
            up.removeHandler(upstreamDecoder, promise: upstreamLeft)
            down.removeHandler(decoder, promise: downstreamLeft)
            upstreamLeft.futureResult.and(downstreamLeft.futureResult).whenComplete { _ in
                for channel in [channels.0, channels.1] {
                    channel.flush()
                    channel.read()
                }
            }
        } catch {
            self.environment.log.info("http :\(self.environment.port): cannot switch to a tunnel after 101: \(error)")
            upstreamContext.close(promise: nil)
            context.close(promise: nil)
        }
    }

    /// After a complete exchange: the upstream connection back to the pool (an HTTP/2 stream just
    /// ends), or closed when it cannot serve another request.
    private func releaseUpstream(_ exchange: HTTPExchange) {
        guard case .attached(let upstream) = exchange.upstream, let eventLoop = self.context?.eventLoop else { return }
        exchange.upstream = .finished
        // A finished HTTP/2 stream closes by itself; closing it here would reset it.
        if exchange.upstreamReusable || upstream.isStream {
            let idleTimeout = exchange.target?.cluster.upstreamIdleTimeout ?? SnapshotCompiler.defaultUpstreamIdleTimeout
            self.environment.pools.pool(for: eventLoop).release(upstream, idleTimeout: idleTimeout)
        } else {
            upstream.close()
        }
    }

    private func sendLocalReply(_ reply: LocalReply, forceClose: Bool = false) {
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
            exchange.telemetry = self.environment.holder.load().telemetry
        }
        // A request whose body is still coming cannot be followed by another on this connection;
        // one without a body only has its end marker left, which is read and dropped.
        let bodyPending = !exchange.requestComplete && exchange.bodyFraming != .none
        let close = !self.environment.isHTTP2 && (forceClose || !exchange.keepAlive || bodyPending || self.draining)
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
        HTTPFilterChain.standard.responseHeaders(&head.headers, exchange)
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

    /// A route `timeout` runs from the end of the request (as Envoy's route timeout does) to the end
    /// of the response. Without a response head by then: 504 `UT`; mid-response: the client
    /// connection is reset, so a cut response never looks complete.
    private func startTimeout() {
        if let exchange = self.exchange, case .attached = exchange.upstream { self.startPerTryTimeout(exchange) }
        guard let exchange = self.exchange, let timeout = exchange.timeout, !exchange.responseComplete,
            let eventLoop = self.context?.eventLoop
        else { return }
        exchange.timeoutTimer = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard self.exchange === exchange, !exchange.responseComplete else { return }
            self.environment.log.debug("http :\(self.environment.port): no complete response within \(timeout) (UT)")
            self.failUpstream(exchange, .upstreamTimeout, afterResponseStarted: "upstream_response_timeout")
        }
    }

    /// Hands the finished exchange to the metrics, the access log and the tracer (once).
    private func report(_ exchange: HTTPExchange) {
        guard !exchange.reported, let eventLoop = self.context?.eventLoop else { return }
        exchange.reported = true
        exchange.timeoutTimer?.cancel()
        exchange.waitTimer?.cancel()
        exchange.perTryTimer?.cancel()
        if exchange.retriesExhausted {
            let flags = exchange.record.responseFlags
            exchange.record.responseFlags = flags.isEmpty || flags == "-" ? "URX" : "\(flags),URX"
        }
        exchange.record.durationMicros = (eventLoop.now - exchange.started).nanoseconds / 1000
        HTTPFilterChain.standard.complete(exchange)
        self.environment.metrics.shard(for: eventLoop).recordHTTP(exchange.record)
        exchange.telemetry.accessLogger?.write(exchange.record)
    }

    private func closeDownstream() {
        self.closed = true
        self.queuedParts.removeAll()
        self.context?.close(promise: nil)
    }

    static func hostPort(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

}
