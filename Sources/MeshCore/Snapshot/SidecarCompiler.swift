import MeshConfig
import NIOCore

/// The sidecar role's snapshot: the same route tables and clusters as the gateway's, laid out for
/// one workload:
///
/// - outbound HTTP on `outboundPort`: VirtualServices bound to `mesh`, by Host, then a default
///   route for every declared service;
/// - outbound TCP, one port per `outboundTCP` entry;
/// - inbound on `inboundPort`: mesh mTLS (or plain text, per PeerAuthentication) to the app.
///
/// Every listener binds the workload's address, so sidecars on one host never clash.
extension SnapshotCompiler {
    public static func compileSidecar(
        _ config: MeshConfiguration,
        generation: Int,
        telemetry: SnapshotTelemetry = SnapshotTelemetry()
    ) throws(CompileError) -> Snapshot {
        var compiler = SnapshotCompiler(config: config)
        compiler.checkSidecarSettings()
        let settings = config.settings
        var listeners: [Int: ListenerPlan] = [:]
        listeners[settings.outboundPort] = compiler.outboundHTTP()
        for (port, service) in settings.outboundTCP {
            listeners[port] = compiler.outboundTCP(port: port, service: service)
        }
        listeners[settings.inboundPort] = compiler.inbound()
        let (authentication, problems) = RequestAuthenticator.compile(config, log: nil)
        compiler.diagnostics += problems
        guard !compiler.diagnostics.hasErrors else { throw CompileError(diagnostics: compiler.diagnostics) }
        return Snapshot(
            generation: generation, settings: settings, listeners: listeners, clusters: compiler.clusters,
            telemetry: telemetry, role: .sidecar, authorizationPolicies: config.localAuthorizationPolicies,
            authentication: authentication, extAuthz: ExtAuthzClient.forInstance(config)
        )
    }

    private var settingsFile: SourceLocation? {
        self.config.settings.sourceFile.map { SourceLocation(file: $0, line: 1) }
    }

    private mutating func sidecarError(_ path: String, _ message: String) {
        self.diagnostics.append(Diagnostic(.error, at: self.settingsFile, path: path, message))
    }

    private mutating func checkSidecarSettings() {
        let settings = self.config.settings
        if settings.bindAddress == "0.0.0.0" || settings.bindAddress == "::" {
            self.sidecarError("workload.address", "a sidecar needs the workload's own address (workload.address), so sidecars on one host do not clash")
        }
        if settings.appPorts.isEmpty {
            self.sidecarError("appPorts", "a sidecar needs appPorts: service port → the app's port")
        }
        if settings.caDir == nil, settings.certDir == nil {
            self.sidecarError("caDir", "a sidecar needs its mesh certificate: set caDir or certDir")
        }
        var used: [Int: String] = [:]
        let ports = [("inboundPort", settings.inboundPort), ("outboundPort", settings.outboundPort),
                     ("readinessPort", settings.readinessPort), ("metricsPort", settings.metricsPort)]
            + settings.outboundTCP.keys.sorted().map { ("outboundTCP.\($0)", $0) }
            + settings.appPorts.values.sorted().map { ("appPorts", $0) }
        for (name, port) in ports {
            if let first = used[port], !(first == "appPorts" && name == "appPorts") {
                self.sidecarError(name, "port \(port) is already used by \(first) on the workload's address")
            } else {
                used[port] = name
            }
        }
    }

    // MARK: Outbound

    /// `reviews.default.svc.cluster.local` → also `reviews.default.svc`, `reviews.default`, and
    /// `reviews` in the workload's own namespace: the names an app can call a service by.
    func hostAliases(_ host: String) -> [String] {
        let suffix = ".svc.cluster.local"
        guard host.hasSuffix(suffix) else { return [host] }
        let parts = host.dropLast(suffix.count).split(separator: ".")
        guard parts.count == 2 else { return [host] }
        var aliases = [host, "\(parts[0]).\(parts[1]).svc", "\(parts[0]).\(parts[1])"]
        if parts[1] == self.config.settings.namespace[...] { aliases.append(String(parts[0])) }
        return aliases
    }

    private mutating func outboundHTTP() -> ListenerPlan {
        var table = HTTPRouteTable()
        var covered: Set<String> = []
        for virtualService in self.config.virtualServices where virtualService.gateways.contains("mesh") && !virtualService.http.isEmpty {
            let routes = self.compileHTTPRoutes(virtualService, listenerGateways: ["mesh"])
            for host in virtualService.hosts {
                for alias in self.hostAliases(host) { table.add(domain: alias, routes: routes) }
                covered.insert(host)
            }
        }
        for service in self.config.services where !covered.contains(service.fqdn) {
            guard let port = service.ports.first(where: { ![.tcp, .tls, .https].contains($0.protocol) }) else { continue }
            let path = "\(service.meta.pathPrefix).ports"
            let destinations = self.weightedClusters(
                [RouteDestination(destination: Destination(host: service.fqdn, port: port.number), weight: 100)],
                path: path, location: service.meta.location
            )
            let route = CompiledHTTPRoute(name: "default|\(service.fqdn)", matches: [], destinations: destinations)
            for alias in self.hostAliases(service.fqdn) { table.add(domain: alias, routes: [route]) }
        }
        return ListenerPlan(port: self.config.settings.outboundPort, protocol: .http, gatewayNames: ["mesh"], http: table, tcp: [])
    }

    private mutating func outboundTCP(port: Int, service: OutboundTCPService) -> ListenerPlan {
        var entries: [TCPRouteEntry] = []
        for virtualService in self.config.virtualServices where virtualService.gateways.contains("mesh") && virtualService.hosts.contains(service.host) {
            for (index, route) in virtualService.tcp.enumerated() where route.match.isEmpty || route.match.contains(where: { $0.port == nil || $0.port == service.port }) {
                let path = "\(virtualService.meta.pathPrefix).spec.tcp[\(index)]"
                let match = TCPRoute(match: [], route: route.route, location: route.location)
                entries.append(
                    TCPRouteEntry(
                        name: "\(virtualService.meta.namespace).\(virtualService.meta.name).\(index)", route: match, listenerGateways: ["mesh"],
                        destinations: self.weightedClusters(route.route, path: path, location: route.location)
                    )
                )
            }
        }
        if entries.isEmpty {
            let destination = [RouteDestination(destination: Destination(host: service.host, port: service.port), weight: 100)]
            entries.append(
                TCPRouteEntry(
                    name: "default|\(service.host)", route: TCPRoute(match: [], route: destination), listenerGateways: ["mesh"],
                    destinations: self.weightedClusters(destination, path: "outboundTCP.\(port)", location: self.settingsFile)
                )
            )
        }
        return ListenerPlan(port: port, protocol: .tcp, gatewayNames: ["mesh"], http: HTTPRouteTable(), tcp: entries)
    }

    // MARK: Inbound

    private mutating func inbound() -> ListenerPlan {
        let settings = self.config.settings
        var ports: [Int: InboundPlan.AppPort] = [:]
        for (servicePort, appPort) in settings.appPorts {
            // The workload's own service and port say whether the app speaks HTTP.
            let own = self.config.services.first { service in
                service.ports.contains { $0.number == servicePort }
                    && service.endpoints.contains { $0.name == settings.workloadName || $0.address == settings.bindAddress }
            }
            let portProtocol = own?.ports.first { $0.number == servicePort }?.protocol ?? .tcp
            let isHTTP = [.http, .http2, .grpc, .unknown].contains(portProtocol) && own != nil
            let fqdn = own?.fqdn ?? settings.workloadName
            let name = "inbound|\(appPort)||\(fqdn)"
            let identity = Self.identity(
                workload: settings.workloadName, namespace: settings.namespace, labels: settings.labels,
                principal: "spiffe://\(settings.trustDomain)/ns/\(settings.namespace)/sa/\(settings.serviceAccount)",
                service: fqdn, serviceNamespace: settings.namespace
            )
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(settings.bindAddress, port: appPort)
            } catch {
                self.sidecarError("workload.address", "\(settings.bindAddress) does not resolve: \(error)")
                continue
            }
            let cluster = Cluster(
                name: name, serviceFQDN: fqdn, servicePort: servicePort, subset: nil,
                endpoints: [
                    ClusterEndpoint(
                        address: address, hostPort: "\(settings.bindAddress):\(appPort)", labels: settings.labels,
                        workloadName: settings.workloadName, identity: identity
                    )
                ],
                connectTimeout: Self.defaultConnectTimeout, upstreamIdleTimeout: Self.defaultUpstreamIdleTimeout, maxRequestsPerConnection: 0,
                // An app serving HTTP2 or GRPC gets HTTP/2 from its sidecar too.
                http2: Self.upstreamHTTP2(portProtocol, policy: nil)
            )
            self.clusters[name] = cluster
            let destinations = WeightedClusters([(cluster, 100)])
            var table = HTTPRouteTable()
            table.add(domain: "*", routes: [CompiledHTTPRoute(name: name, matches: [], destinations: destinations)])
            ports[servicePort] = InboundPlan.AppPort(
                servicePort: servicePort, appPort: appPort, isHTTP: isHTTP,
                mode: self.config.peerAuthenticationMode(namespace: settings.namespace, labels: settings.labels, appPort: appPort),
                routeName: name, routes: table, destinations: destinations
            )
        }
        let plan = InboundPlan(ports: ports)
        return ListenerPlan(
            port: settings.inboundPort, protocol: .tcp, gatewayNames: ["mesh"], http: HTTPRouteTable(), tcp: [], inbound: plan
        )
    }
}

/// A sidecar's inbound port: which app port a connection goes to, and what it must present.
public struct InboundPlan: Sendable {
    public struct AppPort: Sendable {
        public let servicePort: Int
        public let appPort: Int
        public let isHTTP: Bool
        /// PeerAuthentication's verdict for this port.
        public let mode: MTLSMode
        let routeName: String
        /// HTTP: every host to the app.
        let routes: HTTPRouteTable
        let destinations: WeightedClusters
    }

    public let ports: [Int: AppPort]

    /// The port an mTLS connection is for: the service port named by its SNI
    /// (`outbound_.9080_._.reviews…`), else the lowest one.
    func appPort(serverName: String?) -> AppPort? {
        if let port = serverName.flatMap(UpstreamTLS.servicePort(fromMeshSNI:)), let app = self.ports[port] { return app }
        return self.defaultPort
    }

    /// Plain text carries no SNI: it goes to the lowest service port.
    var defaultPort: AppPort? {
        self.ports.keys.min().flatMap { self.ports[$0] }
    }
}
