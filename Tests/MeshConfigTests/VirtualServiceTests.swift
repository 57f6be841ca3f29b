import Testing

@testable import MeshConfig

/// VirtualService decoding and the checks of its routes.
@Suite struct VirtualServiceTests {
    /// reviews (port 9080, v1..v3 endpoints, a DestinationRule with subsets v1..v3) and ratings.
    static let services: (String, String) = (
        "conf/services.yaml",
        serviceYAML("reviews", versions: ["v1", "v2", "v3"]) + "---\n" + serviceYAML("ratings") + """
            ---
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata:
              name: reviews
            spec:
              host: reviews
              subsets:
              - name: v1
                labels: {version: v1}
              - name: v2
                labels: {version: v2}
              - name: v3
                labels: {version: v3}

            """
    )

    /// Loads `yaml` as conf/reviews.yaml beside the services.
    func loadVS(_ yaml: String) -> ConfigLoadResult {
        load([Self.services, ("conf/reviews.yaml", yaml)])
    }

    @Test func weightsNotSummingTo100AreRelativeWithAWarningOnTheRouteLine() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata:
              name: reviews
            spec:
              hosts:
              - reviews
              http:
              - match:
                - headers:
                    end-user:
                      exact: jason
                route:
                - destination:
                    host: reviews
                    subset: v1
                  weight: 50
                - destination:
                    host: reviews
                    subset: v2
                  weight: 40
            """)
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.warnings.map(\.description) == [
            "conf/reviews.yaml:13: warning: VirtualService/reviews.spec.http[0].route: weights sum to 90, not 100; they are taken as relative, as Istio does (each destination gets its weight/90 of the traffic)"
        ])
        let route = try #require(result.configuration?.virtualServices.first?.http.first?.route)
        #expect(route.map(\.weight) == [50, 40])
    }

    @Test func missingWeightsCountAsZeroAndALoneDestinationGets100() throws {
        let http = """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata:
              name: reviews
            spec:
              hosts: [reviews]
              http:
              - route:
                - destination: {host: reviews, subset: v1}
                - destination: {host: reviews, subset: v3}
                  weight: 100
              - route:
                - destination: {host: reviews, subset: v2}

            """
        let result = loadVS(http + """
              tcp:
              - route:
                - destination: {host: reviews, subset: v1}
                  weight: 80
                - destination: {host: reviews, subset: v2}
            """)
        #expect(result.find(.warning, "conf/reviews.yaml:15:", "spec.tcp[0].route: weights sum to 80, not 100").count == 1)
        #expect(result.errors.isEmpty, "\(result.lines)")
        let valid = loadVS(http)
        let vs = try #require(valid.configuration?.virtualServices.first)
        #expect(vs.http[0].route.map(\.weight) == [0, 100])
        #expect(vs.http[1].route.map(\.weight) == [100])
        #expect(vs.http[0].location == SourceLocation(file: "conf/reviews.yaml", line: 8))
        #expect(vs.http[1].location == SourceLocation(file: "conf/reviews.yaml", line: 12))
        #expect(vs.gateways == ["mesh"])
        #expect(vs.hosts == ["reviews.default.svc.cluster.local"])
    }

    @Test func negativeWeightIsAnError() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route:
                - destination: {host: reviews, subset: v1}
                  weight: -10
                - destination: {host: reviews, subset: v2}
                  weight: 110
            """)
        // Weights are relative shares: 110 is fine, a negative one is not.
        #expect(result.errors.map(\.description) == [
            "conf/reviews.yaml:9: error: VirtualService/reviews.spec.http[0].route[0].weight: weight -10 is negative; a weight is a relative share from 0 to 2147483647"
        ])
    }

    @Test func undeclaredDestinationHostIsNamedWithItsFQDNAndASuggestion() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews, namespace: bookinfo}
            spec:
              hosts: [reviews]
              http:
              - route:
                - destination:
                    host: reviews
              - route:
                - destination:
                    host: reveiws.default.svc.cluster.local
            """)
        #expect(result.errors.isEmpty)
        #expect(result.warnings.map(\.description) == [
            "conf/reviews.yaml:9: warning: VirtualService/reviews.spec.http[0].route[0].destination.host: host reviews resolves to reviews.bookinfo.svc.cluster.local, which no ServiceEntry or Service declares; requests routed there get 503 (NC, cluster_not_found); did you mean reviews.default.svc.cluster.local?",
            "conf/reviews.yaml:12: warning: VirtualService/reviews.spec.http[1].route[0].destination.host: no ServiceEntry or Service declares host reveiws.default.svc.cluster.local; requests routed there get 503 (NC, cluster_not_found); did you mean reviews.default.svc.cluster.local?",
        ])
    }

    @Test func destinationPortMustBeOneOfTheService() {
        let result = load([
            Self.services,
            ("conf/two-ports.yaml", """
                apiVersion: networking.istio.io/v1
                kind: ServiceEntry
                metadata: {name: api}
                spec:
                  hosts: [api.example.com]
                  ports:
                  - {number: 80, name: http, protocol: HTTP}
                  - {number: 443, name: https, protocol: HTTPS}
                  resolution: DNS
                """),
            ("conf/vs.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: reviews}
                spec:
                  hosts: [reviews]
                  http:
                  - route:
                    - destination:
                        host: reviews
                        port: {number: 9090}
                  - route:
                    - destination:
                        host: api.example.com
                  - route:
                    - destination:
                        host: api.example.com
                        port: 80
                """),
        ])
        #expect(result.find(.warning, "conf/vs.yaml:10: warning: VirtualService/reviews.spec.http[0].route[0].destination.port: reviews.default.svc.cluster.local has no port 9090 (its ports: 9080); requests routed there get 503 (NC, cluster_not_found)").count == 1)
        #expect(result.find(.warning, "conf/vs.yaml:12: warning: VirtualService/reviews.spec.http[1].route[0].destination.port: api.example.com has several ports (80, 443) and this destination names none: as in Istio, a gateway then uses the port the request came in on (503 NC if the service has no such port), a sidecar the first; choose one with port: {number: …}").count == 1)
        #expect(result.errors.map(\.description) == [
            "conf/vs.yaml:17: error: VirtualService/reviews.spec.http[2].route[0].destination.port: port is a map: write port: {number: 80}",
        ])
    }

    @Test func anUndefinedSubsetIsAWarningAndAnErrorWhenStrict() {
        let yaml = """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route:
                - destination: {host: reviews, subset: v4}
              - route:
                - destination: {host: ratings, subset: v1}
            """
        let result = loadVS(yaml)
        let expected = [
            "conf/reviews.yaml:8: warning: VirtualService/reviews.spec.http[0].route[0].destination.subset: DestinationRule/reviews (conf/services.yaml:74) for reviews.default.svc.cluster.local has no subset 'v4' (its subsets: v1, v2, v3); requests routed there get 503 (NC, cluster_not_found)",
            "conf/reviews.yaml:10: warning: VirtualService/reviews.spec.http[1].route[0].destination.subset: no DestinationRule for ratings.default.svc.cluster.local defines subset 'v1'; requests routed there get 503 (NC, cluster_not_found)",
        ]
        #expect(result.errors.isEmpty)
        #expect(result.warnings.map(\.description) == expected)
        #expect(result.configuration != nil)
        // `validate --strict` keeps them errors.
        let strict = load([Self.services, ("conf/reviews.yaml", yaml)], options: LoadOptions(strict: true))
        #expect(strict.errors.map(\.description) == expected.map { $0.replacingOccurrences(of: ": warning: ", with: ": error: ") })
        #expect(strict.configuration == nil)
    }

    @Test func invalidRegexReportsRE2sMessageAtItsLine() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - match:
                - uri:
                    regex: "/api/(v1|v2"
                  headers:
                    x-token:
                      regex: "(a+)\\\\1"
                  queryParams:
                    q:
                      regex: "foo(?=bar)"
                - authority:
                    regex: "h{1001}"
                route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/reviews.yaml:9: error: VirtualService/reviews.spec.http[0].match[0].uri.regex: invalid regex (RE2): missing ): /api/(v1|v2",
            "conf/reviews.yaml:12: error: VirtualService/reviews.spec.http[0].match[0].headers.x-token.regex: invalid regex (RE2): invalid escape sequence: \\1",
            "conf/reviews.yaml:15: error: VirtualService/reviews.spec.http[0].match[0].queryParams.q.regex: invalid regex (RE2): invalid perl operator: (?=",
            "conf/reviews.yaml:17: error: VirtualService/reviews.spec.http[0].match[1].authority.regex: invalid regex (RE2): invalid repetition size: {1001}",
        ])
    }

    @Test func regexOverEnvoysProgramSizeLimitIsAnError() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - match:
                - uri:
                    regex: "/api/[a-z0-9]{200}"
                route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.location == SourceLocation(file: "conf/reviews.yaml", line: 9))
        #expect(result.errors.first?.message.hasPrefix("regex RE2 program size of ") == true)
        #expect(result.errors.first?.message.contains(" > max program size of 100 ") == true)
    }

    @Test func matchesAreDecoded() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - name: jason
                match:
                - name: m0
                  uri: {prefix: /api}
                  ignoreUriCase: true
                  method: {exact: GET}
                  authority: {regex: "reviews(:9080)?"}
                  headers:
                    End-User: {exact: jason}
                    x-canary: {}
                  withoutHeaders:
                    x-debug: {prefix: "1"}
                  queryParams:
                    Version: {regex: "v[0-9]"}
                  port: 9080
                route:
                - destination: {host: reviews, subset: v2}
            """)
        let own = result.diagnostics.filter { $0.location?.file == "conf/reviews.yaml" }
        #expect(own.isEmpty, "\(result.lines)")
        let route = try #require(result.configuration?.virtualServices.first?.http.first)
        #expect(route.name == "jason")
        #expect(route.match == [
            HTTPMatchRequest(
                name: "m0",
                uri: .prefix("/api"),
                ignoreUriCase: true,
                method: .exact("GET"),
                authority: .regex("reviews(:9080)?"),
                headers: [HeaderMatch(name: "end-user", match: .exact("jason")), HeaderMatch(name: "x-canary", match: nil)],
                withoutHeaders: [HeaderMatch(name: "x-debug", match: .prefix("1"))],
                queryParams: [HeaderMatch(name: "Version", match: .regex("v[0-9]"))],
                port: 9080
            )
        ])
    }

    @Test func stringMatchWithTwoKindsIsAnError() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - match:
                - uri:
                    exact: /a
                    prefix: /b
                - uri: {}
                - queryParams:
                    q: {prefix: x}
                route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/reviews.yaml:8: error: VirtualService/reviews.spec.http[0].match[0].uri: set only one of exact, prefix or regex, not exact and prefix",
            "conf/reviews.yaml:11: error: VirtualService/reviews.spec.http[0].match[1].uri: set one of exact, prefix or regex",
            "conf/reviews.yaml:13: error: VirtualService/reviews.spec.http[0].match[2].queryParams.q.prefix: query parameters match exact or regex only, not prefix",
        ])
    }

    @Test func misspelledFieldIsAnErrorAndUnsupportedFeaturesAreWarnings() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              exportTo: ["."]
              http:
              - match:
                - uri: {prefix: /}
                  sourceLabels: {app: productpage}
                timeout: 3s
                rewrite: {uri: v1}
                retries: {attempts: 3}
                fault:
                  delay: {fixedDelay: 7s, percentage: {value: 100}}
                rout:
                - destination: {host: reviews}
              - redirect: {uri: /v1}
              tls:
              - match: [{sniHosts: [reviews]}]
                route: [{destination: {host: reviews}}]
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/reviews.yaml") } == [
            "conf/reviews.yaml:6: warning: VirtualService/reviews.spec.exportTo: not supported yet; ignored",
            "conf/reviews.yaml:8: error: VirtualService/reviews.spec.http[0]: an http route needs route (or redirect, directResponse or delegate)",
            "conf/reviews.yaml:10: warning: VirtualService/reviews.spec.http[0].match[0].sourceLabels: not supported yet; ignored",
            "conf/reviews.yaml:12: error: VirtualService/reviews.spec.http[0].rewrite: rewrite.uri must start with /, not \"v1\"",
            "conf/reviews.yaml:16: error: VirtualService/reviews.spec.http[0].rout: unknown field 'rout' (did you mean 'route'?)",
        ])
    }

    @Test func redirectAndDirectResponseAreRoutesOfTheirOwn() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - match: [{uri: {exact: /v1/getProductRatings}}]
                redirect: {uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local, derivePort: FROM_REQUEST_PORT, redirectCode: 302}
              - match: [{uri: {prefix: /down}}]
                directResponse: {status: 503, body: {string: "down for maintenance"}}
              - match: [{uri: {prefix: /bytes}}]
                directResponse: {status: 200, body: {bytes: "aGVsbG8="}}
              - redirect: {scheme: https, port: 8443}
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/reviews.yaml") } == [])
        let http = try #require(result.configuration?.virtualServices.first?.http)
        #expect(http[0].redirect == HTTPRedirect(uri: "/v1/bookRatings", authority: "newratings.default.svc.cluster.local", derivePort: .fromRequestPort, redirectCode: 302))
        #expect(http[0].route.isEmpty)
        #expect(http[1].directResponse == HTTPDirectResponse(status: 503, body: Array("down for maintenance".utf8)))
        #expect(http[2].directResponse == HTTPDirectResponse(status: 200, body: Array("hello".utf8)))
        #expect(http[3].redirect == HTTPRedirect(port: 8443, scheme: "https"))
    }

    @Test func faultsAndRetriesAreReadWithIstiosDefaults() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: ratings}
            spec:
              hosts: [ratings]
              http:
              - match: [{headers: {end-user: {exact: jason}}}]
                fault:
                  delay: {fixedDelay: 7s, percentage: {value: 100.0}}
                  abort: {httpStatus: 500, percentage: {value: 12.5}}
                retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,409", backoff: 10ms}
                route: [{destination: {host: ratings}}]
              - fault:
                  delay: {fixedDelay: 1s, percent: 10}
                  abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
                retries: {attempts: 0}
                route: [{destination: {host: ratings}}]
              - route: [{destination: {host: ratings}}]
                retries: {perTryTimeout: 1s}
              - route: [{destination: {host: ratings}}]
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/") } == [])
        let http = try #require(result.configuration?.virtualServices.first?.http)
        #expect(http[0].fault == HTTPFaultInjection(
            delay: .init(fixedDelay: .seconds(7), percentage: 100), abort: .init(status: .http(500), percentage: 12.5)
        ))
        var written = HTTPRetryPolicy(
            attempts: 3, perTryTimeout: .seconds(2), conditions: [.gatewayError, .connectFailure, .retriableStatusCodes],
            retriableStatusCodes: [409], backoff: .milliseconds(10)
        )
        written.explicitRetryOn = true
        #expect(http[0].retries == written)
        #expect(http[1].fault == HTTPFaultInjection(
            delay: .init(fixedDelay: .seconds(1), percentage: 10), abort: .init(status: .grpc(code: 14, name: "UNAVAILABLE"), percentage: 1)
        ))
        #expect(http[1].retries == HTTPRetryPolicy.disabled)
        // As Istio: retries without attempts retry nothing; no retries at all is the default policy.
        #expect(http[2].retries == HTTPRetryPolicy.disabled)
        #expect(http[3].retries == nil)
        #expect(HTTPRetryPolicy.default.attempts == 2 && HTTPRetryPolicy.default.retriableStatusCodes == [503])
    }

    @Test func mirrorsAreReadWithIstiosHundredPercentDefault() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route: [{destination: {host: reviews, subset: v1}}]
                mirror: {host: reviews, subset: v2}
              - route: [{destination: {host: reviews, subset: v1}}]
                mirror: {host: reviews, subset: v3}
                mirrorPercentage: {value: 12.5}
              - route: [{destination: {host: reviews, subset: v1}}]
                mirror: {host: ratings}
                mirrorPercent: 7
              - route: [{destination: {host: reviews, subset: v1}}]
                mirrors:
                - destination: {host: reviews, subset: v2}
                - destination: {host: ratings}
                  percentage: {value: 5}
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/") } == [])
        let http = try #require(result.configuration?.virtualServices.first?.http)
        let reviews = "reviews.default.svc.cluster.local", ratings = "ratings.default.svc.cluster.local"
        #expect(http[0].mirrors == [HTTPMirror(destination: Destination(host: reviews, subset: "v2"))])
        #expect(http[1].mirrors == [HTTPMirror(destination: Destination(host: reviews, subset: "v3"), percentage: 12.5)])
        #expect(http[2].mirrors == [HTTPMirror(destination: Destination(host: ratings), percentage: 7)])
        #expect(http[3].mirrors == [
            HTTPMirror(destination: Destination(host: reviews, subset: "v2")), HTTPMirror(destination: Destination(host: ratings), percentage: 5),
        ])
    }

    @Test func badMirrorsAreNamedAtTheirLine() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route: [{destination: {host: reviews}}]
                mirror: {host: reviews, subset: v9}
                mirrorPercentage: {value: 150}
              - route: [{destination: {host: reviews}}]
                mirrorPercentage: {value: 10}
              - route: [{destination: {host: reviews}}]
                mirror: {host: reviews}
                mirrors: [{destination: {host: nowhere}}]
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/") } == [
            "conf/reviews.yaml:8: warning: VirtualService/reviews.spec.http[0].mirror.subset: DestinationRule/reviews (conf/services.yaml:74) for reviews.default.svc.cluster.local has no subset 'v9' (its subsets: v1, v2, v3); requests routed there get 503 (NC, cluster_not_found)",
            "conf/reviews.yaml:9: error: VirtualService/reviews.spec.http[0].mirrorPercentage.value: 150 is out of range 0..100",
            "conf/reviews.yaml:11: warning: VirtualService/reviews.spec.http[1].mirrorPercentage: mirrorPercentage without mirror mirrors nothing",
            "conf/reviews.yaml:12: error: VirtualService/reviews.spec.http[2]: an http route has either mirror or mirrors, not both",
            "conf/reviews.yaml:14: warning: VirtualService/reviews.spec.http[2].mirrors[0].destination.host: host nowhere resolves to nowhere.default.svc.cluster.local, which no ServiceEntry or Service declares; requests routed there get 503 (NC, cluster_not_found)",
        ])
    }

    @Test func corsPoliciesAreReadAndBadOnesNamed() throws {
        let good = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route: [{destination: {host: reviews}}]
                corsPolicy:
                  allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*[.]example[.]org"}]
                  allowMethods: [POST, GET]
                  allowCredentials: false
                  allowHeaders: [X-Foo-Bar]
                  maxAge: 24h
                  unmatchedPreflights: IGNORE
            """)
        #expect(good.lines.filter { $0.hasPrefix("conf/") } == [])
        let http = try #require(good.configuration?.virtualServices.first?.http)
        #expect(http[0].cors == CORSPolicy(
            allowOrigins: [.exact("https://example.com"), .regex("https://.*[.]example[.]org")], allowMethods: ["POST", "GET"],
            allowHeaders: ["X-Foo-Bar"], maxAge: .seconds(86400), unmatchedPreflights: .ignore
        ))
        let bad = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route: [{destination: {host: reviews}}]
                corsPolicy:
                  allowOrigin: ["https://old.example"]
              - route: [{destination: {host: reviews}}]
                corsPolicy:
                  allowOrigins: [{regex: "(a"}]
                  unmatchedPreflights: SOMETIMES
            """)
        #expect(bad.lines.filter { $0.hasPrefix("conf/") } == [
            "conf/reviews.yaml:9: warning: VirtualService/reviews.spec.http[0].corsPolicy.allowOrigin: allowOrigin is deprecated; use allowOrigins: [{exact: ...}] (read as exact matches)",
            "conf/reviews.yaml:12: error: VirtualService/reviews.spec.http[1].corsPolicy.allowOrigins[0].regex: invalid regex (RE2): missing ): (a",
            "conf/reviews.yaml:13: error: VirtualService/reviews.spec.http[1].corsPolicy.unmatchedPreflights: invalid value \"SOMETIMES\"; expected one of UNSPECIFIED, FORWARD, IGNORE",
        ])
    }

    @Test func perDestinationHeadersAndRegexRewritesAreRead() throws {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2/instance/\\\\1"}}
                route:
                - destination: {host: reviews, subset: v1}
                  weight: 50
                  headers: {request: {set: {x-subset: v1}}, response: {add: {x-from: v1}}}
                - destination: {host: reviews, subset: v2}
                  weight: 50
              - rewrite: {uri: /x, uriRegexRewrite: {match: "(", rewrite: "y"}}
                route: [{destination: {host: reviews}}]
              - rewrite: {uriRegexRewrite: {match: "^/(a)$", rewrite: "\\\\2"}}
                route: [{destination: {host: reviews}}]
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/") } == [
            "conf/reviews.yaml:14: error: VirtualService/reviews.spec.http[1].rewrite: a rewrite has either uri or uriRegexRewrite, not both",
            "conf/reviews.yaml:14: error: VirtualService/reviews.spec.http[1].rewrite.uriRegexRewrite.match: invalid regex (RE2): missing ): (",
            "conf/reviews.yaml:16: error: VirtualService/reviews.spec.http[2].rewrite.uriRegexRewrite.rewrite: invalid rewrite for regex ^/(a)$: Rewrite schema requests 2 matches, but the regexp only has 1 parenthesized subexpressions.",
        ])
        let good = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2/instance/\\\\1"}}
                route:
                - destination: {host: reviews, subset: v1}
                  headers: {request: {set: {x-subset: v1}}, response: {add: {x-from: v1}}}
            """)
        let http = try #require(good.configuration?.virtualServices.first?.http)
        #expect(http[0].rewrite?.uriRegexRewrite == HTTPRewrite.RegexRewrite(match: "^/service/([^/]+)(/.*)$", rewrite: "\\2/instance/\\1"))
        #expect(http[0].route[0].requestHeaders == HeaderOperations(set: [.init(name: "x-subset", value: "v1")], add: [], remove: []))
        #expect(http[0].route[0].responseHeaders == HeaderOperations(set: [], add: [.init(name: "x-from", value: "v1")], remove: []))
    }

    @Test func badFaultsAndRetriesAreNamedAtTheirLine() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: ratings}
            spec:
              hosts: [ratings]
              http:
              - fault: {delay: {fixedDelay: 0s, percentage: {value: 10}}, abort: {httpStatus: 99, percentage: {value: 101}}}
                route: [{destination: {host: ratings}}]
              - fault: {abort: {grpcStatus: NOPE, percentage: {value: 5}}}
                route: [{destination: {host: ratings}}]
              - fault: {abort: {httpStatus: 503}}
                route: [{destination: {host: ratings}}]
              - fault: {}
                route: [{destination: {host: ratings}}]
              - retries: {attempts: -1}
                route: [{destination: {host: ratings}}]
              - timeout: 1s
                retries: {attempts: 2, perTryTimeout: 2s, retryOn: "5xx,sometimes,envoy-ratelimited", retryRemoteLocalities: true}
                route: [{destination: {host: ratings}}]
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/") } == [
            "conf/reviews.yaml:7: error: VirtualService/ratings.spec.http[0].fault.delay.fixedDelay: fault.delay.fixedDelay must be at least 1ms",
            "conf/reviews.yaml:7: error: VirtualService/ratings.spec.http[0].fault.abort.percentage.value: 101 is out of range 0..100",
            "conf/reviews.yaml:7: error: VirtualService/ratings.spec.http[0].fault.abort.httpStatus: fault.abort.httpStatus must be an HTTP status, 200..599, not 99",
            "conf/reviews.yaml:9: error: VirtualService/ratings.spec.http[1].fault.abort.grpcStatus: unknown gRPC status \"NOPE\"; expected one of OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED",
            "conf/reviews.yaml:11: warning: VirtualService/ratings.spec.http[2].fault.abort: no percentage: as in Istio, no request is aborted; set percentage.value (100 for every request)",
            "conf/reviews.yaml:13: error: VirtualService/ratings.spec.http[3].fault: a fault needs delay or abort",
            "conf/reviews.yaml:15: error: VirtualService/ratings.spec.http[4].retries.attempts: retries.attempts must be 0 (no retries) or more, not -1",
            "conf/reviews.yaml:18: warning: VirtualService/ratings.spec.http[5].retries.retryRemoteLocalities: not supported yet; ignored",
            "conf/reviews.yaml:18: error: VirtualService/ratings.spec.http[5].retries.retryOn: \"sometimes\" is not a retryOn condition; expected HTTP status codes or 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, envoy-ratelimited, http3-post-connect-failure, reset-before-request, retriable-headers",
            "conf/reviews.yaml:18: warning: VirtualService/ratings.spec.http[5].retries.retryOn: retryOn \"envoy-ratelimited\" is not supported yet; ignored",
            "conf/reviews.yaml:18: warning: VirtualService/ratings.spec.http[5].retries.perTryTimeout: perTryTimeout 2s is longer than the route's timeout: the route's timeout ends the request first",
        ])
    }

    @Test func badRedirectsAndDirectResponsesAreNamedAtTheirLine() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - redirect: {redirectCode: 302}
              - redirect: {uri: v2, port: 80, derivePort: FROM_REQUEST_PORT}
              - redirect: {uri: /x, redirectCode: 200}
              - directResponse: {status: 99}
              - directResponse: {status: 200, body: {bytes: "%%%"}}
              - directResponse: {body: {string: x}}
              - redirect: {uri: /x}
                directResponse: {status: 200}
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/reviews.yaml") } == [
            "conf/reviews.yaml:7: error: VirtualService/reviews.spec.http[0].redirect: a redirect needs uri, authority, scheme, port or derivePort: without one it points back at the request",
            "conf/reviews.yaml:8: error: VirtualService/reviews.spec.http[1].redirect: a redirect has either port or derivePort, not both",
            "conf/reviews.yaml:8: error: VirtualService/reviews.spec.http[1].redirect.uri: redirect.uri must start with /, not \"v2\"",
            "conf/reviews.yaml:9: error: VirtualService/reviews.spec.http[2].redirect.redirectCode: redirectCode 200 is not a redirect; expected 301, 302, 303, 307 or 308",
            "conf/reviews.yaml:10: error: VirtualService/reviews.spec.http[3].directResponse.status: 99 is out of range 200..599",
            "conf/reviews.yaml:11: error: VirtualService/reviews.spec.http[4].directResponse.body.bytes: body.bytes must be base64",
            "conf/reviews.yaml:12: error: VirtualService/reviews.spec.http[5].directResponse.status: required field is missing",
            "conf/reviews.yaml:13: error: VirtualService/reviews.spec.http[6]: an http route has either redirect or directResponse, not both",
        ])
    }

    @Test func gatewaysResolveToNamespaceSlashName() throws {
        let gateway = """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw, namespace: NS}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 80, name: http, protocol: HTTP}
                hosts: ["*"]
            ---

            """
        let result = loadVS(
            gateway.replacingOccurrences(of: "NS", with: "default") + gateway.replacingOccurrences(of: "NS", with: "edge") + """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: reviews}
                spec:
                  hosts: [reviews, "*.example.com"]
                  gateways: [gw, edge/gw, mesh]
                  http:
                  - match:
                    - gateways: [mesh]
                    route:
                    - destination: {host: reviews}
                """
        )
        #expect(result.errors.isEmpty, "\(result.lines)")
        let vs = try #require(result.configuration?.virtualServices.first)
        #expect(vs.gateways == ["default/gw", "edge/gw", "mesh"])
        #expect(vs.hosts == ["reviews.default.svc.cluster.local", "*.example.com"])
        #expect(vs.http[0].match[0].gateways == ["mesh"])
    }

    @Test func undefinedGatewayIsAWarningAndAnErrorWhenStrict() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              gateways: [mesh, bookinfo-gateway]
              http:
              - match:
                - gateways: [istio-system/ingress]
                route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.isEmpty)
        #expect(result.warnings.map(\.description) == [
            "conf/reviews.yaml:6: warning: VirtualService/reviews.spec.gateways[1]: no Gateway default/bookinfo-gateway is declared, so nothing is bound to it",
            "conf/reviews.yaml:9: warning: VirtualService/reviews.spec.http[0].match[0].gateways[0]: no Gateway istio-system/ingress is declared, so nothing is bound to it",
        ])
        #expect(result.warnings.allSatisfy { $0.isDanglingReference })
    }

    /// Istio IST0132: bound to a gateway that serves none of the hosts.
    @Test func hostsNotServedByTheGatewayAreAWarning() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 80, name: http, protocol: HTTP}
                hosts: ["*.bookinfo.com", "edge/api.example.com"]
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              gateways: [gw]
              http:
              - route:
                - destination: {host: reviews}
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: shop}
            spec:
              hosts: [shop.bookinfo.com]
              gateways: [gw]
              http:
              - route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.isEmpty)
        #expect(result.find(.warning, "conf/reviews.yaml").map(\.description) == [
            "conf/reviews.yaml:14: warning: VirtualService/reviews.spec.hosts: none of the hosts (reviews.default.svc.cluster.local) is served by Gateway default/gw (its hosts: *.bookinfo.com, api.example.com); requests will get 404 (Istio IST0132)"
        ])
    }

    @Test func wildcardHostOnMeshIsAnError() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: all}
            spec:
              hosts: ["*"]
              http:
              - route:
                - destination: {host: reviews}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/reviews.yaml:5: error: VirtualService/all.spec.hosts: host \"*\" is only allowed when the VirtualService is not bound to the mesh (set gateways)"
        ])
    }
}

extension VirtualServiceTests {
    @Test func scalarWhereAStringMatchBelongsGetsAHint() {
        let result = loadVS("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              gateways: []
              http:
              - match:
                - uri: /productpage
                  headers:
                    end-user: jason
                route:
                - destination: {host: reviews}
                redirect: {uri: /v2}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/reviews.yaml:8: error: VirtualService/reviews.spec.http[0]: an http route has either route or redirect, not both",
            "conf/reviews.yaml:9: error: VirtualService/reviews.spec.http[0].match[0].uri: expected a map such as {exact: /productpage}, got a string (\"/productpage\")",
            "conf/reviews.yaml:11: error: VirtualService/reviews.spec.http[0].match[0].headers.end-user: expected a map such as {exact: jason}, got a string (\"jason\")",
        ])
    }
}
