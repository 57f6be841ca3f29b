import Foundation
import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// Trace propagation (B3 multi, `b3`, `traceparent`), sampling, and the Zipkin v2 span.
@Suite struct TracingTests {
    /// A deterministic source of "random" values, in order.
    final class Draws {
        private var values: [UInt64]
        init(_ values: [UInt64]) { self.values = values }
        func next() -> UInt64 { self.values.removeFirst() }
    }

    static let clientTrace = "463ac35c9f6413ad48485a3953bb6124"
    static let clientSpan = "a2fb4a1d1a96d312"

    private func begin(_ headers: [(String, String)], sampling: Double = 1, draws: [UInt64]) -> (TraceContext, HTTPHeaders) {
        let request = HTTPHeaders(headers)
        var upstream = request  // the proxy's upstream copy starts as the client's headers
        let incoming = TracePropagation.extract(request)
        let random = Draws(draws)
        let context = TracePropagation.start(incoming, samplingPercentage: sampling, random: random.next)
        TracePropagation.inject(context, singleB3: incoming.sentSingleB3, replacing: incoming.sawTraceHeaders, into: &upstream)
        return (context, upstream)
    }

    @Test func joinsAClientsB3TraceAsAChildOfItsSpan() {
        let (context, upstream) = self.begin(
            [("X-B3-TraceId", Self.clientTrace), ("X-B3-SpanId", Self.clientSpan), ("X-B3-Sampled", "1"), ("tracestate", "vendor=x")],
            sampling: 0,
            draws: [0x0102_0304_0506_0708]
        )
        #expect(context.traceID.hex == Self.clientTrace)
        #expect(context.spanID == 0x0102_0304_0506_0708)
        #expect(context.parentSpanID == 0xa2fb_4a1d_1a96_d312)
        #expect(context.sampled)  // the client's decision wins over 0% sampling
        #expect(upstream["x-b3-traceid"] == [Self.clientTrace])
        #expect(upstream["x-b3-spanid"] == ["0102030405060708"])
        #expect(upstream["x-b3-parentspanid"] == [Self.clientSpan])
        #expect(upstream["x-b3-sampled"] == ["1"])
        #expect(upstream["x-b3-flags"] == [])
        #expect(upstream["b3"] == [])
        #expect(upstream["traceparent"] == ["00-\(Self.clientTrace)-0102030405060708-01"])
        #expect(upstream["tracestate"] == ["vendor=x"])
    }

    @Test func aClientsNoIsKeptAndPropagated() {
        let (context, upstream) = self.begin(
            [("x-b3-traceid", Self.clientTrace), ("x-b3-spanid", Self.clientSpan), ("x-b3-sampled", "0")],
            sampling: 100,
            draws: [7]
        )
        #expect(!context.sampled)
        #expect(upstream["x-b3-sampled"] == ["0"])
        #expect(upstream["traceparent"] == ["00-\(Self.clientTrace)-0000000000000007-00"])
    }

    @Test func withoutHeadersANew128BitTraceStartsSampledByPercentage() {
        // Draws: span id, sampling draw, trace id high, trace id low.
        let (sampled, upstream) = self.begin([], sampling: 1, draws: [0xAB, 99, 0x1111, 0x2222])
        #expect(sampled.sampled)  // 99 % 10000 < 100
        #expect(sampled.parentSpanID == nil)
        #expect(sampled.traceID.hex == "0000000000001111" + "0000000000002222")
        #expect(upstream["x-b3-traceid"] == ["00000000000011110000000000002222"])
        #expect(upstream["x-b3-spanid"] == ["00000000000000ab"])
        #expect(upstream["x-b3-parentspanid"] == [])
        #expect(upstream["x-b3-sampled"] == ["1"])
        #expect(upstream["traceparent"] == ["00-00000000000011110000000000002222-00000000000000ab-01"])

        let (unsampled, _) = self.begin([], sampling: 1, draws: [0xAB, 100, 0x1111, 0x2222])
        #expect(!unsampled.sampled)
    }

    @Test(arguments: [
        (0.0, UInt64(0), false), (100.0, UInt64.max, true), (1.0, 99, true), (1.0, 100, false),
        (0.01, 0, true), (0.01, 1, false), (50.0, 14_999, true), (50.0, 15_000, false),
    ])
    func samplingPercentageHasIstiosPrecision(percentage: Double, draw: UInt64, sampled: Bool) {
        #expect(TracePropagation.shouldSample(percentage: percentage, draw: draw) == sampled)
    }

    @Test func singleB3IsReadAndWrittenBackInItsForm() {
        let (context, upstream) = self.begin(
            [("b3", "\(Self.clientTrace)-\(Self.clientSpan)-d-0000000000000001")], sampling: 0, draws: [0x42]
        )
        #expect(context.traceID.hex == Self.clientTrace)
        #expect(context.parentSpanID == 0xa2fb_4a1d_1a96_d312)
        #expect(context.sampled && context.debug)
        #expect(upstream["b3"] == ["\(Self.clientTrace)-0000000000000042-d-\(Self.clientSpan)"])
        #expect(upstream["x-b3-flags"] == ["1"])
        #expect(upstream["x-b3-sampled"] == ["1"])
    }

    @Test func aSamplingDecisionAloneAppliesToANewTrace() {
        let (denied, _) = self.begin([("b3", "0")], sampling: 100, draws: [1, 2, 3])
        #expect(!denied.sampled)
        let (forced, _) = self.begin([("x-b3-sampled", "1")], sampling: 0, draws: [1, 2, 3])
        #expect(forced.sampled)
        #expect(forced.parentSpanID == nil)
    }

    @Test func w3cTraceparentIsJoinedWhenNoB3CameIn() {
        let (context, upstream) = self.begin(
            [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("tracestate", "congo=t61rcWkgMzE")],
            sampling: 0, draws: [0x99]
        )
        #expect(context.traceID.hex == "0af7651916cd43dd8448eb211c80319c")
        #expect(context.parentSpanID == 0xb7ad_6b71_6920_3331)
        #expect(context.sampled)
        #expect(upstream["traceparent"] == ["00-0af7651916cd43dd8448eb211c80319c-0000000000000099-01"])
        #expect(upstream["x-b3-traceid"] == ["0af7651916cd43dd8448eb211c80319c"])
        #expect(upstream["x-b3-parentspanid"] == ["b7ad6b7169203331"])
        #expect(upstream["tracestate"] == ["congo=t61rcWkgMzE"])
    }

    @Test func b3WinsOverTraceparent() {
        let (context, upstream) = self.begin(
            [
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
                ("x-b3-traceid", Self.clientTrace), ("x-b3-spanid", Self.clientSpan), ("x-b3-sampled", "1"),
            ],
            sampling: 0, draws: [5]
        )
        #expect(context.traceID.hex == Self.clientTrace)
        #expect(context.sampled)
        #expect(upstream["traceparent"] == ["00-\(Self.clientTrace)-0000000000000005-01"])
    }

    @Test func a64BitB3TraceIdStays64BitInB3AndIsPaddedInTraceparent() {
        let (context, upstream) = self.begin(
            [("x-b3-traceid", "48485a3953bb6124"), ("x-b3-spanid", Self.clientSpan)], sampling: 100, draws: [5, 0]
        )
        #expect(context.traceID.hex == "48485a3953bb6124")
        #expect(upstream["x-b3-traceid"] == ["48485a3953bb6124"])
        #expect(upstream["traceparent"] == ["00-000000000000000048485a3953bb6124-0000000000000005-01"])
    }

    @Test(arguments: [
        [("x-b3-traceid", "xyz"), ("x-b3-spanid", "a2fb4a1d1a96d312")],
        [("x-b3-traceid", "00000000000000000000000000000000"), ("x-b3-spanid", "a2fb4a1d1a96d312")],
        [("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"), ("x-b3-spanid", "0000000000000000")],
        [("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124")],
        [("b3", "463ac35c9f6413ad-zz")],
        [("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
        [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")],
        [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01")],
    ])
    func invalidContextsStartANewTraceAndAreReplaced(headers: [(String, String)]) {
        let (context, upstream) = self.begin(headers, sampling: 100, draws: [0x77, 0, 0x1, 0x2])
        #expect(context.traceID.hex == "00000000000000010000000000000002")
        #expect(context.parentSpanID == nil)
        #expect(upstream["x-b3-traceid"] == ["00000000000000010000000000000002"])
        #expect(upstream["x-b3-spanid"] == ["0000000000000077"])
        #expect(upstream["traceparent"].count == 1)
    }

    @Test func aLaterTraceparentVersionMayAppendFields() {
        let parsed = TracePropagation.parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later")
        #expect(parsed?.spanID == 0xb7ad_6b71_6920_3331)
    }

    // MARK: Spans

    /// The exchange of the access log's golden HTTP line.
    static func record() -> HTTPExchangeRecord { AccessLogTests.egressHTTPRecord() }

    static func span(_ configuration: TracerConfiguration, headerTags: [(tag: String, value: String)] = []) -> Tracer.Span {
        let context = TraceContext(
            traceID: TraceID(high: 0x463a_c35c_9f64_13ad, low: 0x4848_5a39_53bb_6124),
            spanID: 0x0102_0304_0506_0708,
            parentSpanID: 0xa2fb_4a1d_1a96_d312,
            sampled: true
        )
        return Tracer.Span(context: context, scheme: "http", downstreamCluster: nil, headerTags: headerTags, configuration: configuration)
    }

    static func configuration(customTags: [String: CustomTag] = [:]) -> TracerConfiguration {
        var settings = MeshSettings()
        settings.zipkinAddress = "127.0.0.1:9411"
        let telemetry = EffectiveTelemetry(
            samplingPercentage: 100, zipkinAddress: "127.0.0.1:9411", spanReporting: true, customTags: customTags,
            accessLogFile: nil, accessLogEncoding: .text, reportingInterval: .seconds(15), metrics: [:]
        )
        return TracerConfiguration(settings: settings, telemetry: telemetry, environment: { $0 == "POD_ZONE" ? "zone-a" : nil })
    }

    @Test func aGatewaySpanIsAClientSpanNamedByTheRouteDecoratorWithEnvoysAndIstiosTags() throws {
        let configuration = Self.configuration()
        let span = configuration.span(Self.span(configuration), record: Self.record())
        let json = ZipkinSpan.json([span])
        #expect(json == """
            [{"traceId":"463ac35c9f6413ad48485a3953bb6124","parentId":"a2fb4a1d1a96d312","id":"0102030405060708",\
            "kind":"CLIENT","name":"edition.cnn.com:80/*","timestamp":1704814547283000,"duration":2700,\
            "localEndpoint":{"serviceName":"istio-ingressgateway.istio-system","ipv4":"172.30.239.16","port":80},\
            "tags":{"component":"proxy","downstream_cluster":"-","guid:x-request-id":"6c01d65f-...",\
            "http.method":"GET","http.protocol":"HTTP/1.1","http.status_code":"301",\
            "http.url":"http://edition.cnn.com/politics","istio.canonical_revision":"latest",\
            "istio.canonical_service":"istio-ingressgateway","istio.cluster_id":"Kubernetes",\
            "istio.mesh_id":"cluster.local","istio.namespace":"istio-system",\
            "node_id":"router~172.30.239.16~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",\
            "peer.address":"172.30.239.55","request_size":"0","response_flags":"-","response_size":"0",\
            "upstream_address":"151.101.195.5:80","upstream_cluster":"outbound|80||edition.cnn.com",\
            "upstream_cluster.name":"outbound|80||edition.cnn.com","user_agent":"curl/7.87.0-DEV"}}]
            """)
        let parsed = try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(parsed.count == 1)
    }

    @Test func aServerErrorIsTaggedAndTheURLPathIsCutAt256() {
        let configuration = Self.configuration()
        var record = Self.record()
        record.responseCode = 503
        record.responseFlags = "UF"
        record.path = "/" + String(repeating: "a", count: 300)
        let span = configuration.span(Self.span(configuration), record: record)
        #expect(span.tags["error"] == "true")
        #expect(span.tags["response_flags"] == "UF")
        #expect(span.tags["http.url"] == "http://edition.cnn.com/" + String(repeating: "a", count: 255))

        record.responseCode = 0
        #expect(configuration.span(Self.span(configuration), record: record).tags["error"] == "true")
        record.responseCode = 404
        #expect(configuration.span(Self.span(configuration), record: record).tags["error"] == nil)
    }

    @Test func withoutAClusterTheSpanIsNamedByTheAuthority() {
        #expect(TracerConfiguration.spanName(cluster: nil, authority: "example.com") == "example.com")
        #expect(TracerConfiguration.spanName(cluster: "outbound|9080||reviews.default.svc.cluster.local", authority: nil)
            == "reviews.default.svc.cluster.local:9080/*")
    }

    @Test func customTagsAreLiteralFromTheEnvironmentOrFromAHeader() {
        let configuration = Self.configuration(customTags: [
            "team": .literal("edge"),
            "zone": .environment(name: "POD_ZONE", defaultValue: "none"),
            "missing": .environment(name: "NOT_SET", defaultValue: "fallback"),
            "user": .header(name: "X-User", defaultValue: "anonymous"),
        ])
        #expect(configuration.fixedTags["team"] == "edge")
        #expect(configuration.fixedTags["zone"] == "zone-a")
        #expect(configuration.fixedTags["missing"] == "fallback")
        #expect(configuration.headerTags.map(\.header) == ["x-user"])
        let span = configuration.span(Self.span(configuration, headerTags: [("user", "alice")]), record: Self.record())
        #expect(span.tags["user"] == "alice")
        #expect(span.tags["team"] == "edge")
    }

    @Test func beginReturnsASpanOnlyWhenSampledAndReporting() {
        let tracer = Tracer(log: MeshLog(minimumLevel: .error))
        defer { tracer.shutdown(timeoutSeconds: 1) }
        let request = HTTPHeaders([("x-b3-sampled", "1"), ("x-user", "bob"), ("x-forwarded-proto", "https")])
        var upstream = HTTPHeaders()
        #expect(tracer.begin(requestHeaders: request, upstreamHeaders: &upstream, sampling: 100) == nil)  // no collector
        #expect(upstream["x-b3-sampled"] == ["1"])  // headers propagate anyway

        tracer.configure(Self.configuration(customTags: ["user": .header(name: "x-user", defaultValue: nil)]))
        var second = HTTPHeaders()
        let span = tracer.begin(requestHeaders: request, upstreamHeaders: &second, sampling: 0)
        #expect(span?.scheme == "https")
        #expect(span?.headerTags.map(\.value) == ["bob"])
        var third = HTTPHeaders()
        #expect(tracer.begin(requestHeaders: HTTPHeaders([("x-b3-sampled", "0")]), upstreamHeaders: &third, sampling: 100) == nil)
    }

    /// A closed port: the reporter's POST fails, the spans are dropped and counted, and `end`
    /// never waits for any of it.
    @Test func anUnreachableCollectorDropsAndCountsSpans() throws {
        let tracer = Tracer(log: MeshLog(minimumLevel: .error), sendTimeout: 2)
        defer { tracer.shutdown(timeoutSeconds: 3) }
        let port = try closedPort()
        var settings = MeshSettings()
        settings.zipkinAddress = "127.0.0.1:\(port)"
        tracer.configure(settings: settings, telemetry: effectiveTelemetry(for: settings, policies: []))
        for _ in 0..<5 {
            var upstream = HTTPHeaders()
            let span = try #require(tracer.begin(requestHeaders: HTTPHeaders(), upstreamHeaders: &upstream, sampling: 100))
            tracer.end(span, record: Self.record())
        }
        try waitUntil { tracer.droppedSpans == 5 }
        #expect(tracer.failedReports >= 1)
        #expect(tracer.reportedSpans == 0)
    }
}

/// A loopback port nothing listens on (bound, then closed).
func closedPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else { throw CancellationError() }
    return Int(UInt16(bigEndian: address.sin_port))
}
