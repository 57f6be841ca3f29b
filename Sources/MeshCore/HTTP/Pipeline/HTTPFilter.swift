import MeshConfig
import NIOCore
import NIOHTTP1

/// One request as the filters see it: its head as the client sent it (past the codec's checks), what
/// routing matches on, what the one header pass learned, and the configuration current when it began.
struct FilterRequest {
    let head: HTTPRequestHead
    /// The origin-form target (an absolute-form one's path).
    let target: String
    /// Host, path, query and headers, as routing matches them.
    let routing: RouteRequest
    let snapshot: Snapshot
    /// The listener's `tls.httpsRedirect` hosts.
    let httpsRedirectHosts: [String]
    /// What the one header pass learned that the filters and the router read (only that: the
    /// request's other header values are not retained again per request).
    let expectsContinue: Bool
    let upgrade: String?
    let peerMetadata: String?
    let peerMetadataID: String?
    /// Who is on the other end, for AuthorizationPolicy (nil when no policy applies).
    let connection: ConnectionFacts?

    init(
        head: HTTPRequestHead, target: String, routing: RouteRequest, summary: HopByHop.RequestSummary, snapshot: Snapshot,
        httpsRedirectHosts: [String], connection: ConnectionFacts? = nil
    ) {
        self.connection = connection
        self.head = head
        self.target = target
        self.routing = routing
        self.snapshot = snapshot
        self.httpsRedirectHosts = httpsRedirectHosts
        self.expectsContinue = summary.expectsContinue
        self.upgrade = summary.upgrade
        self.peerMetadata = summary.peerMetadata
        self.peerMetadataID = summary.peerMetadataID
    }
}

/// The upstream request while the filters shape it: built once, after the router picked a cluster
/// and an endpoint, before the first attempt.
struct UpstreamRequest {
    var headers: HTTPHeaders
    /// The origin-form target sent upstream.
    var target: String
    let cluster: Cluster
    let endpoint: ClusterEndpoint
    /// The picked destination's own `route[].headers`.
    let destinationHeaders: DestinationHeaders?
}

/// What a filter decides at a phase that may stop the request.
enum FilterVerdict {
    case `continue`
    /// Answer here: the rest of the chain and the router do not run.
    case reply(LocalReply)
    /// Hold the request this long, then answer `then` or, when nil, go on with the chain.
    case delay(TimeAmount, then: LocalReply?)
    /// Hold the request while the work this starts decides (a JWT seen for the first time): it is
    /// called on the request's event loop and calls `resume` there, once, with the filter's verdict.
    case suspend((EventLoop, _ resume: @escaping (FilterVerdict) -> Void) -> Void)
}

/// A step of the HTTP request path (Envoy's HTTP filters, pingora's phases): synchronous, on the
/// event loop, each phase a no-op unless the filter has something to do there. Filters are
/// stateless values shared by every connection; a request's state lives in its ``HTTPExchange``, and
/// per-route settings are compiled into the snapshot, never parsed per request.
protocol HTTPFilter: Sendable {
    /// Before routing: may answer.
    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict
    /// The route is known: may answer, or hold the request.
    func routeSelected(
        _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> FilterVerdict
    /// The upstream request, before its first attempt.
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    )
    /// A response head on its way to the client: the upstream's, or a local reply. Run in the
    /// chain's reverse order (the last filter to see the request is the first to see its response).
    func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange)
    /// The exchange is over (reported once).
    func complete(_ exchange: HTTPExchange)
}

extension HTTPFilter {
    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict {
        .continue
    }

    func routeSelected(
        _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> FilterVerdict {
        .continue
    }

    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {}

    func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange) {}

    func complete(_ exchange: HTTPExchange) {}
}

extension FilterVerdict {
    var isContinue: Bool {
        if case .continue = self { return true }
        return false
    }
}

/// The filters every HTTP listener runs, in order (the router follows the last):
///
///     MisdirectedRequest → HTTPSRedirect → JWT → Authorization → CORS → RouteReply → Fault
///       → JWT (output headers) → Authorization (an external authorizer's headers) → Tracing → PeerMetadata → ForwardedClientCert → RouteHeaders → router
///
/// Each phase calls, in that order, the filters that act in it (a phase's no-op filters are not
/// called at all); responses see them in reverse. Concrete types, called directly: the chain costs
/// a route without policies a few inlined checks, not a walk over existentials (measured:
/// `benchmarks/RESULTS.md`).
enum HTTPFilterChain {
    /// The request-headers phase from stage `start` on: the first verdict that is not `continue`
    /// and the stage to resume at after it (a suspended JWT check resumes there).
    static func requestHeaders(
        from start: Int, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> (verdict: FilterVerdict, next: Int) {
        var stage = start
        while stage < 4 {
            let verdict: FilterVerdict
            switch stage {
            case 0: verdict = MisdirectedRequestFilter().requestHeaders(request, exchange, environment)
            case 1: verdict = HTTPSRedirectFilter().requestHeaders(request, exchange, environment)
            case 2: verdict = JWTFilter().requestHeaders(request, exchange, environment)
            default: verdict = AuthorizationFilter().requestHeaders(request, exchange, environment)
            }
            stage += 1
            if !verdict.isContinue { return (verdict, stage) }
        }
        return (.continue, stage)
    }

    /// The route-selected phase from stage `start` on: the first verdict that is not `continue`
    /// and the stage to resume at after it (a delay resumes there).
    static func routeSelected(
        from start: Int, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment
    ) -> (verdict: FilterVerdict, next: Int) {
        var stage = start
        while stage < 3 {
            let verdict: FilterVerdict
            switch stage {
            case 0: verdict = CORSFilter().routeSelected(route, request, exchange, environment)
            case 1: verdict = RouteReplyFilter().routeSelected(route, request, exchange, environment)
            default: verdict = FaultFilter().routeSelected(route, request, exchange, environment)
            }
            stage += 1
            if !verdict.isContinue { return (verdict, stage) }
        }
        return (.continue, stage)
    }

    static func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        JWTFilter().upstreamRequest(&upstream, route, request, exchange, environment)
        AuthorizationFilter().upstreamRequest(&upstream, route, request, exchange, environment)
        TracingFilter().upstreamRequest(&upstream, route, request, exchange, environment)
        PeerMetadataFilter().upstreamRequest(&upstream, route, request, exchange, environment)
        ForwardedClientCertFilter().upstreamRequest(&upstream, route, request, exchange, environment)
        RouteHeadersFilter().upstreamRequest(&upstream, route, request, exchange, environment)
    }

    static func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange) {
        RouteHeadersFilter().responseHeaders(&headers, exchange)
        CORSFilter().responseHeaders(&headers, exchange)
    }

    static func complete(_ exchange: HTTPExchange) {
        FaultFilter().complete(exchange)
        TracingFilter().complete(exchange)
    }
}
