import Testing

@testable import MeshConfig

/// Gateways, and the TCP routing rules that bind to them.
@Suite struct GatewayAndTCPTests {
    static func gateway(_ name: String, port: Int, protocol proto: String, hosts: String = "[\"*\"]", selector: String = "{istio: ingressgateway}") -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: \(name)}
        spec:
          selector: \(selector)
          servers:
          - port: {number: \(port), name: \(proto.lowercased())-\(port), protocol: \(proto)}
            hosts: \(hosts)
        ---

        """
    }

    static let tcpEcho = ("conf/tcp-echo-service.yaml", serviceYAML("tcp-echo", port: 9000))

    static func tcpVirtualService(_ name: String, host: String, match: String) -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: \(name)}
        spec:
          hosts: ["\(host)"]
          gateways: [tcp-gw]
          tcp:
          - \(match)
            route:
            - destination: {host: tcp-echo}
        ---

        """
    }

    @Test func serverFieldsAreDecoded() throws {
        let result = load("""
            apiVersion: networking.istio.io/v1alpha3
            kind: Gateway
            metadata: {name: gw, namespace: edge}
            spec:
              selector: {app: my-gateway}
              servers:
              - port: {number: 80, name: http, protocol: http}
                hosts: ["edge/*.bookinfo.com", "./uk.bookinfo.com", "*/eu.bookinfo.com", "*"]
                name: plain
                tls: {httpsRedirect: true}
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: [bookinfo.com]
                tls:
                  mode: SIMPLE
                  credentialName: bookinfo-cert
            """)
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let gateway = try #require(result.configuration?.gateways.first)
        #expect(gateway.selector == ["app": "my-gateway"])
        #expect(gateway.servers == [
            GatewayServer(
                portNumber: 80, portName: "http", protocol: .http,
                hosts: ["*.bookinfo.com", "uk.bookinfo.com", "eu.bookinfo.com", "*"], name: "plain", httpsRedirect: true
            ),
            GatewayServer(
                portNumber: 443, portName: "https", protocol: .https, hosts: ["bookinfo.com"],
                tls: ServerTLSSettings(
                    mode: .simple, certificatePath: "conf/certs/bookinfo-cert/tls.crt",
                    privateKeyPath: "conf/certs/bookinfo-cert/tls.key", credentialName: "bookinfo-cert",
                    location: SourceLocation(file: "conf/test.yaml", line: 13)
                )
            ),
        ])
    }

    @Test func serverRequirementsAreChecked() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 0, protocol: HTTP}
                hosts: []
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: [a.com]
              - port: {number: 53, name: dns, protocol: UDP}
                hosts: ["*"]
            """)
        #expect(result.errors.map(\.description) == [
            "conf/test.yaml:6: error: Gateway/gw.spec.servers[0].port.number: 0 is out of range 1..65535",
            "conf/test.yaml:6: error: Gateway/gw.spec.servers[0].port.name: required field is missing",
            "conf/test.yaml:7: error: Gateway/gw.spec.servers[0].hosts: a server needs at least one host",
            "conf/test.yaml:8: error: Gateway/gw.spec.servers[1].tls: an HTTPS server needs tls settings",
            "conf/test.yaml:10: error: Gateway/gw.spec.servers[2].port.protocol: invalid protocol \"UDP\"; expected one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO",
        ])
    }

    @Test func portDeclaredTwiceWithDifferentProtocolsIsAnError() {
        let result = load(
            Self.gateway("web", port: 8080, protocol: "HTTP") + Self.gateway("raw", port: 8080, protocol: "TCP")
                + Self.gateway("web2", port: 8080, protocol: "HTTP")
        )
        #expect(result.errors.map(\.description) == [
            "conf/test.yaml:16: error: Gateway/raw.spec.servers[0].port: port 8080 is declared TCP here but HTTP by Gateway/web (conf/test.yaml:7); one port serves one protocol"
        ])
    }

    /// HTTPS and TLS share a port (told apart by SNI, so with different hosts); gateways for other
    /// instances do not clash.
    @Test func portSharingThatIsFine() {
        let result = load(
            Self.gateway("https", port: 443, protocol: "HTTPS", hosts: "[web.example.com]\n    tls: {mode: SIMPLE, credentialName: web}")
                + Self.gateway("passthrough", port: 443, protocol: "TLS", hosts: "[\"*\"]\n    tls: {mode: PASSTHROUGH}")
                + Self.gateway("ingress", port: 80, protocol: "HTTP")
                + Self.gateway("egress", port: 80, protocol: "TCP", selector: "{istio: egressgateway}")
        )
        #expect(result.errors.isEmpty, "\(result.lines)")
    }

    @Test func tcpMatchOnAHostIsRefusedWithAHint() {
        let result = load([
            Self.tcpEcho,
            ("conf/tcp.yaml", Self.gateway("tcp-gw", port: 31400, protocol: "TCP") + """
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: tcp-echo}
                spec:
                  hosts: ["*"]
                  gateways: [tcp-gw]
                  tcp:
                  - match:
                    - port: 31400
                      sniHosts: [echo.example.com]
                    - authority: {exact: echo.example.com}
                    route:
                    - destination: {host: tcp-echo}
                """),
        ])
        #expect(result.errors.count == 2)
        let sni = result.find(.error, "conf/tcp.yaml:19:", "VirtualService/tcp-echo.spec.tcp[0].match[0].sniHosts:")
        #expect(sni.count == 1)
        #expect(sni.first?.message.contains("plain TCP carries no host name") == true)
        #expect(sni.first?.message.contains("protocol TLS and a VirtualService tls route matching sniHosts") == true)
        #expect(result.find(.error, "conf/tcp.yaml:20:", "tcp[0].match[1].authority: a tcp route cannot match 'authority'").count == 1)
    }

    /// istio#19884: two VirtualServices with tcp routes on one gateway and port.
    @Test func twoTCPVirtualServicesOnOneGatewayPortAreAnError() {
        let result = load([
            Self.tcpEcho,
            ("conf/tcp.yaml", Self.gateway("tcp-gw", port: 31400, protocol: "TCP")
                + Self.tcpVirtualService("echo-a", host: "a.example.com", match: "match: [{port: 31400}]")
                + Self.tcpVirtualService("echo-b", host: "b.example.com", match: "match: [{port: 31400}]")
                + Self.tcpVirtualService("echo-c", host: "c.example.com", match: "match: [{port: 31401}]")),
        ])
        #expect(result.errors.map(\.description) == [
            "conf/tcp.yaml:28: error: VirtualService/echo-b.spec.tcp[0]: VirtualService/echo-a (conf/tcp.yaml:17) already routes TCP on Gateway default/tcp-gw port 31400; plain TCP carries no host name, so two VirtualServices cannot be told apart by their hosts (istio#19884): merge the tcp routes into one VirtualService or use different ports"
        ])
    }

    @Test func twoTCPVirtualServicesWithoutPortsAreAnError() {
        let result = load([
            Self.tcpEcho,
            ("conf/tcp.yaml", Self.gateway("tcp-gw", port: 31400, protocol: "TCP")
                + Self.tcpVirtualService("echo-a", host: "a.example.com", match: "match: []")
                + Self.tcpVirtualService("echo-b", host: "b.example.com", match: "match: [{sourceLabels: {app: x}}]")),
        ])
        #expect(result.find(.error, "VirtualService/echo-b.spec.tcp[0]", "VirtualService/echo-a", "every port").count == 1)
        #expect(result.errors.count == 1)
    }
}
