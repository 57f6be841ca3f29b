import MeshConfig
import NIOCore
import NIOHTTP1

/// On a TLS connection, a request for a host its certificate (SNI server) does not serve: 421, so
/// the client opens a connection for that host (RFC 9110 §15.5.20).
struct MisdirectedRequestFilter: HTTPFilter {
    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict {
        guard let server = environment.tlsServer, !server.serves(host: request.routing.host) else { return .continue }
        return .reply(.misdirected)
    }
}

/// A Gateway server's `tls.httpsRedirect`: 301 to the same host and target over https.
struct HTTPSRedirectFilter: HTTPFilter {
    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict {
        let hosts = request.httpsRedirectHosts
        guard !hosts.isEmpty, hosts.contains(where: { hostMatches(pattern: $0, host: String(request.routing.host)) }) else { return .continue }
        return .reply(.httpsRedirect(to: "https://\(request.routing.host)\(request.target)"))
    }
}

/// The route's `corsPolicy` (Envoy's CORS filter): an allowed preflight is answered here; an allowed
/// origin's response gets the `access-control-*` headers.
struct CORSFilter: HTTPFilter {
    func routeSelected(
        _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> FilterVerdict {
        guard let cors = route.cors else { return .continue }
        let headers = request.head.headers
        switch cors.decide(method: request.head.method, origin: headers.first(name: "origin"), requestMethod: headers.first(name: "access-control-request-method")) {
        case .none: return .continue
        case .addToResponse(let origin):
            exchange.cors = .response(origin: origin, policy: cors)
            return .continue
        case .answerPreflight(let add):
            exchange.cors = .preflight(add)
            return .reply(.corsPreflight)
        }
    }

    func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange) {
        switch exchange.cors {
        case nil: return
        case .preflight(let add)?: for (name, value) in add { headers.replaceOrAdd(name: name, value: value) }
        case .response(let origin, let policy)?: policy.responseHeaders(origin: origin, to: &headers)
        }
    }
}

/// A route that answers itself (`directResponse`, `redirect`), with its `headers.response`, as
/// Envoy's direct-response entries.
struct RouteReplyFilter: HTTPFilter {
    func routeSelected(
        _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> FilterVerdict {
        if let reply = route.directResponse {
            exchange.responseHeaders = route.responseHeaders
            return .reply(reply)
        }
        if let redirect = route.redirect {
            exchange.responseHeaders = route.responseHeaders
            let origin = LocalReply.RedirectRequest(
                scheme: environment.scheme, host: request.routing.authority, target: request.target, listenerPort: environment.port
            )
            return .reply(.redirect(redirect, request: origin))
        }
        return .continue
    }
}

/// The route's `fault` (Envoy's fault filter): a delay (flag `DI`; the request and its body wait),
/// then an abort (flag `FI`), each drawn for its share of requests.
struct FaultFilter: HTTPFilter {
    func routeSelected(
        _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> FilterVerdict {
        guard let fault = route.fault else { return .continue }
        let random = FastRandom.shared
        let decision = FaultDecision(fault, delayRoll: random.nextPercent(), abortRoll: random.nextPercent())
        if let delay = decision.delay {
            exchange.delayInjected = true
            return .delay(delay, then: decision.abort)
        }
        return decision.abort.map(FilterVerdict.reply) ?? .continue
    }

    func complete(_ exchange: HTTPExchange) {
        guard exchange.delayInjected else { return }
        let flags = exchange.record.responseFlags
        exchange.record.responseFlags = flags.isEmpty || flags == "-" ? "DI" : "DI,\(flags)"
    }
}

/// Tracing: a span begins with the upstream request (its context propagated in its headers) and
/// ends with the exchange.
struct TracingFilter: HTTPFilter {
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        guard let tracer = exchange.telemetry.tracer else { return }
        exchange.span = tracer.begin(requestHeaders: request.head.headers, upstreamHeaders: &upstream.headers, sampling: exchange.telemetry.sampling)
    }

    func complete(_ exchange: HTTPExchange) {
        if let span = exchange.span {
            exchange.telemetry.tracer?.end(span, record: exchange.record)
        }
    }
}

/// Istio's HTTP metadata exchange: a sidecar's inbound side records who called (from the headers
/// the caller's proxy added); towards a mesh endpoint this proxy says who it is.
struct PeerMetadataFilter: HTTPFilter {
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        if let inbound = environment.inbound {
            exchange.record.source = inbound.peer.source(metadataHeader: request.peerMetadata, id: request.peerMetadataID)
        } else if upstream.endpoint.tls?.isMesh == true {
            upstream.headers.add(name: PeerMetadataExchange.metadataKey, value: request.snapshot.localPeerHeaders.metadata)
            upstream.headers.add(name: PeerMetadataExchange.metadataIDKey, value: request.snapshot.localPeerHeaders.id)
        }
    }
}

/// `x-forwarded-client-cert` for the certificate the connection's mTLS verified (any a client sent
/// was already removed: only a proxy that verified a certificate may speak for it).
struct ForwardedClientCertFilter: HTTPFilter {
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        if let certificate = environment.forwardedClientCert {
            upstream.headers.add(name: "x-forwarded-client-cert", value: certificate)
        }
    }
}

/// The route's `rewrite` and header operations: the picked destination's first, then the route's
/// (Envoy's order), on the request; the same on the response, local replies included.
struct RouteHeadersFilter: HTTPFilter {
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        if let rewrite = route.rewrite {
            if let uri = rewrite.uri { upstream.target = route.rewrittenTarget(request.routing, uri: uri) }
            if let (regex, replacement) = route.regexRewrite {
                upstream.target = route.regexRewrittenTarget(request.routing, regex: regex, rewrite: replacement)
            }
            if let authority = rewrite.authority { upstream.headers.replaceOrAdd(name: "host", value: authority) }
        }
        upstream.destinationHeaders?.request?.apply(to: &upstream.headers)
        route.requestHeaders?.apply(to: &upstream.headers)
        exchange.destinationResponseHeaders = upstream.destinationHeaders?.response
        exchange.responseHeaders = route.responseHeaders
    }

    func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange) {
        exchange.destinationResponseHeaders?.apply(to: &headers)
        exchange.responseHeaders?.apply(to: &headers)
    }
}
