import MeshConfig
import NIOCore
import NIOHTTP1

/// A request through the connection manager: its head checked and summarised once, the filters'
/// request-headers and route-selected phases (a filter may answer, hold the request, or suspend it),
/// then the router; its body forwarded with its framing decided.
extension HTTPProxyHandler {
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
    /// (``hold(_:_:resume:)``) and resume after it; then the route is picked.
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
        case .delay, .suspend:
            self.hold(verdict, exchange) { self.requestHeaders(request, plan: plan, upstreamHeaders: upstreamHeaders, from: next) }
        }
    }

    /// The route-selected phase from filter `start` on: a filter may answer, or hold the request and
    /// resume the phase after it; past the last one the router takes over.
    func routeSelected(_ route: CompiledHTTPRoute, _ request: FilterRequest, upstreamHeaders: HTTPHeaders, from start: Int) {
        guard let exchange = self.exchange else { return }
        let (verdict, next) = HTTPFilterChain.routeSelected(from: start, route, request, exchange, self.environment)
        switch verdict {
        case .continue:
            self.route(route, request, upstreamHeaders: upstreamHeaders)
        case .reply(let reply):
            self.sendLocalReply(reply)
        case .delay, .suspend:
            self.hold(verdict, exchange) { self.routeSelected(route, request, upstreamHeaders: upstreamHeaders, from: next) }
        }
    }

    /// Holds the request for a filter's delay (an injected fault) or its suspended check (a new JWT,
    /// an external authorizer), in either phase; then answers, or calls `resume` to go on with the
    /// phase after that filter. Nothing happens when the exchange went away meanwhile.
    func hold(_ verdict: FilterVerdict, _ exchange: HTTPExchange, resume: @escaping () -> Void) {
        guard let eventLoop = self.context?.eventLoop else { return }
        exchange.upstream = .waiting
        let settle: (FilterVerdict) -> Void = { decided in
            guard self.exchange === exchange, case .waiting = exchange.upstream else { return }
            exchange.upstream = .none
            switch decided {
            case .continue: resume()
            case .reply(let reply): self.sendLocalReply(reply)
            case .delay, .suspend: self.hold(decided, exchange, resume: resume)
            }
        }
        switch verdict {
        case .delay(let delay, let then):
            exchange.waitTimer = eventLoop.assumeIsolated().scheduleTask(in: delay) { settle(then.map(FilterVerdict.reply) ?? .continue) }
        case .suspend(let work):
            work(eventLoop, settle)
        case .continue, .reply:
            settle(verdict)
        }
    }
}
