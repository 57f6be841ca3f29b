import Testing

@testable import MeshConfig

/// PeerAuthentication scopes, DestinationRule `tls`, the sidecar's settings.
@Suite struct SecurityTests {
    static func peerAuthentication(_ name: String, namespace: String, mode: String, selector: String? = nil, portLevel: String? = nil) -> String {
        var spec = "  mtls: {mode: \(mode)}\n"
        if let selector { spec += "  selector: {matchLabels: {\(selector)}}\n" }
        if let portLevel { spec += "  portLevelMtls: {\(portLevel)}\n" }
        return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: \(name), namespace: \(namespace)}\nspec:\n\(spec)"
    }

    @Test func theNarrowestPolicyDecidesAndPermissiveIsTheDefault() throws {
        let none = try #require(load("").configuration)
        #expect(none.peerAuthenticationMode(namespace: "default", labels: [:], appPort: 9080) == .permissive)

        let result = load([
            ("conf/mesh.yaml", Self.peerAuthentication("default", namespace: "istio-system", mode: "STRICT")),
            ("conf/ns.yaml", Self.peerAuthentication("default", namespace: "legacy", mode: "PERMISSIVE")),
            ("conf/wl.yaml", Self.peerAuthentication("reviews", namespace: "legacy", mode: "UNSET", selector: "app: reviews", portLevel: "\"9080\": {mode: DISABLE}")),
        ])
        #expect(!result.diagnostics.contains { $0.severity == .error }, "\(result.lines)")
        let config = try #require(result.configuration)
        #expect(config.peerAuthenticationMode(namespace: "default", labels: ["app": "x"], appPort: 80) == .strict)
        #expect(config.peerAuthenticationMode(namespace: "legacy", labels: ["app": "x"], appPort: 80) == .permissive)
        // UNSET inherits the namespace's mode; the port level wins for its port.
        #expect(config.peerAuthenticationMode(namespace: "legacy", labels: ["app": "reviews"], appPort: 80) == .permissive)
        #expect(config.peerAuthenticationMode(namespace: "legacy", labels: ["app": "reviews"], appPort: 9080) == .disable)
    }

    @Test func anUnknownModeIsAnErrorAtItsLine() {
        let result = load(Self.peerAuthentication("p", namespace: "default", mode: "STRICTEST"))
        #expect(result.configuration == nil)
        #expect(result.lines.contains { $0.hasPrefix("conf/test.yaml:5: error:") && $0.contains("STRICTEST") }, "\(result.lines)")
    }

    @Test func destinationRuleTLSIsReadAtEveryLevel() throws {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: reviews, namespace: default}
            spec:
              host: reviews
              trafficPolicy:
                tls: {mode: ISTIO_MUTUAL}
                portLevelSettings:
                - port: {number: 9443}
                  tls: {mode: SIMPLE, sni: reviews.example}
              subsets:
              - name: v1
                labels: {version: v1}
                trafficPolicy: {tls: {mode: DISABLE}}
            """)
        let rule = try #require(result.configuration?.destinationRules.first, "\(result.lines)")
        let policy = try #require(rule.trafficPolicy)
        #expect(policy.tls?.mode == .istioMutual)
        #expect(policy.forPort(9443).tls?.mode == .simple)
        #expect(policy.forPort(9443).tls?.sni == "reviews.example")
        #expect(policy.forPort(9080).tls?.mode == .istioMutual)
        #expect(rule.subsets[0].trafficPolicy?.overriding(policy).tls?.mode == .disable)
    }

    @Test func mutualWithoutAClientCertificateIsAnError() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: reviews}
            spec:
              host: reviews
              trafficPolicy:
                tls: {mode: MUTUAL}
            """)
        #expect(result.lines.contains { $0.contains("MUTUAL needs clientCertificate and privateKey") }, "\(result.lines)")
    }

    @Test func sidecarSettingsAreRead() throws {
        let result = load([
            ("conf/meshgate.yaml", """
                workload: {name: reviews-v1, namespace: shop, serviceAccount: reviews, address: 127.0.1.3, labels: {app: reviews}}
                appPorts: {9080: 19080}
                outboundTCP: {15031: "tcp-echo:9000"}
                caDir: ca
                certTTL: 1h
                """),
        ])
        let settings = try #require(result.configuration?.settings, "\(result.lines)")
        #expect(settings.workloadName == "reviews-v1")
        #expect(settings.namespace == "shop")
        #expect(settings.serviceAccount == "reviews")
        #expect(settings.bindAddress == "127.0.1.3")
        #expect(settings.labels == ["app": "reviews"])
        #expect(settings.appPorts == [9080: 19080])
        #expect(settings.outboundTCP[15031] == OutboundTCPService(host: "tcp-echo.shop.svc.cluster.local", port: 9000))
        #expect(settings.caDir == "conf/ca")
        #expect(settings.certTTL == .seconds(3600))
    }

    @Test func portKeyedSettingsNameTheBadKeyAtItsLine() {
        let result = load([
            ("conf/meshgate.yaml", """
                workload: {name: reviews-v1, address: 127.0.1.3}
                appPorts:
                  http: 19080
                  9080: 19080
                outboundTCP:
                  70000: "tcp-echo:9000"
                  15031: "tcp-echo"
                """),
        ])
        let lines = result.lines.filter { $0.contains("appPorts") || $0.contains("outboundTCP") }
        #expect(lines.contains { $0.hasPrefix("conf/meshgate.yaml:3: error:") && $0.contains("'http' is not a service port (1..65535)") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("conf/meshgate.yaml:6: error:") && $0.contains("'70000' is not a local port (1..65535)") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("conf/meshgate.yaml:7: error:") && $0.contains("invalid service \"tcp-echo\"") }, "\(lines)")
        #expect(lines.count == 3, "\(lines)")
    }

    @Test func anUnknownCipherSuiteIsAnErrorWithAHint() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: ["*"]
                tls:
                  mode: SIMPLE
                  serverCertificate: a.pem
                  privateKey: a.key
                  cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA257]
            """)
        #expect(result.configuration == nil)
        #expect(result.lines.contains { $0.hasPrefix("conf/test.yaml:13: error:") && $0.contains("did you mean ECDHE-ECDSA-AES128-GCM-SHA256") }, "\(result.lines)")
    }
}
