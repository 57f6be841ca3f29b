import Testing

@testable import MeshConfig

/// AuthorizationPolicy decoding: every field, Istio's value checks at file:line, scope.
@Suite struct AuthorizationPolicyTests {
    static func policy(_ name: String, namespace: String = "istio-system", _ spec: String, annotations: String? = nil) -> String {
        let meta = annotations.map { "{name: \(name), namespace: \(namespace), annotations: {\($0)}}" } ?? "{name: \(name), namespace: \(namespace)}"
        return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: \(meta)\nspec:\n\(spec)"
    }

    @Test func everyFieldIsDecoded() throws {
        let result = load(Self.policy("all", """
              selector: {matchLabels: {istio: ingressgateway}}
              action: DENY
              rules:
              - from:
                - source: {principals: [a], notPrincipals: [b], requestPrincipals: [c], notRequestPrincipals: [d], namespaces: [e], notNamespaces: [f], ipBlocks: [1.2.3.4, 10.0.0.0/8], notIpBlocks: ["2001:db8::/32"], remoteIpBlocks: [1.2.3.4], notRemoteIpBlocks: [5.6.7.8], serviceAccounts: [ns1/sa1], notServiceAccounts: [ns2/sa2]}
                to:
                - operation: {hosts: [a], notHosts: [b], ports: ["80"], notPorts: ["81"], methods: [GET], notMethods: [POST], paths: [/a*], notPaths: ["*.js"]}
                when:
                - {key: "request.headers[X-Token]", values: [a], notValues: [b]}
                - {key: "request.auth.claims[realm][roles]", values: [admin]}
                - {key: remote.ip, values: [127.0.1.0/24]}
                - {key: destination.port, values: ["8080"]}
            """))
        #expect(result.errors.isEmpty, "\(result.lines)")
        let policy = try #require(result.configuration?.authorizationPolicies.first)
        #expect(policy.action == .deny)
        #expect(policy.selector == ["istio": "ingressgateway"])
        let rule = try #require(policy.rules.first)
        let source = try #require(rule.from.first)
        #expect(source.principals == StringMatchSet(["a", "*/ns/ns1/sa/sa1"], not: ["b", "*/ns/ns2/sa/sa2"]))
        #expect(source.requestPrincipals == StringMatchSet(["c"], not: ["d"]))
        #expect(source.ipBlocks.blocks.map(\.description) == ["1.2.3.4/32", "10.0.0.0/8"])
        #expect(source.ipBlocks.notBlocks.map(\.description) == ["2001:db8:0:0:0:0:0:0/32"])
        let operation = try #require(rule.to.first)
        #expect(operation.ports == [80] && operation.notPorts == [81])
        #expect(operation.paths == StringMatchSet(["/a*"], not: ["*.js"]))
        #expect(rule.when.map(\.key) == [.requestHeader("x-token"), .requestAuthClaims(["realm", "roles"]), .remoteIP, .destinationPort])
        #expect(rule.when[2].blocks.blocks.map(\.description) == ["127.0.1.0/24"])
        #expect(rule.usesHTTPOnlyFields)
    }

    @Test func badValuesAreErrorsAtTheirLines() {
        let result = load(Self.policy("bad", """
              rules:
              - from:
                - source: {ipBlocks: [10.0.0.0/33, 300.1.1.1, "1.2.3.4/x"], principals: ["spiffe://cluster.local/ns/a/sa/b"]}
                to:
                - operation: {ports: ["http"], paths: ["/api/{*}/x", "/a*b"]}
                when:
                - {key: "request.header[x]", values: [a]}
                - {key: source.ip}
                - {key: "request.auth.claims[]", values: [a]}
            """))
        #expect(result.configuration == nil)
        let lines = result.lines
        for expected in [
            "conf/test.yaml:7: error: AuthorizationPolicy/bad.spec.rules[0].from[0].source.ipBlocks[0]: '10.0.0.0/33' is not an IP address or CIDR block",
            "conf/test.yaml:7: error: AuthorizationPolicy/bad.spec.rules[0].from[0].source.ipBlocks[1]: '300.1.1.1' is not",
            "conf/test.yaml:7: error: AuthorizationPolicy/bad.spec.rules[0].from[0].source.ipBlocks[2]: '1.2.3.4/x' is not",
            "conf/test.yaml:7: warning: AuthorizationPolicy/bad.spec.rules[0].from[0].source.principals[0]: principals are written without the spiffe:// scheme",
            "conf/test.yaml:9: error: AuthorizationPolicy/bad.spec.rules[0].to[0].operation.ports[0]: 'http' is not a port",
            "conf/test.yaml:9: error: AuthorizationPolicy/bad.spec.rules[0].to[0].operation.paths[0]: path templates",
            "conf/test.yaml:9: error: AuthorizationPolicy/bad.spec.rules[0].to[0].operation.paths[1]: '*' matches only",
            "conf/test.yaml:11: error: AuthorizationPolicy/bad.spec.rules[0].when[0].key: unknown condition key 'request.header[x]'",
            "conf/test.yaml:12: error: AuthorizationPolicy/bad.spec.rules[0].when[1]: a condition needs values or notValues",
            "conf/test.yaml:13: error: AuthorizationPolicy/bad.spec.rules[0].when[2].key: expected request.auth.claims[NAME]",
        ] {
            #expect(lines.contains { $0.hasPrefix(expected) }, "missing \(expected) in \(lines)")
        }
    }

    @Test func customNeedsADeclaredProviderAndAProviderNeedsCustom() throws {
        let custom = load(Self.policy("ext", "  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{}]\n"))
        #expect(custom.configuration == nil)
        #expect(custom.find(.error, "conf/test.yaml:1:", "provider ext-authz is not an extensionProviders entry", "none is declared").count == 1, "\(custom.lines)")
        let declared = load([
            ("conf/meshgate.yaml", """
                extensionProviders:
                - name: ext-authz
                  envoyExtAuthzHttp: {service: ext-authz.foo.svc.cluster.local, port: 8000, timeout: 1s, pathPrefix: /check, statusOnError: "503", includeRequestHeadersInCheck: [X-Ext-Authz], headersToUpstreamOnAllow: [x-ext-authz-check-result], includeRequestBodyInCheck: {maxRequestBytes: 10}}
                - name: grpc
                  envoyExtAuthzGrpc: {service: g, port: 9000}
                """),
            ("conf/p.yaml", Self.policy("ext", "  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{}]\n")),
        ])
        #expect(declared.errors.isEmpty, "\(declared.lines)")
        #expect(declared.find(.warning, "includeRequestBodyInCheck", "not supported yet").count == 1, "\(declared.lines)")
        #expect(declared.find(.warning, "envoyExtAuthzGrpc", "not supported yet").count == 1, "\(declared.lines)")
        let provider = try #require(declared.configuration?.settings.extensionProviders.first)
        #expect(provider.extAuthzHTTP.timeout == .seconds(1) && provider.extAuthzHTTP.statusOnError == 503)
        #expect(provider.extAuthzHTTP.includeRequestHeadersInCheck == ["x-ext-authz"])
        let stray = load(Self.policy("p", "  action: ALLOW\n  provider: {name: x}\n"))
        #expect(stray.find(.error, "conf/test.yaml:6:", "provider is only for action CUSTOM").count == 1, "\(stray.lines)")
    }

    @Test func dryRunIsReadFromTheAnnotation() throws {
        let result = load(Self.policy("shadow", "  action: DENY\n  rules: [{}]\n", annotations: "istio.io/dry-run: \"true\""))
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(try #require(result.configuration?.authorizationPolicies.first).dryRun)
    }

    /// Mesh-wide from the root namespace, namespace-wide, by selector, by targetRef.
    @Test func scopeFollowsNamespaceSelectorAndTargetRef() throws {
        let result = load([
            ("conf/mesh.yaml", Self.policy("mesh", "  {}\n")),
            ("conf/ns.yaml", Self.policy("ns", namespace: "other", "  {}\n")),
            ("conf/gw.yaml", Self.policy("gw", "  selector: {matchLabels: {istio: ingressgateway}}\n")),
            ("conf/app.yaml", Self.policy("app", "  selector: {matchLabels: {app: ratings}}\n")),
            ("conf/ref.yaml", Self.policy("ref", "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: istio-ingressgateway}]\n")),
        ])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let config = try #require(result.configuration)
        #expect(config.localAuthorizationPolicies.map(\.meta.name) == ["mesh", "gw", "ref"])
    }
}

/// CIDR blocks and addresses, as policies read them.
@Suite struct CIDRTests {
    @Test func blocksContainTheirAddresses() throws {
        let block = try #require(CIDR("127.0.1.7/24"))
        #expect(block.description == "127.0.1.0/24")
        #expect(block.contains([127, 0, 1, 200]))
        #expect(!block.contains([127, 0, 2, 1]))
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddressParser.bytes("2001:db8:1::5"))))
        #expect(!v6.contains([127, 0, 1, 1]))
        #expect(try #require(CIDR("::ffff:1.2.3.4")).prefixLength == 128)
        #expect(CIDR("0.0.0.0/0")?.contains([8, 8, 8, 8]) == true)
        for bad in ["1.2.3", "1.2.3.4/", "::1::2", "1.2.3.4/-1", "fe80::1/129", "01234::", ""] {
            #expect(CIDR(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct AuthorizationChecksTests {
    @Test func aPolicyForAnotherWorkloadIsNamedAndHTTPFieldsOnATCPPortAreWarned() {
        let gateway = """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw, namespace: istio-system}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 31400, name: tcp, protocol: TCP}
                hosts: ["*"]
            """
        let result = load([
            ("conf/gw.yaml", gateway),
            ("conf/a.yaml", AuthorizationPolicyTests.policy("ratings", namespace: "default", "  selector: {matchLabels: {app: ratings}}\n")),
            ("conf/b.yaml", AuthorizationPolicyTests.policy("get-only", "  rules: [{to: [{operation: {methods: [GET]}}]}]\n")),
        ])
        #expect(result.find(.info, "conf/a.yaml:1:", "AuthorizationPolicy/ratings", "selects nothing this instance runs").count == 1, "\(result.lines)")
        #expect(result.find(.warning, "conf/b.yaml:1:", "spec.rules[0]", "TCP port(s) 31400", "never matches there").count == 1, "\(result.lines)")
    }
}

/// RequestAuthentication decoding.
@Suite struct RequestAuthenticationTests {
    static func resource(_ spec: String) -> String {
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: istio-system}\nspec:\n\(spec)"
    }

    @Test func everyFieldIsDecodedWithIstiosDefaults() throws {
        let result = load(Self.resource("""
              selector: {matchLabels: {istio: ingressgateway}}
              jwtRules:
              - {issuer: a, audiences: [b], jwksUri: "https://a/jwks", fromHeaders: [{name: X-Token, prefix: "Bearer "}], fromParams: [t], fromCookies: [c], outputPayloadToHeader: X-Payload, forwardOriginalToken: true, outputClaimToHeaders: [{header: x-sub, claim: sub}], timeout: 2s}
              - {issuer: d, jwks: "{\\"keys\\": []}"}
            """))
        #expect(result.errors.isEmpty, "\(result.lines)")
        let rules = try #require(result.configuration?.requestAuthentications.first?.jwtRules)
        #expect(rules[0].fromHeaders == [JWTRule.HeaderLocation(name: "x-token", prefix: "Bearer ")])
        #expect(rules[0].effectiveParams == ["t"] && rules[0].fromCookies == ["c"])
        #expect(rules[0].outputPayloadToHeader == "x-payload" && rules[0].forwardOriginalToken && rules[0].timeout == .seconds(2))
        #expect(rules[1].effectiveHeaders == [JWTRule.HeaderLocation(name: "authorization", prefix: "Bearer ")])
        #expect(rules[1].effectiveParams == ["access_token"])
    }

    @Test func badRulesAreErrorsAtTheirLines() {
        let result = load(Self.resource("""
              jwtRules:
              - {issuer: a}
              - {issuer: b, jwks: "{}", jwksUri: "file:///k"}
              - {issuer: c, jwksUri: "ftp://k"}
              - {issuer: d, jwks: "{}", fromHeaders: [{name: "bad header"}]}
              - {issuer: d, jwks: "{}"}
            """))
        for expected in [
            "conf/test.yaml:6: error: RequestAuthentication/jwt.spec.jwtRules[0]: jwks or jwksUri is required",
            "conf/test.yaml:7: error: RequestAuthentication/jwt.spec.jwtRules[1]: set either jwks or jwksUri, not both",
            "conf/test.yaml:8: error: RequestAuthentication/jwt.spec.jwtRules[2].jwksUri: jwksUri must be an http://, https:// or file:// URI",
            "conf/test.yaml:9: error: RequestAuthentication/jwt.spec.jwtRules[3].fromHeaders[0].name: 'bad header' is not a valid header name",
            "conf/test.yaml:10: error: RequestAuthentication/jwt.spec.jwtRules[4].issuer: issuer d is already configured at line 9",
        ] {
            #expect(result.lines.contains { $0.hasPrefix(expected) }, "missing \(expected) in \(result.lines)")
        }
    }
}
