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
    let summary: HopByHop.RequestSummary
    let snapshot: Snapshot
    let plan: ListenerPlan
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

/// The filters every HTTP listener runs, in order; the router follows the last.
struct HTTPFilterChain: Sendable {
    let filters: [any HTTPFilter]

    static let standard = HTTPFilterChain(filters: [
        MisdirectedRequestFilter(),
        HTTPSRedirectFilter(),
        CORSFilter(),
        RouteReplyFilter(),
        FaultFilter(),
        TracingFilter(),
        PeerMetadataFilter(),
        ForwardedClientCertFilter(),
        RouteHeadersFilter(),
    ])

    /// The first verdict that is not `continue`, from `phase` run over the filters in order; a
    /// `delay` stops the walk and reports where to resume (`next`).
    func run(from start: Int = 0, _ phase: (any HTTPFilter) -> FilterVerdict) -> (verdict: FilterVerdict, next: Int) {
        var index = start
        while index < self.filters.count {
            let verdict = phase(self.filters[index])
            index += 1
            if case .continue = verdict { continue }
            return (verdict, index)
        }
        return (.continue, index)
    }

    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        for filter in self.filters { filter.upstreamRequest(&upstream, route, request, exchange, environment) }
    }

    func responseHeaders(_ headers: inout HTTPHeaders, _ exchange: HTTPExchange) {
        for filter in self.filters.reversed() { filter.responseHeaders(&headers, exchange) }
    }

    func complete(_ exchange: HTTPExchange) {
        for filter in self.filters { filter.complete(exchange) }
    }
}
