import MeshConfig
import NIOCore
import NIOHTTP1

/// The router at the end of the filter chain: picks the route's cluster and an endpoint, leases an
/// upstream connection, sends the request (again, from its replay buffer, when the retry policy says
/// so), copies it to the route's mirrors, and runs the route and per-try timeouts.
extension HTTPProxyHandler {
    /// RFC 9110 §9.2.2: repeating the request has the effect of sending it once.
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }

    /// Request bodies up to this size are kept for retries (Envoy buffers what it may retry, too).
    static let maxReplayBytes = 64 * 1024

    static func keepForReplay(_ part: HTTPClientRequestPart, _ exchange: HTTPExchange) {
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
    static func replayParts(_ exchange: HTTPExchange) -> [HTTPClientRequestPart] {
        exchange.requestComplete ? exchange.replayBody + [.end(exchange.replayTrailers)] : exchange.replayBody
    }

    /// Copies the complete request to the mirrors its route picked (fire-and-forget). A body too
    /// large to keep is not mirrored; an upgrade is never mirrored.
    func sendMirrors(_ exchange: HTTPExchange) {
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
            self.environment.metrics.addControl("meshgate_mirrored_requests_total{cluster=\"\(cluster.name)\"}")
            RequestMirror.send(head: target.head, body: body, to: cluster, pools: self.environment.pools, eventLoop: eventLoop)
        }
    }

    /// The router: picks the route's cluster and an endpoint, lets the filters shape the upstream
    /// request, and starts the first attempt (its retries are ``RetryState``'s to decide).
    func route(_ route: CompiledHTTPRoute, _ request: FilterRequest, upstreamHeaders: HTTPHeaders) {
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
        if let breaker = cluster.breaker {
            exchange.breaker = breaker
            guard breaker.tryAcquire(.request) else {
                self.environment.log.debug("http :\(self.environment.port): \(cluster.name) is at its http2MaxRequests (UO)")
                self.sendLocalReply(.overflow)
                return
            }
            exchange.holdsRequest = true
        }
        if let key = cluster.balancer.hashKey {
            let derived = RequestHashKey(key, headers: head.headers, routing: request.routing, clientIP: self.clientIP)
            exchange.hashKey = derived.hash
            exchange.setCookie = derived.setCookie
        }
        guard let endpointIndex = cluster.chooseEndpoint(hash: exchange.hashKey) else {
            self.sendLocalReply(.noHealthyUpstream)
            return
        }
        exchange.retry = RetryState(policy: route.retries, idempotent: Self.isIdempotent(head.method))
        let endpoint = cluster.endpoints[endpointIndex]
        exchange.record.upstreamHost = endpoint.hostPort
        exchange.record.destination = endpoint.identity

        if request.expectsContinue && head.version == .http1_1 {
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
        if let upgrade = request.upgrade {
            if !self.environment.isHTTP2, !cluster.http2, !upgrade.lowercased().hasPrefix("h2c") {
                exchange.upgrade = upgrade
                upstream.headers.add(name: "connection", value: "upgrade")
                upstream.headers.add(name: "upgrade", value: upgrade)
            }
        }
        HTTPFilterChain.upstreamRequest(&upstream, route, request, exchange, self.environment)
        exchange.timeout = route.timeout
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: upstream.target, headers: upstream.headers)
        exchange.target = HTTPExchange.Target(cluster: cluster, endpointIndex: endpointIndex, head: upstreamHead)
        self.beginAttempt(exchange, cluster, endpointIndex)
        for mirror in route.mirrors where FastRandom.shared.nextPercent() < mirror.percentage {
            exchange.mirrors.append(mirror.cluster)
        }
        self.sendMirrors(exchange)
        self.connectUpstream(allowPooled: true)
    }

    /// Leases an idle pooled connection for the exchange's target, or opens a new one.
    func connectUpstream(allowPooled: Bool) {
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
            if let breaker = cluster.breaker, !breaker.tryAcquire(.connection) {
                // At maxConnections: wait for one of this loop's connections, if it has any (a pool
                // with none opens one anyway, as Envoy's does), within http1MaxPendingRequests.
                guard pool.openConnections(key: key) == 0 else {
                    self.waitForConnection(exchange, breaker: breaker, pool: pool, key: key)
                    return
                }
                breaker.acquire(.connection)
            }
            connecting = pool.connect(key: key, endpoint: endpoint, options: cluster.connectOptions, breaker: cluster.breaker)
        }
        self.whenConnected(connecting, exchange: exchange, target: target)
    }

    /// The exchange waits for `connecting`, then sends on it, or retries or answers its failure.
    func whenConnected(_ connecting: EventLoopFuture<UpstreamHTTPHandler>, exchange: HTTPExchange, target: HTTPExchange.Target) {
        exchange.upstream = .connecting
        let cluster = target.cluster
        connecting
            .assumeIsolated()
            .whenComplete { result in
                guard let current = self.exchange, current === exchange, case .connecting = current.upstream, !self.closed else {
                    // The client left (or the exchange ended) while we were connecting.
                    if case .success(let connection) = result { connection.close() }
                    return
                }
                switch result {
                case .success(let connection):
                    self.attach(connection, head: target.head, maxRequests: cluster.maxRequestsPerConnection)
                case .failure(let error):
                    self.environment.log.info(
                        "http :\(self.environment.port): connect to \(cluster.endpoints[target.endpointIndex].hostPort) (\(cluster.name)) failed: \(error) (UF)"
                    )
                    self.recordOutcome(current, .localFailure)
                    if self.retry(current, after: .connectFailure) { return }
                    self.exchange?.upstream = .finished
                    self.sendLocalReply((error as? UpstreamTLSError).map(LocalReply.upstreamTLSFailure) ?? .connectionFailure)
                }
            }
    }

    func attach(_ connection: UpstreamHTTPHandler, head: HTTPRequestHead, maxRequests: Int) {
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

    /// After a failed attempt: the route's retry policy decides. On a retry the failed upstream
    /// (`closing`) is dropped and, after the backoff, the request goes again, from its replay
    /// buffer, to another endpoint when there is one. Returns false when the failure stands.
    func retry(_ exchange: HTTPExchange, after outcome: RetryState.Outcome, closing upstream: UpstreamHTTPHandler? = nil) -> Bool {
        guard var state = exchange.retry, let eventLoop = self.context?.eventLoop, !self.closed else { return false }
        let action = state.next(after: outcome, replayable: exchange.replayable && !exchange.responseStarted, roll: FastRandom.shared.nextUnit())
        exchange.retry = state
        guard case .retry(let backoff) = action else {
            if action == .exhausted { exchange.retriesExhausted = true }
            return false
        }
        if let breaker = exchange.breaker {
            // One retry outstanding per exchange at most: the previous one (if any) is over.
            if exchange.holdsRetry { breaker.release(.retry) }
            exchange.holdsRetry = breaker.tryAcquire(.retry)
            guard exchange.holdsRetry else {
                self.environment.log.debug("http :\(self.environment.port): retry refused: the cluster is at its maxRetries")
                return false
            }
        }
        exchange.perTryTimer?.cancel()
        upstream?.close()
        let cluster = exchange.target.map(\.cluster)
        self.environment.log.debug(
            "http :\(self.environment.port): \(outcome) from \(exchange.record.upstreamHost ?? "-"); retry \(state.retries) of \(state.policy.attempts) in \(backoff)"
        )
        self.environment.metrics.addControl("meshgate_upstream_retries_total{cluster=\"\(cluster?.name ?? "-")\"}")
        exchange.upstream = .waiting
        self.endAttempt(exchange)
        if let failed = exchange.target?.endpointIndex, state.policy.avoidPreviousHosts { exchange.failedEndpoints.append(failed) }
        exchange.waitTimer = eventLoop.assumeIsolated().scheduleTask(in: backoff) {
            guard self.exchange === exchange, case .waiting = exchange.upstream, var target = exchange.target else { return }
            guard let index = target.cluster.chooseEndpoint(hash: exchange.hashKey, avoiding: exchange.failedEndpoints) else {
                self.sendLocalReply(.noHealthyUpstream)
                return
            }
            target.endpointIndex = index
            exchange.target = target
            self.beginAttempt(exchange, target.cluster, index)
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
    func startPerTryTimeout(_ exchange: HTTPExchange) {
        guard let perTry = exchange.retry?.policy.perTryTimeout, exchange.requestComplete, let eventLoop = self.context?.eventLoop else { return }
        exchange.perTryTimer?.cancel()
        exchange.perTryTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(perTry)) {
            guard self.exchange === exchange, !exchange.responseComplete, case .attached(let upstream) = exchange.upstream else { return }
            self.environment.log.debug("http :\(self.environment.port): no response within perTryTimeout \(perTry)")
            if !exchange.responseStarted { self.recordOutcome(exchange, .localFailure) }
            if !exchange.responseStarted && self.retry(exchange, after: .perTryTimeout, closing: upstream) { return }
            self.failUpstream(exchange, .upstreamPerTryTimeout, afterResponseStarted: "upstream_per_try_timeout")
        }
    }

    /// A route `timeout` runs from the end of the request (as Envoy's route timeout does) to the end
    /// of the response. Without a response head by then: 504 `UT`; mid-response: the client
    /// connection is reset, so a cut response never looks complete.
    func startTimeout() {
        if let exchange = self.exchange, case .attached = exchange.upstream { self.startPerTryTimeout(exchange) }
        guard let exchange = self.exchange, let timeout = exchange.timeout, !exchange.responseComplete,
            let eventLoop = self.context?.eventLoop
        else { return }
        exchange.timeoutTimer = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard self.exchange === exchange, !exchange.responseComplete else { return }
            self.environment.log.debug("http :\(self.environment.port): no complete response within \(timeout) (UT)")
            if !exchange.responseStarted, case .attached = exchange.upstream { self.recordOutcome(exchange, .localFailure) }
            self.failUpstream(exchange, .upstreamTimeout, afterResponseStarted: "upstream_response_timeout")
        }
    }

    /// After a complete exchange: the upstream connection back to the pool (an HTTP/2 stream just
    /// ends), or closed when it cannot serve another request.
    func releaseUpstream(_ exchange: HTTPExchange) {
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

    /// The upstream failed: its connection closes; the client gets `reply`, or, once part of the
    /// response went out, a cut connection (a cut response must never look complete).
    func failUpstream(_ exchange: HTTPExchange, _ reply: LocalReply, afterResponseStarted details: String) {
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
}
