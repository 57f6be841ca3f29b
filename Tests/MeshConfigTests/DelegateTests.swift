import Testing

@testable import MeshConfig

/// VirtualService delegation: delegates (no hosts) are spliced into their roots, matches merged as
/// Istio merges them; what is missing warns, cycles and nested delegation are errors.
@Suite struct DelegateTests {
    /// The root VirtualService `bookinfo` on the mesh: /productpage and /reviews delegated.
    static let root = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: bookinfo}
        spec:
          hosts: [bookinfo.example.com]
          http:
          - name: reviews
            match:
            - uri: {prefix: /reviews}
            timeout: 3s
            delegate:
              name: reviews
          - match:
            - uri: {prefix: /ratings}
            delegate: {name: ratings, namespace: other}
          - route:
            - destination: {host: ratings}

        """

    static let reviewsDelegate = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          http:
          - name: v2
            match:
            - uri: {prefix: /reviews/v2}
              headers: {end-user: {exact: jason}}
            route:
            - destination: {host: reviews, subset: v2}
          - match:
            - uri: {exact: /ratings}
            route:
            - destination: {host: reviews, subset: v3}
          - route:
            - destination: {host: reviews, subset: v1}

        """

    func loadDelegation(_ files: [(String, String)]) -> ConfigLoadResult {
        load([VirtualServiceTests.services] + files)
    }

    @Test func delegateRoutesAreSplicedInPlaceWithMergedMatches() throws {
        let result = self.loadDelegation([("conf/root.yaml", Self.root), ("conf/reviews.yaml", Self.reviewsDelegate)])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let config = try #require(result.configuration)
        // The delegate binds to nothing on its own: only the root is left.
        #expect(config.virtualServices.map(\.meta.name) == ["bookinfo"])
        let http = config.virtualServices[0].http
        #expect(http.allSatisfy { $0.delegate == nil })
        // reviews: 3 delegate routes, one of which (exact /ratings) lies outside /reviews and is left
        // out; the missing `other/ratings` delegate leaves its route out; the catch-all stays.
        #expect(http.count == 3)
        #expect(http[0].name == "reviews-v2")
        #expect(http[0].match == [
            HTTPMatchRequest(uri: .prefix("/reviews/v2"), headers: [HeaderMatch(name: "end-user", match: .exact("jason"))])
        ])
        #expect(http[0].route.map(\.destination.subset) == ["v2"])
        #expect(http[0].timeout == .seconds(3), "inherited from the root route")
        #expect(http[1].name == "reviews")
        #expect(http[1].match == [HTTPMatchRequest(uri: .prefix("/reviews"))], "an empty delegate match takes the root's")
        #expect(http[1].route.map(\.destination.subset) == ["v1"])
        #expect(http[2].route.map(\.destination.host) == ["ratings.default.svc.cluster.local"])
        #expect(http[1].location == SourceLocation(file: "conf/reviews.yaml", line: 16))

        #expect(result.warnings.map(\.description) == [
            "conf/reviews.yaml:12: warning: VirtualService/reviews.spec.http[1].match: no match of this delegate route lies within the match of the route delegating to it (conf/root.yaml:11), so it is left out there, as Istio does",
            "conf/root.yaml:15: warning: VirtualService/bookinfo.spec.http[1].delegate: no VirtualService other/ratings is declared; this route is left out, as Istio does: requests it matches fall through to the later routes (404 when none matches)",
        ])
        #expect(result.warnings[1].isDanglingReference)
        let strict = load([VirtualServiceTests.services, ("conf/root.yaml", Self.root), ("conf/reviews.yaml", Self.reviewsDelegate)], options: LoadOptions(strict: true))
        #expect(strict.errors.count == 1)
        #expect(strict.configuration == nil)
    }

    @Test func matchesMergeAsIstioDoes() {
        let root = HTTPMatchRequest(uri: .prefix("/api"), headers: [HeaderMatch(name: "x-a", match: .exact("1"))], port: 80)
        // Narrower: kept, AND of both.
        let narrower = HTTPMatchRequest(uri: .exact("/api/v1"), method: .exact("GET"))
        #expect(DelegateMerge.merge(root: [root], delegate: [narrower]) == [
            HTTPMatchRequest(uri: .exact("/api/v1"), method: .exact("GET"), headers: [HeaderMatch(name: "x-a", match: .exact("1"))], port: 80)
        ])
        // Conflicts: a prefix outside the root's, another port, another value of the same header,
        // two regexes, anything but the same exact under an exact.
        #expect(DelegateMerge.conflict(root: root, leaf: HTTPMatchRequest(uri: .prefix("/other"))))
        #expect(DelegateMerge.conflict(root: root, leaf: HTTPMatchRequest(port: 8080)))
        #expect(DelegateMerge.conflict(root: root, leaf: HTTPMatchRequest(headers: [HeaderMatch(name: "x-a", match: .exact("2"))])))
        #expect(DelegateMerge.conflict(.regex("a.*"), .regex("ab.*")))
        #expect(DelegateMerge.conflict(.exact("/a"), .prefix("/a")))
        #expect(!DelegateMerge.conflict(.exact("/a"), .exact("/a")))
        #expect(!DelegateMerge.conflict(.prefix("/a"), .regex("/a/[0-9]+")))
        #expect(!DelegateMerge.conflict(nil, .exact("/x")))
        // Several on each side: every non-conflicting pair.
        let merged = DelegateMerge.merge(
            root: [HTTPMatchRequest(uri: .prefix("/a")), HTTPMatchRequest(uri: .prefix("/b"))],
            delegate: [HTTPMatchRequest(uri: .prefix("/a/x")), HTTPMatchRequest(method: .exact("POST"))]
        )
        #expect(merged?.map(\.uri) == [.prefix("/a/x"), .prefix("/a"), .prefix("/b")])
        #expect(DelegateMerge.merge(root: [HTTPMatchRequest(uri: .prefix("/a"))], delegate: [HTTPMatchRequest(uri: .prefix("/b"))]) == nil)
    }

    @Test func aDelegateCannotBindToGatewaysNorCarryTCPOrTLSRoutes() {
        let result = self.loadDelegation([
            ("conf/delegate.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: reviews}
                spec:
                  gateways: [mesh]
                  http:
                  - route: [{destination: {host: reviews}}]
                  tcp:
                  - route: [{destination: {host: reviews}}]
                """)
        ])
        #expect(result.errors.map(\.description) == [
            "conf/delegate.yaml:5: error: VirtualService/reviews.spec.gateways: a delegate VirtualService (one without hosts) binds to no gateway; remove gateways, or add hosts to make it a root",
            "conf/delegate.yaml:8: error: VirtualService/reviews.spec.tcp: a delegate VirtualService (one without hosts) has http routes only, not tcp",
        ])
        #expect(result.infos.contains { $0.description.contains("a delegate (no hosts) that no VirtualService delegates to") })
    }

    @Test func nestedDelegationAndCyclesAreErrorsWithTheirLines() {
        let result = self.loadDelegation([
            ("conf/a.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: a}
                spec:
                  hosts: [a.example.com]
                  http:
                  - delegate: {name: b}
                  - delegate: {name: a}
                """),
            ("conf/b.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: b}
                spec:
                  http:
                  - delegate: {name: c}
                """),
            ("conf/c.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: c}
                spec:
                  http:
                  - delegate: {name: a}
                """),
        ])
        #expect(result.configuration == nil)
        #expect(result.errors.map(\.description) == [
            "conf/a.yaml:7: error: VirtualService/a.spec.http[0].delegate: delegation cycle: default/a → default/b → default/c → default/a",
            "conf/a.yaml:8: error: VirtualService/a.spec.http[1].delegate: delegation cycle: default/a delegates to itself",
            "conf/b.yaml:6: error: VirtualService/b.spec.http[0].delegate: a delegate VirtualService cannot delegate again: Istio supports one level of delegation",
            "conf/c.yaml:6: error: VirtualService/c.spec.http[0].delegate: a delegate VirtualService cannot delegate again: Istio supports one level of delegation",
        ])
    }

    @Test func aDelegateWithHostsIsNoDelegate() {
        let result = self.loadDelegation([
            ("conf/root.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: root}
                spec:
                  hosts: [root.example.com]
                  http:
                  - delegate: {name: other}
                  - route: [{destination: {host: reviews}}]
                ---
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: other}
                spec:
                  hosts: [other.example.com]
                  http:
                  - route: [{destination: {host: ratings}}]
                """)
        ])
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.find(.warning, "conf/root.yaml:7:", "VirtualService default/other (conf/root.yaml:14) has hosts, so it is not a delegate").count == 1)
        #expect(result.configuration?.virtualServices.first?.http.count == 1)
    }

    @Test func aRouteHasEitherDelegateOrRoute() {
        let result = self.loadDelegation([
            ("conf/root.yaml", """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: root}
                spec:
                  hosts: [root.example.com]
                  http:
                  - delegate: {namespace: x}
                    route: [{destination: {host: reviews}}]
                """)
        ])
        #expect(result.errors.map(\.description) == [
            "conf/root.yaml:7: error: VirtualService/root.spec.http[0].delegate.name: required field is missing",
            "conf/root.yaml:7: error: VirtualService/root.spec.http[0]: an http route has either route or delegate, not both",
        ])
    }
}
