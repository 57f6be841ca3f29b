import MeshConfig
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import MeshCore

/// Each HTTP filter's phases, called directly (the filters are synchronous values: no socket), and
/// the chain's local answers through the real downstream pipeline on an EmbeddedChannel.
@Suite struct FilterTests {
    private let loop = EmbeddedEventLoop()

    private func environment(tlsServer: TLSServerPlan? = nil, snapshot: Snapshot, forwardedClientCert: String? = nil) -> HTTPProxyEnvironment {
        var environment = HTTPProxyEnvironment(
            holder: SnapshotHolder(snapshot), pools: HTTPConnectionPools(group: self.loop),
            metrics: MeshMetrics(group: self.loop, sourceLabels: ""), log: MeshLog(minimumLevel: .error), port: 8080, tlsServer: tlsServer
        )
        environment.forwardedClientCert = forwardedClientCert
        return environment
    }

    /// A request for `uri` on host `host` with `headers`, against a gateway with `routes`.
    private func request(
        _ uri: String, method: HTTPMethod = .GET, host: String = "gw.example", headers: [(String, String)] = [], routes: [HTTPRoute]
    ) throws -> (FilterRequest, CompiledHTTPRoute?, Snapshot) {
        let snapshot = try SnapshotCompiler.compileGateway(Fixtures.configuration(http: routes), generation: 1)
        let plan = try #require(snapshot.listeners[8080])
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders([("host", host)] + headers))
        head.uri = uri
        let routing = RouteRequest(head: head, host: host, port: 8080)
        let request = FilterRequest(
            head: head, target: uri, routing: routing, summary: HopByHop.RequestSummary(), snapshot: snapshot,
            httpsRedirectHosts: plan.httpsRedirectHosts
        )
        return (request, plan.http.route(routing), snapshot)
    }

    private func exchange(_ head: HTTPRequestHead) -> HTTPExchange {
        HTTPExchange(requestHead: head, keepAlive: true, isHead: false, started: .now())
    }

    private func upstream(_ headers: HTTPHeaders, target: String, snapshot: Snapshot, destination: DestinationHeaders? = nil) throws -> UpstreamRequest {
        let cluster = try #require(snapshot.clusters["outbound|9080||reviews.default.svc.cluster.local"])
        return UpstreamRequest(headers: headers, target: target, cluster: cluster, endpoint: cluster.endpoints[0], destinationHeaders: destination)
    }

    @Test func misdirectedRequestFilterAnswers421ForAHostTheCertificateDoesNotServe() throws {
        let (request, _, snapshot) = try self.request("/", host: "other.example", routes: [])
        let server = TLSServerPlan(hosts: ["gw.example"], mode: .simple, protocol: .https, context: nil, certificate: nil)
        let filter = MisdirectedRequestFilter()
        let verdict = filter.requestHeaders(request, self.exchange(request.head), self.environment(tlsServer: server, snapshot: snapshot))
        guard case .reply(let reply) = verdict else { Issue.record("421 expected"); return }
        #expect(reply.status == .misdirectedRequest)
        let served = try self.request("/", host: "gw.example", routes: []).0
        guard case .continue = filter.requestHeaders(served, self.exchange(served.head), self.environment(tlsServer: server, snapshot: snapshot)) else {
            Issue.record("a served host goes on")
            return
        }
    }

    @Test func corsFilterAnswersAPreflightAndDecoratesLocalAndUpstreamResponses() throws {
        let cors = CORSPolicy(allowOrigins: [.exact("https://app.example")], allowMethods: ["PUT"])
        let routes = [HTTPRoute(match: [], route: [Fixtures.to("reviews")], cors: cors)]
        let (preflight, route, snapshot) = try self.request(
            "/x", method: .OPTIONS, headers: [("origin", "https://app.example"), ("access-control-request-method", "PUT")], routes: routes
        )
        let exchange = self.exchange(preflight.head)
        let environment = self.environment(snapshot: snapshot)
        guard case .reply(let reply) = CORSFilter().routeSelected(try #require(route), preflight, exchange, environment) else {
            Issue.record("the preflight is answered")
            return
        }
        #expect(reply.details == "cors_response")
        var headers = HTTPHeaders([("access-control-allow-origin", "*")])
        CORSFilter().responseHeaders(&headers, exchange)
        #expect(headers[canonicalForm: "access-control-allow-origin"] == ["https://app.example"])
        #expect(headers.first(name: "access-control-allow-methods") == "PUT")
    }

    @Test func routeReplyFilterAnswersDirectResponsesAndRedirectsWithTheRoutesResponseHeaders() throws {
        let routes = [
            HTTPRoute(
                match: [HTTPMatchRequest(uri: .prefix("/down"))], route: [],
                responseHeaders: HeaderOperations(set: [.init(name: "retry-after", value: "60")]),
                directResponse: HTTPDirectResponse(status: 503, body: Array("down".utf8))
            ),
            HTTPRoute(match: [], route: [], redirect: HTTPRedirect(uri: "/new")),
        ]
        let (down, downRoute, snapshot) = try self.request("/down", routes: routes)
        let exchange = self.exchange(down.head)
        let environment = self.environment(snapshot: snapshot)
        guard case .reply(let reply) = RouteReplyFilter().routeSelected(try #require(downRoute), down, exchange, environment) else {
            Issue.record("a direct response")
            return
        }
        #expect(reply.status.code == 503 && reply.body == Array("down".utf8))
        var headers = HTTPHeaders()
        RouteHeadersFilter().responseHeaders(&headers, exchange)
        #expect(headers.first(name: "retry-after") == "60")
        let (old, oldRoute, _) = try self.request("/old?q", routes: routes)
        guard case .reply(let redirect) = RouteReplyFilter().routeSelected(try #require(oldRoute), old, self.exchange(old.head), environment) else {
            Issue.record("a redirect")
            return
        }
        #expect(redirect.status == .movedPermanently && redirect.location == "http://gw.example/new?q")
    }

    @Test func faultFilterDelaysThenAbortsAndFlagsTheRecord() throws {
        let fault = HTTPFaultInjection(delay: .init(fixedDelay: .milliseconds(20), percentage: 100), abort: .init(status: .http(503), percentage: 100))
        let (request, route, snapshot) = try self.request("/", routes: [HTTPRoute(match: [], route: [Fixtures.to("reviews")], fault: fault)])
        let exchange = self.exchange(request.head)
        guard case .delay(let delay, let then?) = FaultFilter().routeSelected(try #require(route), request, exchange, self.environment(snapshot: snapshot)) else {
            Issue.record("a delay, then an abort")
            return
        }
        #expect(delay == .milliseconds(20) && then.flags == "FI")
        exchange.record.responseFlags = "FI"
        FaultFilter().complete(exchange)
        #expect(exchange.record.responseFlags == "DI,FI")
        // No fault on the route: nothing happens.
        let (plain, plainRoute, _) = try self.request("/", routes: [HTTPRoute(match: [], route: [Fixtures.to("reviews")])])
        guard case .continue = FaultFilter().routeSelected(try #require(plainRoute), plain, self.exchange(plain.head), self.environment(snapshot: snapshot)) else {
            Issue.record("no fault, no verdict")
            return
        }
    }

    @Test func upstreamRequestFiltersShapeTheHeadersInEnvoysOrder() throws {
        let routes = [
            HTTPRoute(
                match: [HTTPMatchRequest(uri: .prefix("/api/"))], route: [Fixtures.to("reviews")], rewrite: HTTPRewrite(uri: "/", authority: "internal"),
                requestHeaders: HeaderOperations(set: [.init(name: "x-who", value: "route")], remove: ["x-secret"])
            )
        ]
        let (request, route, snapshot) = try self.request("/api/v1?q", headers: [("x-secret", "s")], routes: routes)
        let exchange = self.exchange(request.head)
        let environment = self.environment(snapshot: snapshot, forwardedClientCert: "By=spiffe://a;URI=spiffe://b")
        var upstream = try self.upstream(
            HTTPHeaders([("host", "gw.example"), ("x-secret", "s")]), target: request.target, snapshot: snapshot,
            destination: DestinationHeaders(request: HeaderOperations(set: [.init(name: "x-who", value: "destination")]), response: nil)
        )
        HTTPFilterChain.upstreamRequest(&upstream, try #require(route), request, exchange, environment)
        #expect(upstream.target == "/v1?q")
        #expect(upstream.headers.first(name: "host") == "internal")
        // The destination's set runs first; the route's set wins.
        #expect(upstream.headers[canonicalForm: "x-who"] == ["route"])
        #expect(!upstream.headers.contains(name: "x-secret"))
        #expect(upstream.headers.first(name: "x-forwarded-client-cert") == "By=spiffe://a;URI=spiffe://b")
        // The fixture's endpoints have no sidecar: no peer metadata goes to them.
        #expect(!upstream.headers.contains(name: PeerMetadataExchange.metadataKey))
    }

    @Test func theChainAnswersThroughTheRealDownstreamPipeline() throws {
        let routes = [
            HTTPRoute(
                match: [HTTPMatchRequest(uri: .prefix("/abort"))], route: [Fixtures.to("reviews")],
                fault: HTTPFaultInjection(abort: .init(status: .http(418), percentage: 100))
            ),
            HTTPRoute(match: [], route: [Fixtures.to("reviews")], cors: CORSPolicy(allowOrigins: [.prefix("https://")])),
        ]
        let snapshot = try SnapshotCompiler.compileGateway(Fixtures.configuration(http: routes), generation: 1)
        let channel = EmbeddedChannel(loop: self.loop)
        try ConnectionSetup.configureHTTP1(channel: channel, environment: self.environment(snapshot: snapshot), idleTimeout: .hours(1))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        func send(_ text: String) throws -> String {
            try channel.writeInbound(ByteBuffer(string: text))
            var output = ""
            while let data = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let bytes) = data { output += String(buffer: bytes) }
            }
            return output
        }
        let aborted = try send("GET /abort HTTP/1.1\r\nHost: gw.example\r\n\r\n")
        #expect(aborted.hasPrefix("HTTP/1.1 418 I'm a teapot\r\n") && aborted.contains("x-meshgate-response-flags: FI\r\n"))
        let preflight = try send("OPTIONS /x HTTP/1.1\r\nHost: gw.example\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\r\n")
        #expect(preflight.hasPrefix("HTTP/1.1 200 OK\r\n") && preflight.contains("access-control-allow-origin: https://a.example\r\n"))
        _ = try? channel.finish()
    }
}
