import Atomics
import MeshConfig

/// Everything the data path needs, compiled once from a validated ``MeshConfiguration``: immutable,
/// shared by every event loop, replaced whole on reload.
///
/// A connection reads the snapshot that is current when it needs a decision: a TCP connection at
/// accept (and keeps its upstream for its whole life), an HTTP connection at every request.
public final class Snapshot: Sendable, AtomicReference {
    /// Grows by one with every applied configuration.
    public let generation: Int
    public let settings: MeshSettings
    /// One listener per distinct Gateway server port.
    public let listeners: [Int: ListenerPlan]
    /// Every cluster a route can reach, by name (`outbound|port|subset|fqdn`).
    public let clusters: [String: Cluster]
    /// The access log, tracer and sampling this configuration uses.
    public let telemetry: SnapshotTelemetry
    /// This instance as its mesh peers see it (Istio's metadata exchange), and the same as the
    /// `x-envoy-peer-metadata` / `-id` header values, encoded once.
    public let localPeer: PeerMetadata
    let localPeerHeaders: (metadata: String, id: String)
    public let role: MeshRole
    /// This instance's AuthorizationPolicies, compiled; nil when none applies (nothing is checked).
    let authorization: AuthorizationEngine?
    /// This instance's RequestAuthentication rules; nil when none applies.
    let authentication: RequestAuthenticator?
    /// The external authorizer this instance's CUSTOM policies name.
    let extAuthz: ExtAuthzClient?

    public init(
        generation: Int,
        settings: MeshSettings,
        listeners: [Int: ListenerPlan],
        clusters: [String: Cluster],
        telemetry: SnapshotTelemetry = SnapshotTelemetry(),
        role: MeshRole = .gateway,
        authorizationPolicies: [AuthorizationPolicy] = [],
        authentication: RequestAuthenticator? = nil,
        extAuthz: ExtAuthzClient? = nil
    ) {
        self.extAuthz = extAuthz
        self.role = role
        self.authentication = authentication
        let authorization = AuthorizationEngine(authorizationPolicies)
        self.authorization = authorization.isEmpty ? nil : authorization
        self.generation = generation
        self.settings = settings
        self.listeners = listeners
        self.clusters = clusters
        self.telemetry = telemetry
        self.localPeer = PeerMetadata.local(settings, role: role)
        self.localPeerHeaders = PeerMetadataExchange.headerValues(self.localPeer)
    }
}

/// Which of the two roles an instance plays.
public enum MeshRole: String, Sendable {
    case gateway
    case sidecar
}

extension PeerMetadata {
    /// This instance's node metadata, as an Istio proxy with the same settings would announce it.
    static func local(_ settings: MeshSettings, role: MeshRole) -> PeerMetadata {
        let name = settings.workloadName
        var labels = settings.labels
        if role == .gateway, labels["app"] == nil { labels["app"] = name }
        return PeerMetadata(
            id: "\(role == .gateway ? "router" : "sidecar")~\(settings.bindAddress)~\(name).\(settings.namespace)~\(settings.namespace).svc.cluster.local",
            name: name,
            namespace: settings.namespace,
            workloadName: name,
            owner: "meshgate://\(settings.namespace)/\(name)",
            labels: labels,
            clusterID: "Kubernetes",
            meshID: settings.trustDomain,
            serviceAccount: settings.serviceAccount,
            istioVersion: "meshgate"
        )
    }
}

/// What one listening port does.
public struct ListenerPlan: Sendable {
    public let port: Int
    public let `protocol`: ServerProtocol
    /// `namespace/name` of every Gateway with a server on this port (for `match.gateways`).
    public let gatewayNames: [String]
    /// HTTP-family listeners: the route table. Empty for TCP listeners.
    public let http: HTTPRouteTable
    /// TCP listeners: the routes in order; the first that matches wins.
    public let tcp: [TCPRouteEntry]
    /// Ports with TLS servers: SNI-selected termination or passthrough. nil for plain ports.
    public let tls: TLSListenerPlan?
    /// Hosts of HTTP servers with `tls.httpsRedirect`: their requests get a 301 to https.
    public let httpsRedirectHosts: [String]
    /// A sidecar's inbound port; nil everywhere else.
    public let inbound: InboundPlan?

    public init(
        port: Int, protocol: ServerProtocol, gatewayNames: [String], http: HTTPRouteTable, tcp: [TCPRouteEntry],
        tls: TLSListenerPlan? = nil, httpsRedirectHosts: [String] = [], inbound: InboundPlan? = nil
    ) {
        self.inbound = inbound
        self.port = port
        self.protocol = `protocol`
        self.gatewayNames = gatewayNames
        self.http = http
        self.tcp = tcp
        self.tls = tls
        self.httpsRedirectHosts = httpsRedirectHosts
    }
}

/// Holds the current snapshot. One atomic store on swap; readers never block.
public final class SnapshotHolder: Sendable {
    private let current: ManagedAtomic<Snapshot>

    public init(_ snapshot: Snapshot) {
        self.current = ManagedAtomic(snapshot)
    }

    public func load() -> Snapshot {
        self.current.load(ordering: .acquiring)
    }

    public func swap(_ snapshot: Snapshot) {
        self.current.store(snapshot, ordering: .releasing)
    }
}

/// The telemetry a snapshot serves with. The writer objects are long-lived (the process keeps one
/// per file and reuses it across reloads); the snapshot only says which to use.
public struct SnapshotTelemetry: Sendable {
    /// nil: no access log (Istio's default).
    public var accessLogger: AccessLogger?
    /// nil: no tracing at all (no span reporting, headers still pass through untouched).
    public var tracer: Tracer?
    /// Percent of requests sampled when the client did not decide.
    public var sampling: Double
    /// How often open TCP connections' byte counters are flushed.
    public var tcpReportingInterval: Duration
    /// The telemetry configuration these came from (meshgate.yaml with Telemetry resources).
    public var effective: EffectiveTelemetry?

    public init(
        accessLogger: AccessLogger? = nil, tracer: Tracer? = nil, sampling: Double = 1.0,
        tcpReportingInterval: Duration = .seconds(15), effective: EffectiveTelemetry? = nil
    ) {
        self.accessLogger = accessLogger
        self.tracer = tracer
        self.sampling = sampling
        self.tcpReportingInterval = tcpReportingInterval
        self.effective = effective
    }
}
