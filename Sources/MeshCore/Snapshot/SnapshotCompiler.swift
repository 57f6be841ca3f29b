import MeshConfig
import NIOCore
import NIOSSL

/// validated → compiled: turns a ``MeshConfiguration`` into an immutable ``Snapshot`` for the
/// gateway role.
///
/// Validation has already checked cross-references; what can still fail here is what only shows
/// when compiling (an endpoint address that does not resolve, two routes that cannot coexist),
/// and every such problem is collected, never just the first.
public struct SnapshotCompiler {
    /// The default `connectionPool.tcp.connectTimeout` (Istio: 10s).
    public static let defaultConnectTimeout: TimeAmount = .seconds(10)
    /// The default `connectionPool.http.idleTimeout` of pooled upstream connections (Istio: 1h).
    public static let defaultUpstreamIdleTimeout: TimeAmount = .hours(1)

    public struct CompileError: Error, CustomStringConvertible {
        public var diagnostics: [Diagnostic]
        public var description: String { self.diagnostics.map(\.description).joined(separator: "\n") }
    }

    let config: MeshConfiguration
    var clusters: [String: Cluster] = [:]
    var diagnostics: [Diagnostic] = []

    init(config: MeshConfiguration) {
        self.config = config
    }

    /// Compiles the gateway role's snapshot: the Gateways whose selector matches this instance's
    /// labels, and the VirtualServices bound to them.
    public static func compileGateway(
        _ config: MeshConfiguration,
        generation: Int,
        telemetry: SnapshotTelemetry = SnapshotTelemetry()
    ) throws(CompileError) -> Snapshot {
        var compiler = SnapshotCompiler(config: config)
        let listeners = compiler.compileListeners()
        let (authentication, problems) = RequestAuthenticator.compile(config, log: nil)
        compiler.diagnostics += problems
        guard !compiler.diagnostics.hasErrors else { throw CompileError(diagnostics: compiler.diagnostics) }
        return Snapshot(
            generation: generation,
            settings: config.settings,
            listeners: listeners,
            clusters: compiler.clusters,
            telemetry: telemetry,
            authorizationPolicies: config.localAuthorizationPolicies,
            authentication: authentication, extAuthz: ExtAuthzClient.forInstance(config)
        )
    }

    // MARK: - Listeners

    private mutating func compileListeners() -> [Int: ListenerPlan] {
        let labels = self.config.settings.labels
        let gateways = self.config.gateways.filter { gateway in
            gateway.selector.allSatisfy { labels[$0.key] == $0.value }
        }
        var serversByPort: [Int: [(gateway: Gateway, server: GatewayServer)]] = [:]
        for gateway in gateways {
            for server in gateway.servers {
                serversByPort[server.portNumber, default: []].append((gateway, server))
            }
        }
        var listeners: [Int: ListenerPlan] = [:]
        for (port, servers) in serversByPort {
            let gatewayNames = Array(Set(servers.map { $0.gateway.qualifiedName })).sorted()
            let proto = servers[0].server.protocol
            let tls = self.compileTLS(port: port, servers: servers, listenerGateways: gatewayNames)
            // HTTP routes for HTTP servers and for HTTPS servers once terminated; TCP routes for TCP
            // servers and for TLS servers once terminated.
            let servesHTTP = servers.contains { $0.server.protocol.isHTTP }
            let servesTCP = servers.contains { !$0.server.protocol.isHTTP && $0.server.tls?.mode != .passthrough }
            var table = HTTPRouteTable()
            var tcp: [TCPRouteEntry] = []
            for virtualService in self.config.virtualServices {
                let bound = servers.filter { virtualService.gateways.contains($0.gateway.qualifiedName) }
                guard !bound.isEmpty else { continue }
                if servesHTTP {
                    let routes = self.compileHTTPRoutes(virtualService, listenerGateways: gatewayNames, listenerPort: port)
                    let httpHosts = bound.filter { $0.server.protocol.isHTTP }.flatMap(\.server.hosts)
                    for domain in Self.domains(virtualServiceHosts: virtualService.hosts, serverHosts: httpHosts) {
                        table.add(domain: domain, routes: routes)
                    }
                }
                if servesTCP {
                    tcp += self.compileTCPRoutes(virtualService, listenerGateways: gatewayNames, listenerPort: port)
                }
            }
            let redirectHosts = servers.filter { $0.server.httpsRedirect && $0.server.protocol == .http }.flatMap(\.server.hosts)
            listeners[port] = ListenerPlan(
                port: port, protocol: proto, gatewayNames: gatewayNames, http: table, tcp: tcp, tls: tls,
                httpsRedirectHosts: redirectHosts
            )
        }
        return listeners
    }

    /// The TLS plan of a port whose servers terminate or pass through TLS; nil for plain ports.
    private mutating func compileTLS(
        port: Int, servers: [(gateway: Gateway, server: GatewayServer)], listenerGateways: [String]
    ) -> TLSListenerPlan? {
        // Plain HTTP servers never terminate TLS (their `tls` block only carries httpsRedirect).
        let tlsServers = servers.filter { $0.server.tls != nil && $0.server.protocol != .http }
        guard !tlsServers.isEmpty else { return nil }
        var plans: [TLSServerPlan] = []
        for (gateway, server) in tlsServers {
            guard let settings = server.tls else { continue }
            let index = gateway.servers.firstIndex(of: server) ?? 0
            let path = "\(gateway.meta.pathPrefix).spec.servers[\(index)].tls"
            switch settings.mode {
            case .passthrough:
                plans.append(TLSServerPlan(hosts: server.hosts, mode: .passthrough, protocol: server.protocol, context: nil, certificate: nil))
            case .simple, .mutual, .optionalMutual:
                do {
                    let alpn = server.protocol.isHTTP ? TLSContextFactory.httpALPN : []
                    let (context, info) = try TLSContextFactory.serverContext(settings, alpn: alpn, hosts: server.hosts, port: port)
                    plans.append(TLSServerPlan(hosts: server.hosts, mode: settings.mode, protocol: server.protocol, context: context, certificate: info))
                } catch {
                    self.diagnostics.append(Diagnostic(.error, at: settings.location ?? gateway.meta.location, path: path, error.description))
                }
            case .istioMutual, .autoPassthrough:
                // Validation warns that these wait for the mesh; the server is not served.
                continue
            }
        }
        var routes: [TLSRouteEntry] = []
        for virtualService in self.config.virtualServices {
            guard tlsServers.contains(where: { virtualService.gateways.contains($0.gateway.qualifiedName) }) else { continue }
            for (index, route) in virtualService.tls.enumerated() {
                let path = "\(virtualService.meta.pathPrefix).spec.tls[\(index)]"
                routes.append(
                    TLSRouteEntry(
                        name: "\(virtualService.meta.namespace).\(virtualService.meta.name).\(index)",
                        route: route,
                        listenerGateways: listenerGateways,
                        destinations: self.weightedClusters(route.route, path: path, location: route.location, listenerPort: port)
                    )
                )
            }
        }
        return TLSListenerPlan(servers: plans, passthroughRoutes: routes)
    }

    /// The virtual-host domains a VirtualService gets on a server: the intersection of its hosts with
    /// the server's hosts, each pair giving the narrower of the two.
    static func domains(virtualServiceHosts: [String], serverHosts: [String]) -> [String] {
        var result: [String] = []
        for vsHost in virtualServiceHosts {
            for serverHost in serverHosts {
                let domain: String?
                if hostMatches(pattern: serverHost, host: vsHost) {
                    domain = vsHost
                } else if hostMatches(pattern: vsHost, host: serverHost) {
                    domain = serverHost
                } else {
                    domain = nil
                }
                if let domain, !result.contains(domain) { result.append(domain) }
            }
        }
        return result
    }

    mutating func compileHTTPRoutes(_ vs: VirtualService, listenerGateways: [String], listenerPort: Int? = nil) -> [CompiledHTTPRoute] {
        var routes: [CompiledHTTPRoute] = []
        for (index, route) in vs.http.enumerated() {
            let path = "\(vs.meta.pathPrefix).spec.http[\(index)]"
            do {
                let matches = try route.match.map { try CompiledHTTPMatch($0, listenerGateways: listenerGateways) }
                let destinations = self.weightedClusters(route.route, path: path, location: route.location, listenerPort: listenerPort)
                var compiled = CompiledHTTPRoute(
                    name: route.name ?? "\(vs.meta.namespace).\(vs.meta.name).\(index)",
                    matches: matches,
                    destinations: destinations
                )
                compiled.rewrite = route.rewrite
                compiled.timeout = route.timeout.map(TimeAmount.init)
                compiled.requestHeaders = route.requestHeaders
                compiled.responseHeaders = route.responseHeaders
                compiled.redirect = route.redirect
                compiled.directResponse = route.directResponse.map(LocalReply.directResponse)
                compiled.fault = route.fault
                compiled.retries = route.retries ?? .default
                compiled.cors = try route.cors.map(CompiledCORS.init)
                if let regexRewrite = route.rewrite?.uriRegexRewrite {
                    compiled.regexRewrite = (try RE2Regex(regexRewrite.match), regexRewrite.rewrite)
                }
                compiled.mirrors = route.mirrors.enumerated().compactMap { index, mirror in
                    // An undeclared mirror host was named by validation; nothing is mirrored to it (as Envoy skips it).
                    let picked = self.weightedClusters(
                        [RouteDestination(destination: mirror.destination, weight: 100)], path: "\(path).mirrors[\(index)]",
                        location: route.location, listenerPort: listenerPort
                    )
                    return picked.clusters.first.map { CompiledMirror(cluster: $0, percentage: mirror.percentage) }
                }
                routes.append(compiled)
            } catch {
                self.diagnostics.append(Diagnostic(.error, at: route.location, path: path, "\(error)"))
            }
        }
        return routes
    }

    mutating func compileTCPRoutes(_ vs: VirtualService, listenerGateways: [String], listenerPort: Int? = nil) -> [TCPRouteEntry] {
        vs.tcp.enumerated().map { index, route in
            let path = "\(vs.meta.pathPrefix).spec.tcp[\(index)]"
            return TCPRouteEntry(
                name: "\(vs.meta.namespace).\(vs.meta.name).\(index)",
                route: route,
                listenerGateways: listenerGateways,
                destinations: self.weightedClusters(route.route, path: path, location: route.location, listenerPort: listenerPort)
            )
        }
    }
}

// MARK: - Upstream TLS

extension SnapshotCompiler {
    /// The label (Istio's own) marking an endpoint that has a sidecar: auto-mTLS sends it
    /// ISTIO_MUTUAL, to its inbound port.
    public static let sidecarLabel = "security.istio.io/tlsMode"
    /// The label giving a sidecar's inbound port when it is not 15006.
    public static let inboundPortLabel = "meshgate.io/inbound-port"

    static func hasSidecar(_ endpoint: Endpoint) -> Bool {
        endpoint.labels[Self.sidecarLabel] == "istio"
    }

    static func inboundPort(of endpoint: Endpoint) -> Int {
        endpoint.labels[Self.inboundPortLabel].flatMap(Int.init) ?? MeshSettings().inboundPort
    }

    /// What a cluster's policy asks for: nil = auto (decided per endpoint).
    enum TLSPolicy {
        case auto
        case disable
        case istioMutual(subjectAltNames: [String])
        case files(context: NIOSSLContext, sni: String?, subjectAltNames: [String])
    }

    var hasMeshIdentity: Bool { self.config.settings.caDir != nil || self.config.settings.certDir != nil }

    mutating func upstreamTLS(_ settings: ClientTLSSettings?, rule: DestinationRule?, path: String, http2: Bool) -> TLSPolicy {
        guard let settings else { return .auto }
        let place = settings.location ?? rule?.meta.location
        switch settings.mode {
        case .disable:
            return .disable
        case .istioMutual:
            if !self.hasMeshIdentity {
                self.diagnostics.append(
                    Diagnostic(.error, at: place, path: "\(path).tls",
                               "ISTIO_MUTUAL needs this instance's mesh certificate: set caDir or certDir in meshgate.yaml")
                )
            }
            return .istioMutual(subjectAltNames: settings.subjectAltNames)
        case .simple, .mutual:
            do {
                let context = try TLSContextFactory.clientContext(settings, alpn: http2 ? ["h2"] : ["http/1.1"])
                return .files(context: context, sni: settings.sni, subjectAltNames: settings.subjectAltNames)
            } catch {
                self.diagnostics.append(Diagnostic(.error, at: place, path: "\(path).tls", error.description))
                return .disable
            }
        }
    }

    func endpointTLS(_ policy: TLSPolicy, endpoint: Endpoint, host: String, meshSNI sni: String) -> UpstreamTLS? {
        let spiffe = "spiffe://\(self.config.settings.trustDomain)/ns/\(endpoint.namespace)/sa/\(endpoint.serviceAccount ?? "default")"
        switch policy {
        case .disable:
            return nil
        case .auto:
            guard Self.hasSidecar(endpoint), self.hasMeshIdentity else { return nil }
            return .istioMutual(sni: sni, identities: [spiffe])
        case .istioMutual(let names):
            let identities = names.isEmpty ? [spiffe] : names.map { $0.hasPrefix("spiffe://") ? $0 : "spiffe://\($0)" }
            return .istioMutual(sni: sni, identities: identities)
        case .files(let context, let configuredSNI, let names):
            return .files(context: context, sni: configuredSNI ?? host, subjectAltNames: names)
        }
    }
}

extension SnapshotCompiler {
    /// An endpoint's metric labels, with Istio's fallbacks: canonical service from
    /// `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else `app`; revision from
    /// `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else `version`, else `latest`.
    static func identity(of endpoint: Endpoint, in service: Service) -> DestinationIdentity {
        self.identity(
            workload: endpoint.name, namespace: endpoint.namespace, labels: endpoint.labels, principal: "unknown",
            service: service.fqdn, serviceNamespace: service.meta.namespace
        )
    }

    static func identity(
        workload: String, namespace: String, labels: [String: String], principal: String, service: String, serviceNamespace: String
    ) -> DestinationIdentity {
        let app = labels["app"] ?? "unknown"
        let shortName = service.hasSuffix(".svc.cluster.local") ? String(service.prefix { $0 != "." }) : service
        return DestinationIdentity(
            workload: workload,
            workloadNamespace: namespace,
            principal: principal,
            app: app,
            version: labels["version"] ?? "unknown",
            service: service,
            serviceName: shortName,
            serviceNamespace: serviceNamespace,
            canonicalService: labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"] ?? labels["app"] ?? workload,
            canonicalRevision: labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"] ?? labels["version"] ?? "latest"
        )
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
