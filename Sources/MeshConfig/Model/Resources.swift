/// The validated configuration: every resource already checked, host names already resolved to
/// FQDNs, cross-references already verified. MeshCore compiles this into a snapshot.
///
/// Produced by ``ConfigLoader``; the YAML shapes never leave MeshConfig.
public struct MeshConfiguration: Sendable {
    public var settings: MeshSettings
    public var gateways: [Gateway]
    public var virtualServices: [VirtualService]
    public var destinationRules: [DestinationRule]
    /// Every service declared by a ServiceEntry or a Kubernetes `v1 Service`, with its endpoints resolved.
    public var services: [Service]
    /// Every `Telemetry` resource, in file order; ``effectiveTelemetry(for:policies:mode:)`` picks
    /// those that select this instance.
    public var telemetry: [TelemetryPolicy]
    /// Every `PeerAuthentication`; ``peerAuthenticationMode(namespace:labels:appPort:)`` resolves them.
    public var peerAuthentications: [PeerAuthentication] = []
    /// Every `AuthorizationPolicy`; ``localAuthorizationPolicies`` are this instance's.
    public var authorizationPolicies: [AuthorizationPolicy] = []
    /// Every `RequestAuthentication`; ``localRequestAuthentications`` are this instance's.
    public var requestAuthentications: [RequestAuthentication] = []

    public init(
        settings: MeshSettings = MeshSettings(),
        gateways: [Gateway] = [],
        virtualServices: [VirtualService] = [],
        destinationRules: [DestinationRule] = [],
        services: [Service] = [],
        telemetry: [TelemetryPolicy] = []
    ) {
        self.settings = settings
        self.gateways = gateways
        self.virtualServices = virtualServices
        self.destinationRules = destinationRules
        self.services = services
        self.telemetry = telemetry
    }

    /// The telemetry this instance runs with for one side of its traffic (see
    /// ``effectiveTelemetry(for:policies:mode:)``).
    public func effectiveTelemetry(mode: TelemetryMode = .client) -> EffectiveTelemetry {
        MeshConfig.effectiveTelemetry(for: self.settings, policies: self.telemetry, mode: mode)
    }
}

/// Identity and origin of one resource, for diagnostics, `/status` and route names.
public struct ResourceMeta: Sendable, Hashable {
    public var kind: String
    public var name: String
    public var namespace: String
    public var location: SourceLocation?

    public init(kind: String, name: String, namespace: String, location: SourceLocation? = nil) {
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.location = location
    }

    /// `Kind/name`, the prefix of every diagnostic path about this resource.
    public var pathPrefix: String { "\(self.kind)/\(self.name)" }
}

// MARK: - Gateway

public enum ServerProtocol: String, Sendable, Hashable, CaseIterable {
    case http = "HTTP"
    case https = "HTTPS"
    case http2 = "HTTP2"
    case grpc = "GRPC"
    case grpcWeb = "GRPC-WEB"
    case tcp = "TCP"
    case tls = "TLS"
    case mongo = "MONGO"

    /// HTTP-family protocols are served by the HTTP connection manager; the rest by the TCP proxy.
    public var isHTTP: Bool {
        switch self {
        case .http, .https, .http2, .grpc, .grpcWeb: return true
        case .tcp, .tls, .mongo: return false
        }
    }
}

public struct Gateway: Sendable, Hashable {
    public var meta: ResourceMeta
    public var selector: [String: String]
    public var servers: [GatewayServer]

    public init(meta: ResourceMeta, selector: [String: String], servers: [GatewayServer]) {
        self.meta = meta
        self.selector = selector
        self.servers = servers
    }

    /// The reference VirtualServices use: `namespace/name`.
    public var qualifiedName: String { "\(self.meta.namespace)/\(self.meta.name)" }
}

public struct GatewayServer: Sendable, Hashable {
    public var portNumber: Int
    public var portName: String
    public var `protocol`: ServerProtocol
    /// Host patterns with any `ns/` prefix removed: exact, `*.suffix` or `*`.
    public var hosts: [String]
    public var name: String?
    public var httpsRedirect: Bool
    /// TLS termination or passthrough (HTTPS and TLS servers); nil for plain servers.
    public var tls: ServerTLSSettings?

    public init(
        portNumber: Int,
        portName: String,
        protocol: ServerProtocol,
        hosts: [String],
        name: String? = nil,
        httpsRedirect: Bool = false,
        tls: ServerTLSSettings? = nil
    ) {
        self.portNumber = portNumber
        self.portName = portName
        self.protocol = `protocol`
        self.hosts = hosts
        self.name = name
        self.httpsRedirect = httpsRedirect
        self.tls = tls
    }
}

// MARK: - DestinationRule

public struct DestinationRule: Sendable, Hashable {
    public var meta: ResourceMeta
    /// FQDN (or wildcard) the rule applies to.
    public var host: String
    public var trafficPolicy: TrafficPolicy?
    public var subsets: [Subset]

    public init(meta: ResourceMeta, host: String, trafficPolicy: TrafficPolicy?, subsets: [Subset]) {
        self.meta = meta
        self.host = host
        self.trafficPolicy = trafficPolicy
        self.subsets = subsets
    }
}

public struct Subset: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var trafficPolicy: TrafficPolicy?

    public init(name: String, labels: [String: String], trafficPolicy: TrafficPolicy? = nil) {
        self.name = name
        self.labels = labels
        self.trafficPolicy = trafficPolicy
    }
}

public struct TrafficPolicy: Sendable, Hashable {
    /// `connectionPool.tcp.connectTimeout`; nil = the default (10s).
    public var connectTimeout: Duration?
    /// `connectionPool.tcp.maxConnections`: upstream connections to the cluster at once; nil = unlimited.
    public var maxConnections: Int?
    /// `connectionPool.http.http1MaxPendingRequests`: requests waiting for a connection; nil = unlimited.
    public var http1MaxPendingRequests: Int?
    /// `connectionPool.http.http2MaxRequests`: requests in flight to the cluster; nil = unlimited.
    public var http2MaxRequests: Int?
    /// `connectionPool.http.maxRetries`: retries outstanding to the cluster at once; nil = unlimited.
    public var maxRetries: Int?
    /// `connectionPool.tcp.tcpKeepalive`: keep-alive probes on upstream connections; nil = off.
    public var tcpKeepalive: TCPKeepalive?
    /// `connectionPool.http.maxRequestsPerConnection`; nil or 0 = unlimited.
    public var maxRequestsPerConnection: Int?
    /// `connectionPool.http.idleTimeout` of pooled upstream connections; nil = the default (1h).
    public var upstreamIdleTimeout: Duration?
    /// `connectionPool.http.h2UpgradePolicy`: UPGRADE sends HTTP/1.1 requests upstream as HTTP/2.
    public var h2UpgradePolicy: H2UpgradePolicy?
    /// `connectionPool.http.maxConcurrentStreams`: streams per upstream HTTP/2 connection; nil = the server's limit.
    public var maxConcurrentStreams: Int?
    /// `loadBalancer`: `simple` or `consistentHash`; nil = the default (LEAST_REQUEST).
    public var loadBalancer: LoadBalancerPolicy?
    /// `outlierDetection`; nil = none.
    public var outlierDetection: OutlierDetectionPolicy?
    /// `loadBalancer.localityLbSetting`; nil = Istio's default (failover by proximity, with outlier detection).
    public var localityLB: LocalityLBSetting?
    /// `tls`: how to originate TLS; nil = auto (ISTIO_MUTUAL to endpoints with a sidecar, else plain).
    public var tls: ClientTLSSettings?
    /// `portLevelSettings`: service port → the policy for that port (over this one).
    public var portLevel: [Int: TrafficPolicy]

    public init(
        connectTimeout: Duration? = nil,
        maxConnections: Int? = nil,
        http1MaxPendingRequests: Int? = nil,
        http2MaxRequests: Int? = nil,
        maxRetries: Int? = nil,
        tcpKeepalive: TCPKeepalive? = nil,
        maxRequestsPerConnection: Int? = nil,
        upstreamIdleTimeout: Duration? = nil,
        h2UpgradePolicy: H2UpgradePolicy? = nil,
        maxConcurrentStreams: Int? = nil,
        loadBalancer: LoadBalancerPolicy? = nil,
        outlierDetection: OutlierDetectionPolicy? = nil,
        localityLB: LocalityLBSetting? = nil,
        tls: ClientTLSSettings? = nil,
        portLevel: [Int: TrafficPolicy] = [:]
    ) {
        self.connectTimeout = connectTimeout
        self.maxConnections = maxConnections
        self.http1MaxPendingRequests = http1MaxPendingRequests
        self.http2MaxRequests = http2MaxRequests
        self.maxRetries = maxRetries
        self.tcpKeepalive = tcpKeepalive
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.upstreamIdleTimeout = upstreamIdleTimeout
        self.h2UpgradePolicy = h2UpgradePolicy
        self.maxConcurrentStreams = maxConcurrentStreams
        self.loadBalancer = loadBalancer
        self.outlierDetection = outlierDetection
        self.localityLB = localityLB
        self.tls = tls
        self.portLevel = portLevel
    }

    /// Fields set here win over `base` (subset policy over the rule's policy).
    public func overriding(_ base: TrafficPolicy?) -> TrafficPolicy {
        guard let base else { return self }
        return TrafficPolicy(
            connectTimeout: self.connectTimeout ?? base.connectTimeout,
            maxConnections: self.maxConnections ?? base.maxConnections,
            http1MaxPendingRequests: self.http1MaxPendingRequests ?? base.http1MaxPendingRequests,
            http2MaxRequests: self.http2MaxRequests ?? base.http2MaxRequests,
            maxRetries: self.maxRetries ?? base.maxRetries,
            tcpKeepalive: self.tcpKeepalive ?? base.tcpKeepalive,
            maxRequestsPerConnection: self.maxRequestsPerConnection ?? base.maxRequestsPerConnection,
            upstreamIdleTimeout: self.upstreamIdleTimeout ?? base.upstreamIdleTimeout,
            h2UpgradePolicy: self.h2UpgradePolicy ?? base.h2UpgradePolicy,
            maxConcurrentStreams: self.maxConcurrentStreams ?? base.maxConcurrentStreams,
            loadBalancer: self.loadBalancer ?? base.loadBalancer,
            outlierDetection: self.outlierDetection ?? base.outlierDetection,
            localityLB: self.localityLB ?? base.localityLB,
            tls: self.tls ?? base.tls,
            portLevel: self.portLevel.merging(base.portLevel) { mine, _ in mine }
        )
    }

    /// The policy for one service port: its `portLevelSettings` entry over this policy.
    public func forPort(_ port: Int) -> TrafficPolicy {
        guard let portPolicy = self.portLevel[port] else { return self }
        var merged = portPolicy.overriding(self)
        merged.portLevel = [:]
        return merged
    }
}

/// `connectionPool.tcp.tcpKeepalive`: SO_KEEPALIVE on, and each value the kernel's own when nil.
public struct TCPKeepalive: Sendable, Hashable {
    public var probes: Int?
    public var time: Duration?
    public var interval: Duration?

    public init(probes: Int? = nil, time: Duration? = nil, interval: Duration? = nil) {
        self.probes = probes
        self.time = time
        self.interval = interval
    }
}

/// `connectionPool.http.h2UpgradePolicy`. Ports declared HTTP2 or GRPC always speak HTTP/2
/// upstream, as in Istio; the policy decides for HTTP ports.
public enum H2UpgradePolicy: String, Sendable, Hashable {
    case `default` = "DEFAULT"
    case doNotUpgrade = "DO_NOT_UPGRADE"
    case upgrade = "UPGRADE"
}

// MARK: - Services and endpoints

public enum PortProtocol: String, Sendable, Hashable {
    case http = "HTTP"
    case http2 = "HTTP2"
    case https = "HTTPS"
    case grpc = "GRPC"
    case tcp = "TCP"
    case tls = "TLS"
    case unknown = ""
}

public struct ServicePort: Sendable, Hashable {
    public var number: Int
    public var name: String
    public var `protocol`: PortProtocol
    /// The port on the endpoints when a WorkloadEntry does not name one. Defaults to `number`.
    public var targetPort: Int

    public init(number: Int, name: String, protocol: PortProtocol, targetPort: Int? = nil) {
        self.number = number
        self.name = name
        self.protocol = `protocol`
        self.targetPort = targetPort ?? number
    }
}

/// ServiceEntry `resolution`: how a service's endpoint addresses are found.
public enum ServiceResolution: String, Sendable, Hashable {
    /// Forward to the address the client connected to (ServiceEntry default). Meshgate has no
    /// original destination to forward to, so such a service needs endpoints from a workloadSelector.
    case none = "NONE"
    /// The endpoints' addresses are IP addresses, used as they are. Kubernetes Services are static.
    case `static` = "STATIC"
    /// Resolve each endpoint address (a host name) by DNS and use every address (Envoy STRICT_DNS).
    /// A DNS ServiceEntry without endpoints gets one endpoint per host whose address is the host.
    case dns = "DNS"
    /// Resolve by DNS and use the first address per connection (Envoy LOGICAL_DNS).
    case dnsRoundRobin = "DNS_ROUND_ROBIN"
}

/// ServiceEntry `location`: inside the mesh (mTLS, workload telemetry) or outside it.
public enum ServiceLocation: String, Sendable, Hashable {
    /// Default of a ServiceEntry.
    case meshExternal = "MESH_EXTERNAL"
    /// Kubernetes Services are always inside the mesh.
    case meshInternal = "MESH_INTERNAL"
}

/// A service as Meshgate knows it: from a ServiceEntry, or from a Kubernetes `v1 Service`.
public struct Service: Sendable, Hashable {
    public var meta: ResourceMeta
    /// `name.namespace.svc.cluster.local` for a Kubernetes Service; a ServiceEntry's host as written.
    public var fqdn: String
    public var ports: [ServicePort]
    public var endpoints: [Endpoint]
    /// How endpoint addresses are found. `.static` for a Kubernetes Service.
    public var resolution: ServiceResolution
    /// Inside or outside the mesh. `.meshInternal` for a Kubernetes Service.
    public var location: ServiceLocation

    public init(
        meta: ResourceMeta,
        fqdn: String,
        ports: [ServicePort],
        endpoints: [Endpoint],
        resolution: ServiceResolution = .static,
        location: ServiceLocation = .meshInternal
    ) {
        self.meta = meta
        self.fqdn = fqdn
        self.ports = ports
        self.endpoints = endpoints
        self.resolution = resolution
        self.location = location
    }
}

/// One workload instance behind a service (a WorkloadEntry or an inline ServiceEntry endpoint).
public struct Endpoint: Sendable, Hashable {
    /// The WorkloadEntry's name, or `ServiceEntry-name[index]` for inline endpoints.
    public var name: String
    public var namespace: String
    /// IP address or host name.
    public var address: String
    /// Port name → port number on this endpoint (WorkloadEntry `ports`).
    public var ports: [String: Int]
    public var labels: [String: String]
    public var serviceAccount: String?
    /// `locality`: `region/zone/subzone`.
    public var locality: String?

    public init(
        name: String,
        namespace: String,
        address: String,
        ports: [String: Int] = [:],
        labels: [String: String] = [:],
        serviceAccount: String? = nil,
        locality: String? = nil
    ) {
        self.locality = locality
        self.name = name
        self.namespace = namespace
        self.address = address
        self.ports = ports
        self.labels = labels
        self.serviceAccount = serviceAccount
    }

    /// The port this endpoint serves `servicePort` on: its own named port, else the service's target port.
    public func port(for servicePort: ServicePort) -> Int {
        self.ports[servicePort.name] ?? servicePort.targetPort
    }
}
