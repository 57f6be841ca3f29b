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

// MARK: - VirtualService

public struct VirtualService: Sendable, Hashable {
    public var meta: ResourceMeta
    /// Hosts as written, short names resolved to FQDNs (`reviews` → `reviews.default.svc.cluster.local`);
    /// wildcards and `*` kept as they are. Empty for a delegate, which only serves through the
    /// VirtualServices that delegate to it.
    public var hosts: [String]
    /// Gateway references resolved to `namespace/name`, or `mesh`. Empty in YAML means `["mesh"]`
    /// (and `[]` for a delegate).
    public var gateways: [String]
    public var http: [HTTPRoute]
    public var tcp: [TCPRoute]
    /// SNI routes for TLS passthrough.
    public var tls: [TLSRoute]

    public init(meta: ResourceMeta, hosts: [String], gateways: [String], http: [HTTPRoute], tcp: [TCPRoute], tls: [TLSRoute] = []) {
        self.meta = meta
        self.hosts = hosts
        self.gateways = gateways
        self.http = http
        self.tcp = tcp
        self.tls = tls
    }

    public var qualifiedName: String { "\(self.meta.namespace)/\(self.meta.name)" }
}

public enum StringMatch: Sendable, Hashable {
    case exact(String)
    case prefix(String)
    /// RE2-style pattern; it must match the whole value. Already checked to compile.
    case regex(String)
}

public struct HeaderMatch: Sendable, Hashable {
    /// Lower-case header name.
    public var name: String
    /// nil: the header only has to be present (`end-user: {}`).
    public var match: StringMatch?

    public init(name: String, match: StringMatch?) {
        self.name = name
        self.match = match
    }
}

/// One entry of `http[].match`: every field that is set must hold (AND).
public struct HTTPMatchRequest: Sendable, Hashable {
    public var name: String?
    public var uri: StringMatch?
    public var ignoreUriCase: Bool
    public var method: StringMatch?
    public var authority: StringMatch?
    public var headers: [HeaderMatch]
    public var withoutHeaders: [HeaderMatch]
    /// Query parameters: exact or regex (Istio has no prefix match here).
    public var queryParams: [HeaderMatch]
    public var port: Int?
    /// Restricts this match to the named gateways (resolved `namespace/name` or `mesh`); empty = all.
    public var gateways: [String]

    public init(
        name: String? = nil,
        uri: StringMatch? = nil,
        ignoreUriCase: Bool = false,
        method: StringMatch? = nil,
        authority: StringMatch? = nil,
        headers: [HeaderMatch] = [],
        withoutHeaders: [HeaderMatch] = [],
        queryParams: [HeaderMatch] = [],
        port: Int? = nil,
        gateways: [String] = []
    ) {
        self.name = name
        self.uri = uri
        self.ignoreUriCase = ignoreUriCase
        self.method = method
        self.authority = authority
        self.headers = headers
        self.withoutHeaders = withoutHeaders
        self.queryParams = queryParams
        self.port = port
        self.gateways = gateways
    }
}

public struct Destination: Sendable, Hashable {
    /// FQDN of a declared service.
    public var host: String
    public var subset: String?
    /// Service port; nil when the service has exactly one port.
    public var port: Int?

    public init(host: String, subset: String? = nil, port: Int? = nil) {
        self.host = host
        self.subset = subset
        self.port = port
    }
}

public struct RouteDestination: Sendable, Hashable {
    public var destination: Destination
    /// Relative, as in current Istio: each destination gets `weight / sum of the route's weights` of
    /// the traffic (0 = none); a lone destination gets 100.
    public var weight: Int

    public init(destination: Destination, weight: Int) {
        self.destination = destination
        self.weight = weight
    }
}

/// `http[].delegate`: the VirtualService (one with no hosts) whose http routes take this route's place.
public struct DelegateReference: Sendable, Hashable {
    public var name: String
    /// The delegating VirtualService's namespace when not written.
    public var namespace: String

    public init(name: String, namespace: String) {
        self.name = name
        self.namespace = namespace
    }

    public var qualifiedName: String { "\(self.namespace)/\(self.name)" }
}

/// `http[].redirect`: answered by the proxy with a `location` built from the request and these.
public struct HTTPRedirect: Sendable, Hashable {
    /// How the port of the `location` is chosen when `port` is not given.
    public enum DerivePort: Sendable, Hashable {
        /// The scheme's default port: no port in the `location` (Envoy's default).
        case fromProtocolDefault
        /// The port the request arrived on.
        case fromRequestPort
    }

    /// Replaces the path (and the query, when it has one).
    public var uri: String?
    public var authority: String?
    public var port: Int?
    public var derivePort: DerivePort
    public var scheme: String?
    /// 301 (Istio's default), 302, 303, 307 or 308.
    public var redirectCode: Int

    public init(uri: String? = nil, authority: String? = nil, port: Int? = nil, derivePort: DerivePort = .fromProtocolDefault, scheme: String? = nil, redirectCode: Int = 301) {
        self.uri = uri
        self.authority = authority
        self.port = port
        self.derivePort = derivePort
        self.scheme = scheme
        self.redirectCode = redirectCode
    }
}

/// `http[].directResponse`: a fixed answer with no upstream.
public struct HTTPDirectResponse: Sendable, Hashable {
    public var status: Int
    /// `body.string`, or `body.bytes` decoded from base64.
    public var body: [UInt8]

    public init(status: Int, body: [UInt8] = []) {
        self.status = status
        self.body = body
    }
}

public struct HTTPRoute: Sendable, Hashable {
    public var name: String?
    /// OR'ed; empty matches every request.
    public var match: [HTTPMatchRequest]
    /// Where requests go; empty when the route answers itself (`redirect`, `directResponse`).
    public var route: [RouteDestination]
    public var redirect: HTTPRedirect?
    public var directResponse: HTTPDirectResponse?
    /// Set only as decoded: validation splices the delegate's routes in place of this route, so a
    /// validated ``MeshConfiguration`` has no delegating route left.
    public var delegate: DelegateReference?
    /// `rewrite`: the path (or the prefix a prefix match matched) and the authority sent upstream.
    public var rewrite: HTTPRewrite?
    /// `timeout`: the upstream's whole response must arrive within this; nil = none (Istio's default).
    public var timeout: Duration?
    /// `headers.request` and `headers.response`.
    public var requestHeaders: HeaderOperations?
    public var responseHeaders: HeaderOperations?
    public var location: SourceLocation?

    public init(
        name: String? = nil, match: [HTTPMatchRequest], route: [RouteDestination], rewrite: HTTPRewrite? = nil,
        timeout: Duration? = nil, requestHeaders: HeaderOperations? = nil, responseHeaders: HeaderOperations? = nil,
        delegate: DelegateReference? = nil, redirect: HTTPRedirect? = nil, directResponse: HTTPDirectResponse? = nil,
        location: SourceLocation? = nil
    ) {
        self.name = name
        self.match = match
        self.route = route
        self.redirect = redirect
        self.directResponse = directResponse
        self.delegate = delegate
        self.rewrite = rewrite
        self.timeout = timeout
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.location = location
    }
}

/// Istio's `Headers.HeaderOperations`: applied as `remove`, then `set` (replacing), then `add`.
public struct HeaderOperations: Sendable, Hashable {
    /// Lower-case names, in name order.
    public var set: [Pair]
    public var add: [Pair]
    public var remove: [String]

    public struct Pair: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(set: [Pair] = [], add: [Pair] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }
}

/// `http[].rewrite`.
public struct HTTPRewrite: Sendable, Hashable {
    /// Replaces the prefix a `prefix` match matched, else the whole path (the query string stays).
    public var uri: String?
    /// Replaces the `Host` / `:authority` sent upstream.
    public var authority: String?

    public init(uri: String? = nil, authority: String? = nil) {
        self.uri = uri
        self.authority = authority
    }
}

/// `tcp[].match[]`: L4 attributes only (TCP cannot see a host name).
public struct L4Match: Sendable, Hashable {
    public var port: Int?
    public var gateways: [String]
    public var sourceLabels: [String: String]

    public init(port: Int? = nil, gateways: [String] = [], sourceLabels: [String: String] = [:]) {
        self.port = port
        self.gateways = gateways
        self.sourceLabels = sourceLabels
    }
}

public struct TCPRoute: Sendable, Hashable {
    /// OR'ed; empty matches every connection.
    public var match: [L4Match]
    public var route: [RouteDestination]
    public var location: SourceLocation?

    public init(match: [L4Match], route: [RouteDestination], location: SourceLocation? = nil) {
        self.match = match
        self.route = route
        self.location = location
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
    /// `connectionPool.tcp.maxConnections`; nil = unlimited.
    public var maxConnections: Int?
    /// `connectionPool.http.maxRequestsPerConnection`; nil or 0 = unlimited.
    public var maxRequestsPerConnection: Int?
    /// `connectionPool.http.idleTimeout` of pooled upstream connections; nil = the default (1h).
    public var upstreamIdleTimeout: Duration?
    /// `connectionPool.http.h2UpgradePolicy`: UPGRADE sends HTTP/1.1 requests upstream as HTTP/2.
    public var h2UpgradePolicy: H2UpgradePolicy?
    /// `connectionPool.http.maxConcurrentStreams`: streams per upstream HTTP/2 connection; nil = the server's limit.
    public var maxConcurrentStreams: Int?
    /// `loadBalancer.simple`.
    public var loadBalancer: LoadBalancerPolicy?
    /// `tls`: how to originate TLS; nil = auto (ISTIO_MUTUAL to endpoints with a sidecar, else plain).
    public var tls: ClientTLSSettings?
    /// `portLevelSettings`: service port → the policy for that port (over this one).
    public var portLevel: [Int: TrafficPolicy]

    public init(
        connectTimeout: Duration? = nil,
        maxConnections: Int? = nil,
        maxRequestsPerConnection: Int? = nil,
        upstreamIdleTimeout: Duration? = nil,
        h2UpgradePolicy: H2UpgradePolicy? = nil,
        maxConcurrentStreams: Int? = nil,
        loadBalancer: LoadBalancerPolicy? = nil,
        tls: ClientTLSSettings? = nil,
        portLevel: [Int: TrafficPolicy] = [:]
    ) {
        self.connectTimeout = connectTimeout
        self.maxConnections = maxConnections
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.upstreamIdleTimeout = upstreamIdleTimeout
        self.h2UpgradePolicy = h2UpgradePolicy
        self.maxConcurrentStreams = maxConcurrentStreams
        self.loadBalancer = loadBalancer
        self.tls = tls
        self.portLevel = portLevel
    }

    /// Fields set here win over `base` (subset policy over the rule's policy).
    public func overriding(_ base: TrafficPolicy?) -> TrafficPolicy {
        guard let base else { return self }
        return TrafficPolicy(
            connectTimeout: self.connectTimeout ?? base.connectTimeout,
            maxConnections: self.maxConnections ?? base.maxConnections,
            maxRequestsPerConnection: self.maxRequestsPerConnection ?? base.maxRequestsPerConnection,
            upstreamIdleTimeout: self.upstreamIdleTimeout ?? base.upstreamIdleTimeout,
            h2UpgradePolicy: self.h2UpgradePolicy ?? base.h2UpgradePolicy,
            maxConcurrentStreams: self.maxConcurrentStreams ?? base.maxConcurrentStreams,
            loadBalancer: self.loadBalancer ?? base.loadBalancer,
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

/// `connectionPool.http.h2UpgradePolicy`. Ports declared HTTP2 or GRPC always speak HTTP/2
/// upstream, as in Istio; the policy decides for HTTP ports.
public enum H2UpgradePolicy: String, Sendable, Hashable {
    case `default` = "DEFAULT"
    case doNotUpgrade = "DO_NOT_UPGRADE"
    case upgrade = "UPGRADE"
}

public enum LoadBalancerPolicy: String, Sendable, Hashable {
    case roundRobin = "ROUND_ROBIN"
    case random = "RANDOM"
    case leastRequest = "LEAST_REQUEST"
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

    public init(
        name: String,
        namespace: String,
        address: String,
        ports: [String: Int] = [:],
        labels: [String: String] = [:],
        serviceAccount: String? = nil
    ) {
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
