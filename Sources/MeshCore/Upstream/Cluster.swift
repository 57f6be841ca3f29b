import Atomics
import MeshConfig
import NIOCore

/// An upstream cluster: the endpoints of one (service, port, subset) with its traffic policy.
///
/// Named as Istio names them, `outbound|9080|v1|reviews.default.svc.cluster.local`, so the names
/// in logs and metrics are the ones an Istio user already knows.
public final class Cluster: Sendable {
    public let name: String
    public let serviceFQDN: String
    public let servicePort: Int
    public let subset: String?
    public let endpoints: [ClusterEndpoint]
    /// Pool keys, one per endpoint (`cluster|ip:port`), built once here rather than per request.
    let poolKeys: [String]
    public let connectTimeout: TimeAmount
    public let upstreamIdleTimeout: TimeAmount
    public let maxRequestsPerConnection: Int
    /// Requests go upstream as HTTP/2 streams, multiplexed on shared connections (a port declared
    /// HTTP2 or GRPC, or `h2UpgradePolicy: UPGRADE`); otherwise HTTP/1.1 keep-alive.
    public let http2: Bool
    /// Streams per upstream HTTP/2 connection at most (also bounded by the server's SETTINGS); 0 = the server's.
    public let maxConcurrentStreams: Int
    private let nextIndex = ManagedAtomic<Int>(0)

    public init(
        name: String,
        serviceFQDN: String,
        servicePort: Int,
        subset: String?,
        endpoints: [ClusterEndpoint],
        connectTimeout: TimeAmount,
        upstreamIdleTimeout: TimeAmount,
        maxRequestsPerConnection: Int,
        http2: Bool = false,
        maxConcurrentStreams: Int = 0
    ) {
        self.name = name
        self.serviceFQDN = serviceFQDN
        self.servicePort = servicePort
        self.subset = subset
        self.endpoints = endpoints
        self.poolKeys = endpoints.map { "\(name)|\($0.hostPort)\($0.tls == nil ? "" : "|tls")\(http2 ? "|h2" : "")" }
        self.connectTimeout = connectTimeout
        self.upstreamIdleTimeout = upstreamIdleTimeout
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.http2 = http2
        self.maxConcurrentStreams = maxConcurrentStreams
    }

    /// Round-robin over the endpoints; nil when the cluster has none (`no healthy upstream`).
    public func pickEndpoint() -> ClusterEndpoint? {
        self.pickEndpointIndex().map { self.endpoints[$0] }
    }

    func pickEndpointIndex() -> Int? {
        switch self.endpoints.count {
        case 0: return nil
        case 1: return 0
        default:
            let index = self.nextIndex.loadThenWrappingIncrement(ordering: .relaxed)
            return Int(UInt(bitPattern: index) % UInt(self.endpoints.count))
        }
    }

    /// An endpoint other than those `tried` when there is one (a retry's `previous_hosts`
    /// predicate); any endpoint when all were tried.
    func pickEndpointIndex(avoiding tried: [Int]) -> Int? {
        guard !tried.isEmpty, self.endpoints.count > 1 else { return self.pickEndpointIndex() }
        if let index = self.pickEndpointIndex(), !tried.contains(index) { return index }
        return self.endpoints.indices.first { !tried.contains($0) } ?? self.pickEndpointIndex()
    }
}

/// One endpoint of a cluster.
public struct ClusterEndpoint: Sendable, Hashable {
    public let address: SocketAddress
    /// `ip:port`, as Envoy prints `%UPSTREAM_HOST%`.
    public let hostPort: String
    public let labels: [String: String]
    /// The WorkloadEntry this endpoint came from.
    public let workloadName: String
    /// Its metric labels.
    public let identity: DestinationIdentity
    /// How the connection is secured; nil = plain text.
    public let tls: UpstreamTLS?

    public init(
        address: SocketAddress, hostPort: String, labels: [String: String], workloadName: String, identity: DestinationIdentity,
        tls: UpstreamTLS? = nil
    ) {
        self.address = address
        self.hostPort = hostPort
        self.labels = labels
        self.workloadName = workloadName
        self.identity = identity
        self.tls = tls
    }

    public static func == (lhs: ClusterEndpoint, rhs: ClusterEndpoint) -> Bool {
        lhs.address == rhs.address && lhs.labels == rhs.labels && lhs.workloadName == rhs.workloadName
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.hostPort)
        hasher.combine(self.workloadName)
    }
}
