import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

@Suite struct RoutingTests {
    private func request(_ uri: String, host: String = "example.com", headers: [(String, String)] = [], method: HTTPMethod = .GET) -> RouteRequest {
        var all = HTTPHeaders([("host", host)])
        all.add(contentsOf: headers)
        return RouteRequest(head: HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: all), port: 8080)
    }

    private func table(_ http: [HTTPRoute], hosts: [String] = ["*"]) throws -> HTTPRouteTable {
        let snapshot = try SnapshotCompiler.compileGateway(Fixtures.configuration(http: http, hosts: hosts), generation: 1)
        return try #require(snapshot.listeners[8080]).http
    }

    @Test func firstMatchingRuleWinsAndMatchesAreORedFieldsANDed() throws {
        let table = try self.table([
            HTTPRoute(
                name: "jason",
                match: [HTTPMatchRequest(uri: .prefix("/reviews"), headers: [HeaderMatch(name: "end-user", match: .exact("jason"))])],
                route: [Fixtures.to("reviews", "v2")]
            ),
            HTTPRoute(
                name: "pages",
                match: [HTTPMatchRequest(uri: .exact("/productpage")), HTTPMatchRequest(uri: .regex("/ratings/[0-9]+"))],
                route: [Fixtures.to("productpage")]
            ),
            HTTPRoute(name: "reviews", match: [HTTPMatchRequest(uri: .prefix("/reviews"))], route: [Fixtures.to("reviews", "v1")]),
        ])
        #expect(table.route(self.request("/reviews/1", headers: [("end-user", "jason")]))?.name == "jason")
        #expect(table.route(self.request("/reviews/1", headers: [("end-user", "mary")]))?.name == "reviews")
        #expect(table.route(self.request("/productpage?x=1"))?.name == "pages")
        #expect(table.route(self.request("/ratings/42"))?.name == "pages")
        // Regex matches the whole path, not a substring.
        #expect(table.route(self.request("/ratings/42/x")) == nil)
        #expect(table.route(self.request("/productpage/extra")) == nil)
    }

    @Test func headerPresenceMethodAndQueryParams() throws {
        let table = try self.table([
            HTTPRoute(
                name: "presence",
                match: [HTTPMatchRequest(method: .exact("POST"), headers: [HeaderMatch(name: "x-canary", match: nil)])],
                route: [Fixtures.to("reviews", "v3")]
            ),
            HTTPRoute(
                name: "query",
                match: [HTTPMatchRequest(queryParams: [HeaderMatch(name: "v", match: .exact("2"))])],
                route: [Fixtures.to("reviews", "v2")]
            ),
        ])
        #expect(table.route(self.request("/", headers: [("x-canary", "")], method: .POST))?.name == "presence")
        #expect(table.route(self.request("/", headers: [("x-canary", "1")], method: .GET)) == nil)
        #expect(table.route(self.request("/a?u=1&v=2"))?.name == "query")
        #expect(table.route(self.request("/a?v=3")) == nil)
    }

    @Test func virtualHostsExactThenLongestWildcardAndPortIsIgnored() throws {
        let config = MeshConfiguration(
            gateways: [Fixtures.gateway],
            virtualServices: [
                VirtualService(meta: ResourceMeta(kind: "VirtualService", name: "a", namespace: "default"), hosts: ["api.example.com"],
                               gateways: ["default/gw"], http: [HTTPRoute(name: "exact", match: [], route: [Fixtures.to("reviews", "v1")])], tcp: []),
                VirtualService(meta: ResourceMeta(kind: "VirtualService", name: "b", namespace: "default"), hosts: ["*.example.com"],
                               gateways: ["default/gw"], http: [HTTPRoute(name: "wild", match: [], route: [Fixtures.to("reviews", "v2")])], tcp: []),
            ],
            destinationRules: Fixtures.configuration(http: []).destinationRules,
            services: Fixtures.configuration(http: []).services
        )
        let table = try #require(try SnapshotCompiler.compileGateway(config, generation: 1).listeners[8080]).http
        #expect(table.route(self.request("/", host: "api.example.com:8080"))?.name == "exact")
        #expect(table.route(self.request("/", host: "API.Example.com"))?.name == "exact")
        #expect(table.route(self.request("/", host: "web.example.com"))?.name == "wild")
        #expect(table.route(self.request("/", host: "example.org")) == nil)
    }

    @Test func clustersAreNamedAsIstioNamesThemAndSubsetsSelectEndpoints() throws {
        let snapshot = try SnapshotCompiler.compileGateway(
            Fixtures.configuration(http: [HTTPRoute(match: [], route: [Fixtures.to("reviews", "v2")])]), generation: 7
        )
        let cluster = try #require(snapshot.clusters["outbound|9080|v2|reviews.default.svc.cluster.local"])
        #expect(cluster.endpoints.map(\.hostPort) == ["127.0.9.2:9080"])
        #expect(cluster.connectTimeout == .seconds(10))
        #expect(snapshot.generation == 7)
    }

    @Test func weightedPickFollowsTheWeights() throws {
        let snapshot = try SnapshotCompiler.compileGateway(
            Fixtures.configuration(http: [], tcp: [TCPRoute(match: [L4Match(port: 31400)], route: [Fixtures.to("echo", "v1", weight: 80), Fixtures.to("echo", "v2", weight: 20)])]),
            generation: 1
        )
        let route = try #require(snapshot.listeners[31400]?.tcp.first)
        #expect(route.matches(port: 31400))
        // Every roll in 0..<100 lands by the cumulative weights: exactly 20 go to v2.
        let picks = (0..<100).compactMap { route.destinations.pick(roll: $0)?.subset }
        #expect(picks.filter { $0 == "v2" }.count == 20)
        let random = FastRandom(seed: 42)
        let sampled = (0..<10_000).compactMap { _ in route.destinations.pick(using: random)?.subset }
        let share = Double(sampled.filter { $0 == "v2" }.count) / 10_000
        #expect(share > 0.18 && share < 0.22)
    }

    /// Weights are relative (1:3 is 25/75), and a route to an undeclared subset or host compiles
    /// (validation only warns) to a missing cluster that the pick names, for a 503 NC.
    @Test func relativeWeightsAndMissingClustersArePicked() throws {
        let snapshot = try SnapshotCompiler.compileGateway(
            Fixtures.configuration(http: [], tcp: [TCPRoute(match: [L4Match(port: 31400)], route: [
                Fixtures.to("echo", "v1", weight: 1), Fixtures.to("echo", "v9", weight: 3), Fixtures.to("nosuch", nil, weight: 0),
            ])]),
            generation: 1
        )
        let destinations = try #require(snapshot.listeners[31400]?.tcp.first?.destinations)
        #expect(destinations.totalWeight == 4)
        let names = (0..<4).compactMap { destinations.pickTarget(roll: $0)?.name }
        #expect(names == [
            "outbound|9000|v1|echo.default.svc.cluster.local",
            "outbound|9000|v9|echo.default.svc.cluster.local",
            "outbound|9000|v9|echo.default.svc.cluster.local",
            "outbound|9000|v9|echo.default.svc.cluster.local",
        ])
        #expect(destinations.pick(roll: 1) == nil, "a missing cluster is no Cluster")
        #expect(destinations.clusters.map(\.name) == ["outbound|9000|v1|echo.default.svc.cluster.local"])
        #expect(snapshot.clusters["outbound|9000|v9|echo.default.svc.cluster.local"] == nil)
    }

    /// A destination without a port to a service with several takes the gateway port the request
    /// came in on, as Istio does; a service without that port is a missing cluster (503 NC).
    @Test func aPortlessDestinationToAServiceWithSeveralPortsTakesTheListenerPort() throws {
        var config = Fixtures.configuration(http: [HTTPRoute(match: [], route: [Fixtures.to("multi")])])
        let listener = try #require(config.gateways.first?.servers.first?.portNumber)
        var multi = Fixtures.service("multi", port: 1, versions: ["v1"])
        multi.ports = [ServicePort(number: 1, name: "http-one", protocol: .http), ServicePort(number: listener, name: "http", protocol: .http)]
        config.services.append(multi)
        let snapshot = try SnapshotCompiler.compileGateway(config, generation: 1)
        #expect(snapshot.clusters["outbound|\(listener)||multi.default.svc.cluster.local"] != nil)
        multi.ports = [ServicePort(number: 1, name: "http-one", protocol: .http), ServicePort(number: 2, name: "http-two", protocol: .http)]
        config.services[config.services.count - 1] = multi
        let other = try SnapshotCompiler.compileGateway(config, generation: 2)
        let route = try #require(other.listeners[listener]?.http.route(self.request("/")))
        #expect(route.destinations.pickTarget()?.name == "outbound|\(listener)||multi.default.svc.cluster.local")
        #expect(route.destinations.pick() == nil)
    }

    @Test func tlsRouteMatchEntriesPairTheirOwnSNIHostsAndPort() {
        let route = TLSRoute(
            match: [TLSMatch(sniHosts: ["a.example.com"], port: 443), TLSMatch(sniHosts: ["*.internal"], port: 8443)],
            route: []
        )
        let entry = TLSRouteEntry(name: "r", route: route, listenerGateways: [], destinations: WeightedClusters([]))
        #expect(entry.matches(serverName: "a.example.com", port: 443))
        #expect(entry.matches(serverName: "db.internal", port: 8443))
        #expect(!entry.matches(serverName: "a.example.com", port: 8443), "a's port is 443 only")
        #expect(!entry.matches(serverName: "db.internal", port: 443))
    }

    @Test func hopByHopHeadersAndTheOnesConnectionNamesAreNotForwarded() {
        var summary = HopByHop.RequestSummary()
        let headers = HTTPHeaders([
            ("X-Secret", "s"), ("Host", "h"), ("Connection", "keep-alive, X-Secret"), ("TE", "gzip"),
            ("X-Forwarded-For", "1.2.3.4"), ("Expect", "100-continue"), ("User-Agent", "ua"), ("te", "trailers"),
            ("X-Forwarded-Client-Cert", "By=forged"),
        ])
        let out = HopByHop.upstreamRequestHeaders(headers, clientIP: "10.0.0.1", scheme: "https", summary: &summary)
        // `te: trailers` (gRPC's) goes on; any other TE is hop-by-hop.
        #expect(out.map(\.name) == ["Host", "User-Agent", "te", "x-forwarded-for", "x-forwarded-proto", "x-request-id"])
        #expect(out.first(name: "x-forwarded-for") == "1.2.3.4, 10.0.0.1")
        // A client's x-forwarded-proto is replaced by this hop's scheme, unless the peer is a trusted mesh proxy.
        let forwarded = HTTPHeaders([("Host", "h"), ("X-Forwarded-Proto", "http")])
        var other = HopByHop.RequestSummary()
        #expect(HopByHop.upstreamRequestHeaders(forwarded, clientIP: "c", scheme: "https", summary: &other)[canonicalForm: "x-forwarded-proto"] == ["https"])
        let kept = HopByHop.upstreamRequestHeaders(forwarded, clientIP: "c", scheme: "https", trustedPeer: true, summary: &other)
        #expect(kept[canonicalForm: "x-forwarded-proto"] == ["http"])
        // A sidecar's inbound side consumes Istio's metadata exchange headers in the same pass.
        let exchange = HTTPHeaders([("Host", "h"), ("X-Envoy-Peer-Metadata", "Cg=="), ("x-envoy-peer-metadata-id", "sidecar~1")])
        var consumed = HopByHop.RequestSummary()
        let inbound = HopByHop.upstreamRequestHeaders(exchange, clientIP: "c", scheme: "https", consumePeerMetadata: true, summary: &consumed)
        #expect(consumed.peerMetadata == "Cg==" && consumed.peerMetadataID == "sidecar~1")
        #expect(!inbound.contains(name: "x-envoy-peer-metadata") && !inbound.contains(name: "x-envoy-peer-metadata-id"))
        #expect(HopByHop.upstreamRequestHeaders(exchange, clientIP: "c", scheme: "https", summary: &other).contains(name: "x-envoy-peer-metadata"))
        #expect(summary.host == "h" && summary.userAgent == "ua" && summary.expectsContinue)
        var framing = HopByHop.FramingHeaders()
        let response = HopByHop.downstreamResponseHeaders(
            HTTPHeaders([("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Transfer-Encoding", "Chunked"), ("X-Keep", "2")]),
            framing: &framing
        )
        // Framing headers are recorded, never copied: the proxy writes its own.
        #expect(response.map(\.name) == ["X-Keep"])
        #expect(framing.transferEncoding == "Chunked" && framing.contentLength == nil)
    }

    @Test func requestIDsAreVersion4UUIDs() {
        let id = RequestID.make()
        #expect(id.count == 36)
        let parts = id.split(separator: "-")
        #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
        #expect(parts[2].first == "4")
        #expect("89ab".contains(parts[3].first!))
        #expect(RequestID.make() != id)
    }
}
