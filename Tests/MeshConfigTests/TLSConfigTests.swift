import Foundation
import Testing

@testable import MeshConfig

/// Gateway `servers[].tls`, `meshgate.yaml` `credentialsDir`, and VirtualService `tls[]` routes.
@Suite struct TLSConfigTests {
    /// A Gateway `gw` whose one server (line 7) has `tls:` on line 9 and the given tls lines from
    /// line 10 on.
    static func gateway(protocol proto: String = "HTTPS", port: Int = 443, hosts: String = "[web.example.com]", tls: [String]?) -> String {
        let block = tls.map { lines in "\n    tls:" + lines.map { "\n      \($0)" }.joined() } ?? ""
        return GatewayAndTCPTests.gateway("gw", port: port, protocol: proto, hosts: hosts + block)
    }

    /// Loads one Gateway as conf/gw.yaml, beside conf/meshgate.yaml (`settings`).
    static func loadGateway(_ yaml: String, settings: String = "{}") -> ConfigLoadResult {
        load([("conf/meshgate.yaml", settings), ("conf/gw.yaml", yaml)])
    }

    /// The one server's TLS settings.
    static func serverTLS(_ result: ConfigLoadResult) throws -> ServerTLSSettings {
        try #require(result.configuration?.gateways.first?.servers.first?.tls)
    }

    // MARK: Decoding and paths

    @Test func simpleWithFilesResolvesRelativePathsAgainstTheConfigDirectory() throws {
        let result = Self.loadGateway(Self.gateway(tls: [
            "serverCertificate: certs/web.crt",
            "privateKey: /etc/ssl/private/web.key",
            "minProtocolVersion: TLSV1_2",
            "maxProtocolVersion: TLSV1_3",
            "cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256]",
        ]))
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        #expect(try Self.serverTLS(result) == ServerTLSSettings(
            mode: .simple,  // the default when certificates are given
            certificatePath: "conf/certs/web.crt",
            privateKeyPath: "/etc/ssl/private/web.key",
            minProtocolVersion: .v1_2,
            maxProtocolVersion: .v1_3,
            cipherSuites: ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"],
            location: SourceLocation(file: "conf/gw.yaml", line: 9)
        ))
    }

    @Test func credentialNameReadsTheCredentialsDirectoryBesideMeshgateYAML() throws {
        let result = load([
            ("etc/meshgate/meshgate.yaml", "{}"),
            ("etc/meshgate/gateways/gw.yaml", Self.gateway(tls: ["mode: SIMPLE", "credentialName: web-credential"])),
        ])
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let configuration = try #require(result.configuration)
        #expect(configuration.settings.credentialsDir == "etc/meshgate/certs")
        let tls = try Self.serverTLS(result)
        #expect(tls.mode == .simple)
        #expect(tls.credentialName == "web-credential")
        #expect(tls.certificatePath == "etc/meshgate/certs/web-credential/tls.crt")
        #expect(tls.privateKeyPath == "etc/meshgate/certs/web-credential/tls.key")
        #expect(tls.caCertificatesPath == nil)  // SIMPLE asks for no client certificate
    }

    @Test(arguments: [
        ("credentialsDir: secrets", "conf/secrets"),
        ("credentialsDir: ./tls/../secrets/", "conf/tls/../secrets"),
        ("credentialsDir: /var/lib/meshgate/credentials", "/var/lib/meshgate/credentials"),
    ])
    func credentialsDirKeyIsResolvedAgainstTheConfigDirectory(setting: String, directory: String) throws {
        let result = Self.loadGateway(Self.gateway(tls: ["mode: MUTUAL", "credentialName: web"]), settings: setting)
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        #expect(result.configuration?.settings.credentialsDir == directory)
        let tls = try Self.serverTLS(result)
        #expect(tls.certificatePath == "\(directory)/web/tls.crt")
        #expect(tls.privateKeyPath == "\(directory)/web/tls.key")
        #expect(tls.caCertificatesPath == "\(directory)/web/ca.crt")  // MUTUAL: the credential's CA
    }

    @Test func mutualCredentialKeepsItsOwnCaCertificatesWhenGiven() throws {
        let result = Self.loadGateway(Self.gateway(tls: [
            "mode: OPTIONAL_MUTUAL", "credentialName: web", "caCertificates: clients/ca.pem",
            "subjectAltNames: [spiffe://example.com/client, client.example.com]",
        ]))
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let tls = try Self.serverTLS(result)
        #expect(tls.mode == .optionalMutual)
        #expect(tls.certificatePath == "conf/certs/web/tls.crt")
        #expect(tls.caCertificatesPath == "conf/clients/ca.pem")
        #expect(tls.subjectAltNames == ["spiffe://example.com/client", "client.example.com"])
    }

    @Test func optionalMutualCredentialUsesItsCaCrt() throws {
        let result = Self.loadGateway(Self.gateway(tls: ["mode: OPTIONAL_MUTUAL", "credentialName: web"]))
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        #expect(try Self.serverTLS(result).caCertificatesPath == "conf/certs/web/ca.crt")
    }

    /// Without meshgate.yaml, paths start at the directory of the file that names them.
    @Test func withoutMeshgateYAMLPathsStartAtTheResourceFile() throws {
        let result = load([
            ("conf/services/empty.yaml", ""),
            ("conf/gateways/gw.yaml", Self.gateway(tls: ["credentialName: web"])),
            ("conf/gateways/edge/gw2.yaml", Self.gateway(tls: ["serverCertificate: web.crt", "privateKey: web.key"])
                .replacingOccurrences(of: "{name: gw}", with: "{name: gw2}")
                .replacingOccurrences(of: "web.example.com", with: "other.example.com")),
        ])
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let gateways = try #require(result.configuration?.gateways)
        #expect(gateways[0].servers[0].tls?.certificatePath == "conf/gateways/certs/web/tls.crt")
        #expect(gateways[1].servers[0].tls?.certificatePath == "conf/gateways/edge/web.crt")
        #expect(gateways[1].servers[0].tls?.privateKeyPath == "conf/gateways/edge/web.key")
        // The settings' own credentialsDir starts at the first file's directory.
        #expect(result.configuration?.settings.credentialsDir == "conf/services/certs")
    }

    @Test func aLoadedDirectoryMakesPathsAbsolute() throws {
        try DirectoryTests().withDirectory([
            "conf/meshgate.yaml": "credentialsDir: creds\n",
            "conf/gateways/gw.yaml": Self.gateway(tls: ["mode: MUTUAL", "credentialName: web"]),
        ]) { root in
            let result = ConfigLoader.load(directory: "\(root)/conf/")
            #expect(result.diagnostics.isEmpty, "\(result.lines)")
            #expect(result.configuration?.settings.credentialsDir == "\(root)/conf/creds")
            let tls = try Self.serverTLS(result)
            #expect(tls.certificatePath == "\(root)/conf/creds/web/tls.crt")
            #expect(tls.privateKeyPath == "\(root)/conf/creds/web/tls.key")
            #expect(tls.caCertificatesPath == "\(root)/conf/creds/web/ca.crt")
            #expect(tls.location == SourceLocation(file: "\(root)/conf/gateways/gw.yaml", line: 9))
        }
    }

    @Test func credentialsDirMustBeANonEmptyString() {
        let result = Self.loadGateway(Self.gateway(tls: ["credentialName: web"]), settings: "credentialsDir: \"\"")
        #expect(result.errors.map(\.description) == [
            "conf/meshgate.yaml:1: error: credentialsDir: the credentials directory must not be empty"
        ])
        let list = Self.loadGateway(Self.gateway(tls: ["credentialName: web"]), settings: "credentialsDir: [a, b]")
        #expect(list.errors.map(\.description) == ["conf/meshgate.yaml:1: error: credentialsDir: expected a string, got a list"])
    }

    @Test func pathsHaveTheRightTypes() {
        let result = Self.loadGateway(Self.gateway(tls: [
            "serverCertificate: {file: a.crt}", "privateKey: \"\"", "credentialName: ../web", "subjectAltNames: a.example.com",
        ]))
        #expect(result.errors.map(\.description) == [
            "conf/gw.yaml:10: error: Gateway/gw.spec.servers[0].tls.serverCertificate: expected a string, got a map",
            "conf/gw.yaml:11: error: Gateway/gw.spec.servers[0].tls.privateKey: empty path",
            "conf/gw.yaml:12: error: Gateway/gw.spec.servers[0].tls.credentialName: invalid credentialName \"../web\": it names a directory in credentialsDir, so it must be one plain name",
            "conf/gw.yaml:12: error: Gateway/gw.spec.servers[0].tls.credentialName: set credentialName or serverCertificate and privateKey, not both: the credential holds tls.crt and tls.key",
            "conf/gw.yaml:13: error: Gateway/gw.spec.servers[0].tls.subjectAltNames: expected a list, got a string (\"a.example.com\")",
        ])
    }

    // MARK: Rules per server

    @Test(arguments: ["HTTPS", "TLS"])
    func aTLSServerNeedsTLSSettings(proto: String) {
        let result = Self.loadGateway(Self.gateway(protocol: proto, tls: nil))
        let article = proto == "HTTPS" ? "an" : "a"
        #expect(result.errors.map(\.description) == [
            "conf/gw.yaml:7: error: Gateway/gw.spec.servers[0].tls: \(article) \(proto) server needs tls settings"
        ])
    }

    @Test(arguments: ["SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"])
    func terminatingModesNeedACertificateAndKey(mode: String) {
        let nothing = Self.loadGateway(Self.gateway(tls: ["mode: \(mode)", "caCertificates: ca.pem"]))
        #expect(nothing.errors.map(\.description) == [
            "conf/gw.yaml:9: error: Gateway/gw.spec.servers[0].tls: \(mode) TLS needs serverCertificate and privateKey, or credentialName"
        ])
        let noKey = Self.loadGateway(Self.gateway(tls: ["mode: \(mode)", "serverCertificate: a.crt", "caCertificates: ca.pem"]))
        #expect(noKey.errors.map(\.description) == [
            "conf/gw.yaml:9: error: Gateway/gw.spec.servers[0].tls.privateKey: \(mode) TLS needs privateKey too, beside serverCertificate"
        ])
        let noCertificate = Self.loadGateway(Self.gateway(tls: ["mode: \(mode)", "privateKey: a.key", "caCertificates: ca.pem"]))
        #expect(noCertificate.errors.map(\.description) == [
            "conf/gw.yaml:9: error: Gateway/gw.spec.servers[0].tls.serverCertificate: \(mode) TLS needs serverCertificate too, beside privateKey"
        ])
    }

    @Test func credentialNameAndFilesAreExclusive() {
        let result = Self.loadGateway(Self.gateway(tls: ["credentialName: web", "serverCertificate: a.crt", "privateKey: a.key"]))
        #expect(result.errors.map(\.description) == [
            "conf/gw.yaml:10: error: Gateway/gw.spec.servers[0].tls.credentialName: set credentialName or serverCertificate and privateKey, not both: the credential holds tls.crt and tls.key"
        ])
    }

    @Test(arguments: ["MUTUAL", "OPTIONAL_MUTUAL"])
    func verifyingClientCertificatesNeedsACA(mode: String) throws {
        let result = Self.loadGateway(Self.gateway(tls: ["mode: \(mode)", "serverCertificate: a.crt", "privateKey: a.key"]))
        #expect(result.errors.map(\.description) == [
            "conf/gw.yaml:9: error: Gateway/gw.spec.servers[0].tls.caCertificates: \(mode) TLS verifies client certificates, so it needs caCertificates (or a caCertCredentialName or credentialName, whose ca.crt is used)"
        ])
        let withCA = Self.loadGateway(Self.gateway(tls: ["mode: \(mode)", "serverCertificate: a.crt", "privateKey: a.key", "caCertificates: ca.pem"]))
        #expect(withCA.diagnostics.isEmpty, "\(withCA.lines)")
        #expect(try Self.serverTLS(withCA).caCertificatesPath == "conf/ca.pem")
    }

    @Test func simpleWarnsAboutClientCertificateFieldsItDoesNotUse() throws {
        let result = Self.loadGateway(Self.gateway(tls: [
            "mode: SIMPLE", "credentialName: web", "caCertificates: ca.pem", "subjectAltNames: [client]",
        ]))
        #expect(result.lines == [
            "conf/gw.yaml:12: warning: Gateway/gw.spec.servers[0].tls.caCertificates: SIMPLE TLS does not ask for client certificates, so caCertificates is not used (use MUTUAL or OPTIONAL_MUTUAL)",
            "conf/gw.yaml:13: warning: Gateway/gw.spec.servers[0].tls.subjectAltNames: SIMPLE TLS does not ask for client certificates, so subjectAltNames is not used (use MUTUAL or OPTIONAL_MUTUAL)",
        ])
        #expect(try Self.serverTLS(result).mode == .simple)
    }

    @Test(arguments: ["HTTPS", "TLS"])
    func passthroughTakesNoCertificates(proto: String) throws {
        let plain = Self.loadGateway(Self.gateway(protocol: proto, tls: ["mode: PASSTHROUGH"]))
        #expect(plain.diagnostics.isEmpty, "\(plain.lines)")
        #expect(try Self.serverTLS(plain) == ServerTLSSettings(mode: .passthrough, location: SourceLocation(file: "conf/gw.yaml", line: 9)))

        let result = Self.loadGateway(Self.gateway(protocol: proto, tls: [
            "mode: PASSTHROUGH", "credentialName: web", "serverCertificate: a.crt", "minProtocolVersion: TLSV1_2",
        ]))
        #expect(result.lines == [
            "conf/gw.yaml:11: warning: Gateway/gw.spec.servers[0].tls.credentialName: PASSTHROUGH does not terminate TLS, so credentialName is not used",
            "conf/gw.yaml:12: warning: Gateway/gw.spec.servers[0].tls.serverCertificate: PASSTHROUGH does not terminate TLS, so serverCertificate is not used",
            "conf/gw.yaml:13: warning: Gateway/gw.spec.servers[0].tls.minProtocolVersion: PASSTHROUGH does not terminate TLS, so minProtocolVersion is not used",
        ])
        #expect(try Self.serverTLS(result).mode == .passthrough)
    }

    /// Istio's TLSmode enum starts with PASSTHROUGH, so a tls block with neither mode nor
    /// certificates passes through; said as a warning, since it is rarely what was meant.
    @Test func noModeAndNoCertificatesIsPassthroughWithAWarning() throws {
        let result = Self.loadGateway(Self.gateway(tls: ["minProtocolVersion: TLSV1_2"]))
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.find(.warning, "conf/gw.yaml:9:", "tls.mode: no mode and no certificates: PASSTHROUGH (Istio's default)").count == 1)
        #expect(try Self.serverTLS(result).mode == .passthrough)
    }

    @Test(arguments: ["HTTP", "HTTP2", "GRPC", "TCP"])
    func aPlainTextServerTakesNoTLSSettings(proto: String) {
        for field in ["mode: PASSTHROUGH", "mode: SIMPLE", "credentialName: web", "serverCertificate: a.crt"] {
            let result = Self.loadGateway(Self.gateway(protocol: proto, port: 8080, tls: [field]))
            #expect(result.errors.map(\.description) == [
                "conf/gw.yaml:10: error: Gateway/gw.spec.servers[0].tls.\(field.prefix { $0 != ":" }): a plain-text \(proto) server can only have httpsRedirect in its tls block (to serve TLS, use protocol HTTPS or TLS)"
            ])
        }
    }

    @Test func httpsRedirectStaysAPlainHTTPSetting() throws {
        let http = Self.loadGateway(Self.gateway(protocol: "HTTP", port: 80, tls: ["httpsRedirect: true"]))
        #expect(http.diagnostics.isEmpty, "\(http.lines)")
        let server = try #require(http.configuration?.gateways.first?.servers.first)
        #expect(server.httpsRedirect)
        #expect(server.tls == nil)
        let tcp = Self.loadGateway(Self.gateway(protocol: "TCP", port: 31400, tls: ["httpsRedirect: true"]))
        #expect(tcp.lines == ["conf/gw.yaml:10: warning: Gateway/gw.spec.servers[0].tls.httpsRedirect: httpsRedirect only applies to HTTP servers; ignored"])
    }

    @Test(arguments: [("ISTIO_MUTUAL", ServerTLSSettings.Mode.istioMutual), ("AUTO_PASSTHROUGH", .autoPassthrough)])
    func meshModesAreDecodedAndNotSupportedYet(mode: String, expected: ServerTLSSettings.Mode) throws {
        let result = Self.loadGateway(Self.gateway(protocol: "TLS", port: 15443, hosts: "[\"*.local\"]", tls: ["mode: \(mode)"]))
        #expect(result.lines == ["conf/gw.yaml:10: warning: Gateway/gw.spec.servers[0].tls.mode: mode \(mode) is not supported yet (it comes with the mesh); this server is not served"])
        #expect(try Self.serverTLS(result).mode == expected)
    }

    @Test func unknownModeIsAnErrorListingTheModes() {
        let result = Self.loadGateway(Self.gateway(tls: ["mode: simple", "credentialName: web"]))
        #expect(result.errors.map(\.description) == [
            "conf/gw.yaml:10: error: Gateway/gw.spec.servers[0].tls.mode: invalid value \"simple\"; expected one of SIMPLE, MUTUAL, OPTIONAL_MUTUAL, PASSTHROUGH, ISTIO_MUTUAL, AUTO_PASSTHROUGH"
        ])
    }

    @Test func protocolVersionsAreCheckedByNameAndOrder() throws {
        let unknown = Self.loadGateway(Self.gateway(tls: ["credentialName: web", "minProtocolVersion: TLSv1.2", "maxProtocolVersion: TLSV1_4"]))
        #expect(unknown.errors.map(\.description) == [
            "conf/gw.yaml:11: error: Gateway/gw.spec.servers[0].tls.minProtocolVersion: unknown TLS version \"TLSv1.2\" (did you mean TLSV1_2?); expected one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3",
            "conf/gw.yaml:12: error: Gateway/gw.spec.servers[0].tls.maxProtocolVersion: unknown TLS version \"TLSV1_4\" (did you mean TLSV1_0?); expected one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3",
        ])
        let inverted = Self.loadGateway(Self.gateway(tls: ["credentialName: web", "minProtocolVersion: TLSV1_3", "maxProtocolVersion: TLSV1_2"]))
        #expect(inverted.errors.map(\.description) == [
            "conf/gw.yaml:12: error: Gateway/gw.spec.servers[0].tls.maxProtocolVersion: maxProtocolVersion TLSV1_2 is below minProtocolVersion TLSV1_3"
        ])
        // TLS_AUTO leaves the bound to the library: no order to break.
        let auto = Self.loadGateway(Self.gateway(tls: ["credentialName: web", "minProtocolVersion: TLSV1_3", "maxProtocolVersion: TLS_AUTO"]))
        #expect(auto.diagnostics.isEmpty, "\(auto.lines)")
        #expect(try Self.serverTLS(auto).maxProtocolVersion == .auto)
    }

    @Test func unimplementedTLSFieldsAreWarningsAndCipherSuitesAreChecked() {
        let result = Self.loadGateway(Self.gateway(tls: [
            "credentialName: web", "verifyCertificateSpki: [abc]", "verifyCertificateHash: [def]", "caCrl: crl.pem",
            "cipherSuites: [AES128-SHA, \"\", AES128-SHA]",
        ]))
        #expect(result.lines == [
            "conf/gw.yaml:11: warning: Gateway/gw.spec.servers[0].tls.verifyCertificateSpki: not supported yet; ignored",
            "conf/gw.yaml:12: warning: Gateway/gw.spec.servers[0].tls.verifyCertificateHash: not supported yet; ignored",
            "conf/gw.yaml:13: warning: Gateway/gw.spec.servers[0].tls.caCrl: not supported yet; ignored",
            "conf/gw.yaml:14: error: Gateway/gw.spec.servers[0].tls.cipherSuites[1]: empty cipher suite",
            "conf/gw.yaml:14: warning: Gateway/gw.spec.servers[0].tls.cipherSuites[2]: cipher suite AES128-SHA is listed twice",
        ])
    }

    // MARK: Servers sharing a port

    /// A Gateway named `name` whose one server is on line 7 of its document.
    static func server(_ name: String, port: Int = 443, protocol proto: String, hosts: String, tls: String?) -> String {
        GatewayAndTCPTests.gateway(name, port: port, protocol: proto, hosts: hosts + (tls.map { "\n    tls: \($0)" } ?? ""))
    }

    @Test func httpsAndTLSServersShareAPortByHost() {
        let result = load(
            Self.server("a", protocol: "HTTPS", hosts: "[a.example.com]", tls: "{credentialName: a}")
                + Self.server("b", protocol: "HTTPS", hosts: "[\"*.example.com\"]", tls: "{credentialName: b}")
                + Self.server("c", protocol: "TLS", hosts: "[c.example.org]", tls: "{mode: PASSTHROUGH}")
        )
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
    }

    @Test func aHostOnTwoTLSServersOfOnePortIsAnError() {
        let result = load(
            Self.server("a", protocol: "HTTPS", hosts: "[a.example.com, b.example.com]", tls: "{credentialName: a}")
                + Self.server("b", protocol: "TLS", hosts: "[B.example.com]", tls: "{mode: PASSTHROUGH}")
                + Self.server("c", port: 8443, protocol: "HTTPS", hosts: "[a.example.com]", tls: "{credentialName: c}")
        )
        #expect(result.errors.map(\.description) == [
            "conf/test.yaml:17: error: Gateway/b.spec.servers[0].port: host b.example.com on port 443 is already served by Gateway/a (conf/test.yaml:7); servers sharing a port are told apart by SNI, so each host belongs to one of them"
        ])
    }

    @Test func httpAndHTTPSOnOnePortIsAnError() {
        let result = load(
            Self.server("web", port: 8443, protocol: "HTTP", hosts: "[\"*\"]", tls: nil)
                + Self.server("secure", port: 8443, protocol: "HTTPS", hosts: "[a.example.com]", tls: "{credentialName: a}")
        )
        #expect(result.errors.map(\.description) == [
            "conf/test.yaml:16: error: Gateway/secure.spec.servers[0].port: port 8443 is declared HTTPS here but HTTP by Gateway/web (conf/test.yaml:7); one port serves one protocol"
        ])
    }

    // MARK: VirtualService tls routes

    /// my-nginx in mesh-external on 443, with subsets v1 and v2.
    static let nginx = ("conf/nginx.yaml", serviceYAML("my-nginx", port: 443, versions: ["v1", "v2"], namespace: "mesh-external") + """
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: my-nginx, namespace: mesh-external}
        spec:
          host: my-nginx
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}

        """)

    /// A passthrough Gateway `gw` on 443 for *.example.com.
    static let passthroughGateway = ("conf/gw.yaml", Self.gateway(hosts: "[\"*.example.com\"]", tls: ["mode: PASSTHROUGH"]))

    /// A VirtualService `nginx` (hosts on line 5, tls rules from line 7 on) bound to `gw`.
    static func tlsVirtualService(hosts: String = "[nginx.example.com]", _ rules: String) -> (String, String) {
        ("conf/vs.yaml", """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: nginx}
            spec:
              hosts: \(hosts)
              gateways: [gw]
              tls:
            \(rules)
            """)
    }

    func loadTLS(hosts: String = "[nginx.example.com]", _ rules: String) -> ConfigLoadResult {
        load([Self.nginx, Self.passthroughGateway, Self.tlsVirtualService(hosts: hosts, rules)])
    }

    @Test func tlsRoutesAreDecodedWithWeightsAndGateways() throws {
        let result = self.loadTLS(hosts: "[\"*.example.com\"]", """
              - match:
                - sniHosts: [nginx.example.com, "*.nginx.example.com"]
                  port: 443
                - sniHosts: [other.example.com]
                  gateways: [default/gw]
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local, subset: v1}
                  weight: 80
                - destination: {host: my-nginx.mesh-external.svc.cluster.local, subset: v2, port: {number: 443}}
                  weight: 20
            """)
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let virtualService = try #require(result.configuration?.virtualServices.first)
        let host = "my-nginx.mesh-external.svc.cluster.local"
        #expect(virtualService.tls == [
            TLSRoute(
                match: [
                    TLSMatch(sniHosts: ["nginx.example.com", "*.nginx.example.com"], port: 443),
                    TLSMatch(sniHosts: ["other.example.com"], gateways: ["default/gw"]),
                ],
                route: [
                    RouteDestination(destination: Destination(host: host, subset: "v1"), weight: 80),
                    RouteDestination(destination: Destination(host: host, subset: "v2", port: 443), weight: 20),
                ],
                location: SourceLocation(file: "conf/vs.yaml", line: 8)
            )
        ])
        #expect(virtualService.gateways == ["default/gw"])
    }

    @Test func sniHostsAreRequiredAndWellFormed() {
        let result = self.loadTLS(hosts: "[\"*.example.com\"]", """
              - match:
                - port: 443
                - sniHosts: []
                - sniHosts: ["", "a.*.example.com", "a..example.com", "a b.example.com", "*"]
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
              - route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
              - match: []
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/vs.yaml:9: error: VirtualService/nginx.spec.tls[0].match[0].sniHosts: required field is missing",
            "conf/vs.yaml:10: error: VirtualService/nginx.spec.tls[0].match[1].sniHosts: a tls match needs at least one SNI host",
            "conf/vs.yaml:11: error: VirtualService/nginx.spec.tls[0].match[2].sniHosts[0]: invalid SNI host \"\": empty",
            "conf/vs.yaml:11: error: VirtualService/nginx.spec.tls[0].match[2].sniHosts[1]: invalid SNI host \"a.*.example.com\": a wildcard is only allowed as the whole first label, as in *.example.com",
            "conf/vs.yaml:11: error: VirtualService/nginx.spec.tls[0].match[2].sniHosts[2]: invalid SNI host \"a..example.com\": empty label",
            "conf/vs.yaml:11: error: VirtualService/nginx.spec.tls[0].match[2].sniHosts[3]: invalid SNI host \"a b.example.com\": a host name holds letters, digits, '-' and '.'",
            "conf/vs.yaml:11: error: VirtualService/nginx.spec.tls[0].match[2].sniHosts[4]: SNI host * is not within the VirtualService's hosts (*.example.com); each sniHost must be one of them or fall under a wildcard among them",
            "conf/vs.yaml:14: error: VirtualService/nginx.spec.tls[1].match: required field is missing",
            "conf/vs.yaml:16: error: VirtualService/nginx.spec.tls[2].match: a tls route needs at least one match with sniHosts",
        ])
    }

    /// Istio: "SNI host is not a compatible subset of any of the virtual service hosts".
    @Test func sniHostsFallWithinTheVirtualServiceHosts() {
        let result = self.loadTLS(hosts: "[nginx.example.com, \"*.apps.example.com\"]", """
              - match:
                - sniHosts: [nginx.example.com, a.apps.example.com, "*.x.apps.example.com", NGINX.example.com]
                - sniHosts: [other.example.com, "*.example.com"]
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/vs.yaml:10: error: VirtualService/nginx.spec.tls[0].match[1].sniHosts[0]: SNI host other.example.com is not within the VirtualService's hosts (nginx.example.com, *.apps.example.com); each sniHost must be one of them or fall under a wildcard among them",
            "conf/vs.yaml:10: error: VirtualService/nginx.spec.tls[0].match[1].sniHosts[1]: SNI host *.example.com is not within the VirtualService's hosts (nginx.example.com, *.apps.example.com); each sniHost must be one of them or fall under a wildcard among them",
        ])
    }

    /// A short host stands for its FQDN in the VirtualService's namespace, either way round.
    @Test func sniHostsMayNameAShortHostOrItsFQDN() throws {
        let result = load([Self.nginx, Self.passthroughGateway, ("conf/vs.yaml", """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: nginx, namespace: mesh-external}
            spec:
              hosts: [my-nginx]
              gateways: [default/gw]
              tls:
              - match:
                - sniHosts: [my-nginx, my-nginx.mesh-external.svc.cluster.local]
                route:
                - destination: {host: my-nginx}
            """)])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let route = try #require(result.configuration?.virtualServices.first?.tls.first)
        #expect(route.match == [TLSMatch(sniHosts: ["my-nginx", "my-nginx.mesh-external.svc.cluster.local"])])
        #expect(route.route.map(\.destination.host) == ["my-nginx.mesh-external.svc.cluster.local"])
    }

    @Test func tlsDestinationsAreCheckedAsTCPOnes() {
        let result = self.loadTLS("""
              - match:
                - sniHosts: [nginx.example.com]
                  destinationSubnets: [10.0.0.0/8]
                  sourceLabels: {app: x}
                  gateways: [gw, missing-gw]
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local, subset: v3}
                  weight: 60
                - destination: {host: nginx, port: {number: 8443}}
                  weight: 30
                - destination: {host: my-nginx.mesh-external.svc.cluster.local, port: {number: 8443}}
                  weight: 5
            """)
        #expect(result.lines.filter { $0.hasPrefix("conf/vs.yaml") } == [
            "conf/vs.yaml:10: warning: VirtualService/nginx.spec.tls[0].match[0].destinationSubnets: not supported yet; ignored",
            "conf/vs.yaml:11: warning: VirtualService/nginx.spec.tls[0].match[0].sourceLabels: not supported yet; ignored",
            "conf/vs.yaml:12: warning: VirtualService/nginx.spec.tls[0].match[0].gateways[1]: no Gateway default/missing-gw is declared, so nothing is bound to it",
            "conf/vs.yaml:13: warning: VirtualService/nginx.spec.tls[0].route: weights sum to 95, not 100; they are taken as relative, as Istio does (each destination gets its weight/95 of the traffic)",
            "conf/vs.yaml:14: warning: VirtualService/nginx.spec.tls[0].route[0].destination.subset: DestinationRule/my-nginx (conf/nginx.yaml:39) for my-nginx.mesh-external.svc.cluster.local has no subset 'v3' (its subsets: v1, v2); requests routed there get 503 (NC, cluster_not_found)",
            "conf/vs.yaml:16: warning: VirtualService/nginx.spec.tls[0].route[1].destination.host: host nginx resolves to nginx.default.svc.cluster.local, which no ServiceEntry or Service declares; requests routed there get 503 (NC, cluster_not_found)",
            "conf/vs.yaml:18: warning: VirtualService/nginx.spec.tls[0].route[2].destination.port: my-nginx.mesh-external.svc.cluster.local has no port 8443 (its ports: 443); requests routed there get 503 (NC, cluster_not_found)",
        ])
    }

    @Test func aTLSRouteOnAGatewayWithoutPassthroughIsNeverUsed() {
        let terminating = ("conf/gw.yaml", Self.gateway(hosts: "[\"*.example.com\"]", tls: ["credentialName: web"]))
        let result = load([Self.nginx, terminating, Self.tlsVirtualService("""
              - match:
                - sniHosts: [nginx.example.com]
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
            """)])
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.lines == [
            "conf/vs.yaml:8: warning: VirtualService/nginx.spec.tls[0]: Gateway default/gw has no PASSTHROUGH server, so this tls route is not used there (a server that terminates TLS takes http or tcp routes)"
        ])
        let wrongPort = self.loadTLS("""
              - match:
                - sniHosts: [nginx.example.com]
                  port: 8443
                route:
                - destination: {host: my-nginx.mesh-external.svc.cluster.local}
            """)
        #expect(wrongPort.lines == [
            "conf/vs.yaml:8: warning: VirtualService/nginx.spec.tls[0]: Gateway default/gw has no PASSTHROUGH server on port 8443, so this tls route is not used there (a server that terminates TLS takes http or tcp routes)"
        ])
    }

    // MARK: Istio's secure-ingress and SNI-passthrough tasks

    /// A WorkloadEntry named `name` in `namespace` with `labels`, at 127.0.1.x.
    static func workload(_ name: String, namespace: String = "default", labels: String, address: Int) -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          address: 127.0.1.\(address)
          labels: \(labels)
        ---

        """
    }

    /// httpbin (8000) and helloworld (5000) from the shared samples, with one endpoint each.
    static func sampleServices() throws -> [ConfigFile] {
        [
            try sample("httpbin/httpbin.yaml"), try sample("helloworld/helloworld.yaml"),
            ConfigFile(
                path: "conf/workloads.yaml",
                contents: Self.workload("httpbin", labels: "{app: httpbin, version: v1}", address: 1)
                    + Self.workload("helloworld-v1", labels: "{app: helloworld, version: v1}", address: 2)
            ),
        ]
    }

    /// Two hosts on 443, each with its own credential (the task's 03.yaml shape).
    @Test func secureIngressTwoHostsOnOnePortLoad() throws {
        let gateway = ConfigFile(path: "conf/secure-ingress.yaml", contents: """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: mygateway
            spec:
              selector:
                istio: ingressgateway # use istio default ingress gateway
              servers:
              - port:
                  number: 443
                  name: https-httpbin
                  protocol: HTTPS
                tls:
                  mode: SIMPLE
                  credentialName: httpbin-credential
                hosts:
                - httpbin.example.com
              - port:
                  number: 443
                  name: https-helloworld
                  protocol: HTTPS
                tls:
                  mode: SIMPLE
                  credentialName: helloworld-credential
                hosts:
                - helloworld.example.com
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata:
              name: httpbin
            spec:
              hosts:
              - "httpbin.example.com"
              gateways:
              - mygateway
              http:
              - match:
                - uri:
                    prefix: /status
                - uri:
                    prefix: /delay
                route:
                - destination:
                    port:
                      number: 8000
                    host: httpbin
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata:
              name: helloworld
            spec:
              hosts:
              - helloworld.example.com
              gateways:
              - mygateway
              http:
              - match:
                - uri:
                    exact: /hello
                route:
                - destination:
                    host: helloworld
                    port:
                      number: 5000
            """)
        let result = ConfigLoader.load(files: try Self.sampleServices() + [ConfigFile(path: "conf/meshgate.yaml", contents: ""), gateway])
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.warnings.isEmpty, "\(result.lines)")
        let servers = try #require(result.configuration?.gateways.first?.servers)
        #expect(servers.map(\.portNumber) == [443, 443])
        #expect(servers.map(\.hosts) == [["httpbin.example.com"], ["helloworld.example.com"]])
        #expect(servers.map(\.tls?.mode) == [.simple, .simple])
        #expect(servers.map(\.tls?.certificatePath) == ["conf/certs/httpbin-credential/tls.crt", "conf/certs/helloworld-credential/tls.crt"])
        #expect(servers.map(\.tls?.privateKeyPath) == ["conf/certs/httpbin-credential/tls.key", "conf/certs/helloworld-credential/tls.key"])
        #expect(servers.map(\.tls?.location?.line) == [13, 22])
        let routes = try #require(result.configuration?.virtualServices)
        #expect(routes.map(\.http.first?.route.first?.destination.host) == [
            "httpbin.default.svc.cluster.local", "helloworld.default.svc.cluster.local",
        ])
    }

    /// The task's MUTUAL gateway: the CA comes from the credential's ca.crt.
    @Test func secureIngressMutualLoads() throws {
        let gateway = ConfigFile(path: "conf/mutual.yaml", contents: """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: mygateway
            spec:
              selector:
                istio: ingressgateway # use istio default ingress gateway
              servers:
              - port:
                  number: 443
                  name: https
                  protocol: HTTPS
                tls:
                  mode: MUTUAL
                  credentialName: httpbin-credential # must be the same as secret
                hosts:
                - httpbin.example.com
            """)
        let result = ConfigLoader.load(files: [ConfigFile(path: "conf/meshgate.yaml", contents: ""), gateway])
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        #expect(try Self.serverTLS(result) == ServerTLSSettings(
            mode: .mutual,
            certificatePath: "conf/certs/httpbin-credential/tls.crt",
            privateKeyPath: "conf/certs/httpbin-credential/tls.key",
            caCertificatesPath: "conf/certs/httpbin-credential/ca.crt",
            credentialName: "httpbin-credential",
            location: SourceLocation(file: "conf/mutual.yaml", line: 13)
        ))
    }

    /// The SNI-passthrough task: nginx serves its own certificate behind a PASSTHROUGH server
    /// (HTTPS in the task; TLS works the same).
    @Test(arguments: ["HTTPS", "TLS"])
    func sniPassthroughTaskLoads(proto: String) throws {
        let service = ConfigFile(path: "conf/my-nginx.yaml", contents: """
            apiVersion: v1
            kind: Service
            metadata:
              name: my-nginx
              namespace: mesh-external
              labels:
                run: my-nginx
            spec:
              ports:
              - port: 443
                protocol: TCP
              selector:
                run: my-nginx
            """)
        let task = ConfigFile(path: "conf/passthrough.yaml", contents: """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: mygateway
            spec:
              selector:
                istio: ingressgateway # use istio default ingress gateway
              servers:
              - port:
                  number: 443
                  name: https
                  protocol: \(proto)
                tls:
                  mode: PASSTHROUGH
                hosts:
                - nginx.example.com
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata:
              name: nginx
            spec:
              hosts:
              - nginx.example.com
              gateways:
              - mygateway
              tls:
              - match:
                - port: 443
                  sniHosts:
                  - nginx.example.com
                route:
                - destination:
                    host: my-nginx.mesh-external.svc.cluster.local
                    port:
                      number: 443
            """)
        let workload = ConfigFile(
            path: "conf/nginx-workload.yaml",
            contents: Self.workload("my-nginx", namespace: "mesh-external", labels: "{run: my-nginx}", address: 3)
        )
        let result = ConfigLoader.load(files: [service, workload, task])
        #expect(result.errors.isEmpty, "\(result.lines)")
        #expect(result.warnings.isEmpty, "\(result.lines)")
        let configuration = try #require(result.configuration)
        let server = try #require(configuration.gateways.first?.servers.first)
        #expect(server.protocol == (proto == "TLS" ? .tls : .https))
        #expect(server.tls == ServerTLSSettings(mode: .passthrough, location: SourceLocation(file: "conf/passthrough.yaml", line: 13)))
        let virtualService = try #require(configuration.virtualServices.first)
        #expect(virtualService.gateways == ["default/mygateway"])
        #expect(virtualService.http.isEmpty && virtualService.tcp.isEmpty)
        #expect(virtualService.tls == [
            TLSRoute(
                match: [TLSMatch(sniHosts: ["nginx.example.com"], port: 443)],
                route: [
                    RouteDestination(destination: Destination(host: "my-nginx.mesh-external.svc.cluster.local", port: 443), weight: 100)
                ],
                location: SourceLocation(file: "conf/passthrough.yaml", line: 28)
            )
        ])
    }
}
