import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// The policy evaluator over a table of (policies, request) → verdict, one field at a time.
@Suite struct AuthorizationEngineTests {
    /// Policies from YAML documents (`spec:` bodies), all in istio-system.
    static func engine(_ specs: [String: String]) throws -> AuthorizationEngine {
        let yaml = specs.sorted { $0.key < $1.key }.map { name, spec in
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: \(name), namespace: istio-system}\nspec:\n\(spec)\n"
        }.joined(separator: "---\n")
        let result = ConfigLoader.load(files: [ConfigFile(path: "conf/p.yaml", contents: yaml)])
        let config = try #require(result.configuration, "\(result.diagnostics)")
        return AuthorizationEngine(config.authorizationPolicies)
    }

    static let gateway = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    static let sleep = "cluster.local/ns/foo/sa/sleep"

    static func request(
        _ method: String = "GET", _ path: String = "/productpage", host: String = "bookinfo.example", headers: [(String, String)] = [],
        principal: String? = nil, source: String = "127.0.1.5", forwardedFor: String? = nil, port: Int = 8080, auth: RequestAuth? = nil
    ) -> AuthorizationFacts {
        var all = HTTPHeaders(headers)
        all.add(name: "host", value: host)
        let sourceIP = IPAddressParser.bytes(source)
        let remote = forwardedFor.map { RemoteAddress.resolve(peer: sourceIP, forwardedFor: [$0], trusted: 1) } ?? sourceIP
        return AuthorizationFacts(
            principal: principal, sourceIP: sourceIP, remoteIP: remote, destinationIP: [127, 0, 0, 1], destinationPort: port,
            serverName: "bookinfo.example",
            request: .init(host: Substring(host.split(separator: ":")[0].lowercased()), authority: host, method: method, path: Substring(path), headers: all),
            auth: auth
        )
    }

    static func connection(principal: String? = nil, port: Int = 9000, source: String = "127.0.1.5") -> AuthorizationFacts {
        AuthorizationFacts(principal: principal, sourceIP: IPAddressParser.bytes(source), destinationIP: [127, 0, 0, 1], destinationPort: port)
    }

    @Test func noPolicyAllowsAndAnEmptyAllowPolicyDeniesAll() throws {
        #expect(try Self.engine([:]).evaluate(Self.request()).isAllowed)
        let denyAll = try Self.engine(["deny-all": "  {}"])
        let verdict = denyAll.evaluate(Self.request())
        #expect(!verdict.isAllowed)
        #expect(verdict.details == "rbac_access_denied_matched_policy[none]")
        #expect(try Self.engine(["allow-all": "  rules: [{}]"]).evaluate(Self.request()).isAllowed)
        // A DENY or AUDIT policy with no rules matches nothing.
        #expect(try Self.engine(["d": "  action: DENY", "a": "  action: AUDIT"]).evaluate(Self.request()).isAllowed)
    }

    /// Istio's HTTP task: GET /productpage from the gateway only.
    @Test func allowByMethodPathAndPrincipal() throws {
        let engine = try Self.engine([
            "productpage": """
              action: ALLOW
              rules:
              - from: [{source: {principals: ["\(Self.gateway)"]}}]
                to: [{operation: {methods: [GET], paths: ["/productpage", "/static/*"]}}]
            """,
        ])
        #expect(engine.evaluate(Self.request(principal: Self.gateway)).isAllowed)
        #expect(engine.evaluate(Self.request("GET", "/static/app.js", principal: Self.gateway)).isAllowed)
        #expect(!engine.evaluate(Self.request("POST", principal: Self.gateway)).isAllowed)
        #expect(!engine.evaluate(Self.request(principal: Self.sleep)).isAllowed)
        #expect(!engine.evaluate(Self.request(principal: nil)).isAllowed)
        #expect(!engine.evaluate(Self.request("GET", "/productpages", principal: Self.gateway)).isAllowed)
    }

    @Test func denyBeatsAllowAndNamesItsRule() throws {
        let engine = try Self.engine([
            "allow": "  rules: [{}]",
            "deny-admin": """
              action: DENY
              rules:
              - to: [{operation: {paths: [/never]}}]
              - when: [{key: "request.headers[x-token]", values: [admin]}]
            """,
        ])
        #expect(engine.evaluate(Self.request(headers: [("x-token", "guest")])).isAllowed)
        let verdict = engine.evaluate(Self.request(headers: [("X-Token", "admin")]))
        #expect(verdict.details == "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-admin]-rule[1]]")
        #expect(verdict.policyLabel == "istio-system/deny-admin")
    }

    @Test(arguments: [
        // (pattern, value, matches)
        ("/api/*", "/api/v1", true), ("/api/*", "/apix", false), ("*.js", "/a/b.js", true), ("*.js", "/a/b.css", false),
        ("*", "/anything", true), ("/exact", "/exact", true), ("/exact", "/exact/", false),
    ])
    func pathMatchForms(pattern: String, path: String, matches: Bool) throws {
        let engine = try Self.engine(["p": "  rules: [{to: [{operation: {paths: [\"\(pattern)\"]}}]}]"])
        #expect(engine.evaluate(Self.request("GET", path)).isAllowed == matches)
    }

    @Test func notFormsExcludeWhatTheyName() throws {
        let engine = try Self.engine([
            "p": """
              rules:
              - to: [{operation: {notPaths: ["/admin*"], notMethods: [DELETE], notHosts: ["*.internal"]}}]
                from: [{source: {notNamespaces: [blocked], notIpBlocks: [127.0.2.0/24]}}]
            """,
        ])
        #expect(engine.evaluate(Self.request(principal: Self.sleep)).isAllowed)
        #expect(!engine.evaluate(Self.request("GET", "/admin/x")).isAllowed)
        #expect(!engine.evaluate(Self.request("DELETE", "/x")).isAllowed)
        #expect(!engine.evaluate(Self.request(host: "db.internal")).isAllowed)
        #expect(!engine.evaluate(Self.request(principal: "cluster.local/ns/blocked/sa/x")).isAllowed)
        #expect(!engine.evaluate(Self.request(source: "127.0.2.9")).isAllowed)
    }

    @Test func hostsMatchCaseInsensitivelyWithOrWithoutPort() throws {
        let engine = try Self.engine(["p": "  rules: [{to: [{operation: {hosts: [Bookinfo.Example, \"*.svc:8080\"]}}]}]"])
        #expect(engine.evaluate(Self.request(host: "bookinfo.example:80")).isAllowed)
        #expect(engine.evaluate(Self.request(host: "BOOKINFO.example")).isAllowed)
        #expect(engine.evaluate(Self.request(host: "a.svc:8080")).isAllowed)
        #expect(!engine.evaluate(Self.request(host: "other.example")).isAllowed)
    }

    @Test func ipBlocksReadThePeerAndRemoteIpBlocksTheTrustedForwardedFor() throws {
        let engine = try Self.engine([
            "p": "  rules: [{from: [{source: {ipBlocks: [127.0.1.0/24], remoteIpBlocks: [\"203.0.113.0/24\"]}}]}]",
        ])
        #expect(engine.evaluate(Self.request(source: "127.0.1.5", forwardedFor: "198.51.100.1, 203.0.113.7")).isAllowed)
        #expect(!engine.evaluate(Self.request(source: "127.0.1.5", forwardedFor: "203.0.113.7, 198.51.100.1")).isAllowed)
        #expect(!engine.evaluate(Self.request(source: "127.0.2.5", forwardedFor: "203.0.113.7")).isAllowed)
        // With no header, the remote address is the peer's.
        #expect(!engine.evaluate(Self.request(source: "127.0.1.5")).isAllowed)
    }

    @Test func remoteAddressTrustsOnlyTheConfiguredHops() {
        let peer: [UInt8] = [10, 0, 0, 1]
        #expect(RemoteAddress.resolve(peer: peer, forwardedFor: ["1.1.1.1, 2.2.2.2"], trusted: 0) == peer)
        #expect(RemoteAddress.resolve(peer: peer, forwardedFor: ["1.1.1.1, 2.2.2.2"], trusted: 1) == [2, 2, 2, 2])
        #expect(RemoteAddress.resolve(peer: peer, forwardedFor: ["1.1.1.1", "2.2.2.2"], trusted: 2) == [1, 1, 1, 1])
        #expect(RemoteAddress.resolve(peer: peer, forwardedFor: ["1.1.1.1"], trusted: 2) == peer)
        #expect(RemoteAddress.resolve(peer: peer, forwardedFor: ["junk"], trusted: 1) == peer)
    }

    @Test func whenConditionsReadEveryKey() throws {
        let auth = RequestAuth(
            principal: "https://issuer.example/alice", audiences: ["bookinfo"], presenter: "web",
            claims: ["groups": .array([.string("dev"), .string("ops")]), "realm": .object(["level": .number(3)])]
        )
        let cases: [(String, Bool)] = [
            ("{key: source.ip, values: [127.0.1.0/24]}", true),
            ("{key: source.ip, notValues: [127.0.1.5]}", false),
            ("{key: remote.ip, values: [127.0.1.5]}", true),
            ("{key: source.namespace, values: [foo]}", true),
            ("{key: source.principal, values: [\"*/sa/sleep\"]}", true),
            ("{key: request.auth.principal, values: [\"https://issuer.example/*\"]}", true),
            ("{key: request.auth.audiences, values: [bookinfo]}", true),
            ("{key: request.auth.presenter, values: [mobile]}", false),
            ("{key: \"request.auth.claims[groups]\", values: [ops]}", true),
            ("{key: \"request.auth.claims[groups]\", values: [admin]}", false),
            ("{key: \"request.auth.claims[realm][level]\", values: [\"3\"]}", true),
            ("{key: destination.ip, values: [127.0.0.1]}", true),
            ("{key: destination.port, values: [\"8080\"]}", true),
            ("{key: destination.port, values: [\"9080\"]}", false),
            ("{key: connection.sni, values: [\"*.example\"]}", true),
            ("{key: \"request.headers[user-agent]\", values: [\"*\"]}", false),
        ]
        for (condition, expected) in cases {
            let engine = try Self.engine(["p": "  rules: [{when: [\(condition)]}]"])
            #expect(engine.evaluate(Self.request(principal: Self.sleep, auth: auth)).isAllowed == expected, "\(condition)")
        }
    }

    @Test func requestPrincipalsStarRequiresAToken() throws {
        let engine = try Self.engine(["require-jwt": "  rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]"])
        #expect(!engine.evaluate(Self.request()).isAllowed)
        let auth = RequestAuth(principal: "iss/sub", audiences: [], presenter: nil, claims: [:])
        #expect(engine.evaluate(Self.request(auth: auth)).isAllowed)
    }

    /// On a TCP connection an ALLOW rule with HTTP fields never matches; a DENY rule drops them.
    @Test func tcpConnectionsSeeOnlyConnectionFields() throws {
        let allow = try Self.engine([
            "tcp": "  rules: [{from: [{source: {principals: [\"\(Self.sleep)\"]}}], to: [{operation: {ports: [\"9000\"]}}]}]",
            "http": "  rules: [{to: [{operation: {methods: [GET]}}]}]",
        ])
        #expect(allow.evaluate(Self.connection(principal: Self.sleep)).isAllowed)
        #expect(!allow.evaluate(Self.connection(principal: Self.sleep, port: 9001)).isAllowed)
        #expect(!allow.evaluate(Self.connection(principal: Self.gateway)).isAllowed)
        let deny = try Self.engine(["d": "  action: DENY\n  rules: [{to: [{operation: {methods: [POST], ports: [\"9000\"]}}]}]"])
        #expect(!deny.evaluate(Self.connection()).isAllowed)
        #expect(deny.evaluate(Self.connection(port: 9001)).isAllowed)
    }

    @Test func dryRunAndAuditNeverDecide() throws {
        let engine = try Self.engine([
            "shadow": "  action: DENY\n  rules: [{}]",
            "audit": "  action: AUDIT\n  rules: [{to: [{operation: {paths: [/productpage]}}]}]",
        ])
        // Enforced, the same DENY refuses; dry-run (the annotation, below) only reports.
        #expect(!engine.evaluate(Self.request()).isAllowed)
        var policies = try #require(ConfigLoader.load(files: [ConfigFile(path: "p.yaml", contents: """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: shadow, namespace: istio-system, annotations: {"istio.io/dry-run": "true"}}
            spec: {action: DENY, rules: [{}]}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: audit, namespace: istio-system}
            spec: {action: AUDIT, rules: [{to: [{operation: {paths: [/productpage]}}]}]}
            """)]).configuration).authorizationPolicies
        policies.sort { $0.meta.name < $1.meta.name }
        let shadowed = AuthorizationEngine(policies)
        #expect(shadowed.evaluate(Self.request()).isAllowed)
        #expect(shadowed.evaluateDryRun(Self.request())?.isAllowed == false)
        #expect(shadowed.audited(Self.request()).map(\.policy.name) == ["audit"])
        #expect(shadowed.audited(Self.request("GET", "/other")).isEmpty)
    }
}

/// The compiled blocks (two masked words) agree with ``CIDR/contains(_:)`` on every prefix length.
@Suite struct CompiledBlockTests {
    @Test func masksAgreeWithTheByteWiseCheck() throws {
        var generator = SystemRandomNumberGenerator()
        for family in [4, 16] {
            for prefix in 0...(family * 8) {
                let base = (0..<family).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let text = IPAddressParser.format(base) + "/\(prefix)"
                let cidr = try #require(CIDR(text), "\(text)")
                let block = CompiledBlock(cidr)
                for _ in 0..<20 {
                    var probe = base
                    let flip = Int.random(in: 0..<(family * 8), using: &generator)
                    probe[flip / 8] ^= UInt8(0x80 >> (flip % 8))
                    for address in [base, probe] {
                        #expect(block.contains(try #require(IPValue(address))) == cidr.contains(address), "\(text) \(address)")
                    }
                }
                // An address of the other family is never inside, even under /0.
                #expect(!block.contains(try #require(IPValue(family == 4 ? [UInt8](repeating: 0, count: 16) : [0, 0, 0, 0]))))
            }
        }
    }
}
