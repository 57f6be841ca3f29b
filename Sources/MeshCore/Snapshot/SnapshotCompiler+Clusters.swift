import MeshConfig
import NIOCore

/// The clusters a route's destinations name: compiled once per name (`outbound|PORT|SUBSET|HOST`),
/// each with its endpoints, connection settings and upstream TLS; a destination no config declares
/// compiles to a missing cluster that answers 503 NC.
extension SnapshotCompiler {
    /// `listenerPort`: the gateway port the routes serve; a destination without a port to a service
    /// with several takes that port, as Istio does (nil for a sidecar's outbound: the first port).
    mutating func weightedClusters(
        _ destinations: [RouteDestination], path: String, location: SourceLocation?, listenerPort: Int? = nil
    ) -> WeightedClusters {
        var weighted: [(target: WeightedClusters.Target, weight: Int, headers: DestinationHeaders?)] = []
        for (index, destination) in destinations.enumerated() {
            let path = "\(path).route[\(index)]"
            if let target = self.target(for: destination.destination, path: path, location: location, listenerPort: listenerPort) {
                let hasHeaders = destination.requestHeaders != nil || destination.responseHeaders != nil
                let headers = hasHeaders ? DestinationHeaders(request: destination.requestHeaders, response: destination.responseHeaders) : nil
                weighted.append((target, destination.weight, headers))
            }
        }
        return WeightedClusters(entries: weighted)
    }

    /// The cluster a destination names. An undeclared host, port or subset (a warning when
    /// validating, as Istio's analyzer gives) compiles to a missing cluster that answers 503 NC.
    fileprivate mutating func target(
        for destination: Destination, path: String, location: SourceLocation?, listenerPort: Int?
    ) -> WeightedClusters.Target? {
        func missing(_ port: Int?) -> WeightedClusters.Target {
            .missing(name: "outbound|\(port.map(String.init) ?? "")|\(destination.subset ?? "")|\(destination.host)")
        }
        guard let service = self.config.services.first(where: { $0.fqdn == destination.host }) else { return missing(destination.port) }
        let servicePort: ServicePort
        if let number = destination.port {
            guard let port = service.ports.first(where: { $0.number == number }) else { return missing(number) }
            servicePort = port
        } else if service.ports.count > 1, let listenerPort {
            guard let port = service.ports.first(where: { $0.number == listenerPort }) else { return missing(listenerPort) }
            servicePort = port
        } else {
            guard let port = service.ports.first else {
                self.diagnostics.append(Diagnostic(.error, at: location, path: path, "service \(service.fqdn) declares no port"))
                return nil
            }
            servicePort = port
        }
        let name = "outbound|\(servicePort.number)|\(destination.subset ?? "")|\(service.fqdn)"
        if let existing = self.clusters[name] { return .cluster(existing) }

        let rule = self.config.destinationRules.first { $0.host == service.fqdn }
            ?? self.config.destinationRules.first { hostMatches(pattern: $0.host, host: service.fqdn) }
        var selector: [String: String] = [:]
        var policy = rule?.trafficPolicy?.forPort(servicePort.number)
        if let subsetName = destination.subset {
            guard let subset = rule?.subsets.first(where: { $0.name == subsetName }) else { return .missing(name: name) }
            selector = subset.labels
            policy = subset.trafficPolicy?.forPort(servicePort.number).overriding(policy) ?? policy
        }
        let http2 = Self.upstreamHTTP2(servicePort.protocol, policy: policy)
        let tlsPolicy = self.upstreamTLS(policy?.tls, rule: rule, path: path, http2: http2)

        var endpoints: [ClusterEndpoint] = []
        var localities: [(locality: String?, labels: [String: String])] = []
        for endpoint in service.endpoints where selector.allSatisfy({ endpoint.labels[$0.key] == $0.value }) {
            let tls = self.endpointTLS(
                tlsPolicy, endpoint: endpoint, host: service.fqdn,
                meshSNI: UpstreamTLS.meshSNI(port: servicePort.number, subset: destination.subset, host: service.fqdn)
            )
            // A sidecar receives the mesh's traffic on its inbound port; the SNI names the service port.
            let port = Self.hasSidecar(endpoint) ? Self.inboundPort(of: endpoint) : endpoint.port(for: servicePort)
            do {
                let address = try SocketAddress.makeAddressResolvingHost(endpoint.address, port: port)
                endpoints.append(
                    ClusterEndpoint(
                        address: address,
                        hostPort: "\(endpoint.address):\(port)",
                        labels: endpoint.labels,
                        workloadName: endpoint.name,
                        identity: Self.identity(of: endpoint, in: service),
                        tls: tls
                    )
                )
                localities.append((endpoint.locality, endpoint.labels))
            } catch {
                self.diagnostics.append(
                    Diagnostic(.error, at: service.meta.location, path: "\(service.meta.pathPrefix).endpoints",
                               "endpoint \(endpoint.name) address \(endpoint.address) does not resolve: \(error)")
                )
            }
        }
        let cluster = Cluster(
            name: name,
            serviceFQDN: service.fqdn,
            servicePort: servicePort.number,
            subset: destination.subset,
            endpoints: endpoints,
            connectTimeout: policy?.connectTimeout.map(TimeAmount.init) ?? Self.defaultConnectTimeout,
            upstreamIdleTimeout: policy?.upstreamIdleTimeout.map(TimeAmount.init) ?? Self.defaultUpstreamIdleTimeout,
            maxRequestsPerConnection: policy?.maxRequestsPerConnection ?? 0,
            http2: http2,
            maxConcurrentStreams: policy?.maxConcurrentStreams ?? 0,
            loadBalancer: policy?.loadBalancer,
            limits: policy,
            locality: LocalityBalancing(
                policy?.localityLB, outlierDetection: policy?.outlierDetection != nil, locality: self.config.settings.locality,
                labels: self.config.settings.labels,
                endpoints: localities
            )
        )
        self.clusters[name] = cluster
        return .cluster(cluster)
    }

    /// Whether a cluster speaks HTTP/2 upstream: always for ports declared HTTP2 or GRPC (as
    /// Istio does), and for HTTP ports whose policy says `h2UpgradePolicy: UPGRADE`.
    static func upstreamHTTP2(_ portProtocol: PortProtocol, policy: TrafficPolicy?) -> Bool {
        switch portProtocol {
        case .http2, .grpc: return true
        case .http, .unknown: return policy?.h2UpgradePolicy == .upgrade
        case .https, .tcp, .tls: return false
        }
    }
}
