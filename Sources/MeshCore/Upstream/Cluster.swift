import Atomics
import NIOConcurrencyHelpers
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif
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
    /// `trafficPolicy.loadBalancer`, compiled.
    let balancer: LoadBalancer
    /// `connectionPool` limits; nil when none is set (nothing is counted).
    let breaker: CircuitBreaker?
    /// Locality-aware balancing (`localityLbSetting`, failover by proximity); nil when none applies.
    let locality: LocalityBalancing?
    /// `outlierDetection`, shared by the event loops; nil when the policy has none.
    let outliers: NIOLockedValueBox<OutlierDetector>?
    /// Ejections made (for `/stats`), and whether any endpoint may be ejected now (a hint that
    /// spares the lock on the request path while none is).
    private let ejectionsMade = ManagedAtomic<Int>(0)
    private let mayHaveEjected = ManagedAtomic<Bool>(false)
    /// `connectTimeout` and `tcpKeepalive`, for upstream sockets.
    let connectOptions: UpstreamConnectOptions
    private let rotation = ManagedAtomic<Int>(0)
    /// Requests (TCP: connections) in flight per endpoint, across event loops: kept only for a
    /// balancer that reads them.
    private let active: [ManagedAtomic<Int>]

    init(
        name: String,
        serviceFQDN: String,
        servicePort: Int,
        subset: String?,
        endpoints: [ClusterEndpoint],
        connectTimeout: TimeAmount,
        upstreamIdleTimeout: TimeAmount,
        maxRequestsPerConnection: Int,
        http2: Bool = false,
        maxConcurrentStreams: Int = 0,
        loadBalancer: LoadBalancerPolicy? = nil,
        limits: TrafficPolicy? = nil,
        locality: LocalityBalancing? = nil
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
        self.balancer = LoadBalancer(loadBalancer, keys: endpoints.map(\.hostPort))
        self.breaker = CircuitBreaker(limits)
        self.locality = locality
        self.outliers = limits?.outlierDetection.map {
            NIOLockedValueBox(OutlierDetector(policy: $0, endpoints: endpoints.count, now: Self.now()))
        }
        self.connectOptions = UpstreamConnectOptions(timeout: connectTimeout, keepalive: limits?.tcpKeepalive)
        // One endpoint needs no count: there is nothing to choose between.
        self.active = self.balancer.countsActiveRequests && endpoints.count > 1 ? endpoints.map { _ in ManagedAtomic(0) } : []
    }

    /// The balancer's endpoint for one request or connection, other than those `tried` when there
    /// is one (a retry's previous-hosts predicate); nil when the cluster has none (`no healthy
    /// upstream`). `hash`: the request's consistent-hash key, hashed.
    func chooseEndpoint(hash: UInt64? = nil, avoiding tried: [Int] = []) -> Int? {
        var excluded: [Int] = []
        if let outliers = self.outliers, self.mayHaveEjected.load(ordering: .relaxed) {
            let now = Self.now()
            excluded = outliers.withLockedValue { detector in
                // Under the lock, so an ejection made meanwhile sets the hint again after this.
                if !detector.endpoints.indices.contains(where: { detector.isEjected($0, now: now) }) {
                    self.mayHaveEjected.store(false, ordering: .relaxed)
                }
                return detector.excluded(now: now)
            }
        }
        if let locality = self.locality {
            excluded = locality.restrict(excluded, count: self.endpoints.count, roll: FastRandom.shared.next())
        }
        if !excluded.isEmpty && excluded.count == self.endpoints.count { return nil }
        var draw = LoadBalancer.Draw(rotation: 0, random: (0, 0), hash: hash)
        if self.endpoints.count > 1 {
            // Only what the algorithm reads (each is an atomic add on a shared counter).
            if case .roundRobin = self.balancer.algorithm {
                draw.rotation = self.rotation.loadThenWrappingIncrement(ordering: .relaxed)
            } else {
                draw.random = (FastRandom.shared.next(), FastRandom.shared.next())
            }
        }
        return self.balancer.pick(count: self.endpoints.count, draw: draw, avoiding: tried, excluding: excluded) {
            self.active[$0].load(ordering: .relaxed)
        }
    }

    /// Counts an attempt's result against endpoint `index` for outlier detection; the ejection it
    /// caused, if any, for the caller to log.
    func record(_ result: OutlierDetector.Result, endpoint index: Int) -> OutlierDetector.Event? {
        guard let outliers = self.outliers else { return nil }
        let now = Self.now()
        return outliers.withLockedValue { detector in
            let event = detector.record(result, endpoint: index, now: now)
            if event != nil {
                self.ejectionsMade.wrappingIncrement(ordering: .relaxed)
                self.mayHaveEjected.store(true, ordering: .relaxed)
            }
            return event
        }
    }

    /// Counts the result and logs what it caused (an ejection), the same line for HTTP and TCP.
    func record(_ result: OutlierDetector.Result, endpoint index: Int, log: MeshLog) {
        guard case .ejected(let ejected, let until, let reason)? = self.record(result, endpoint: index) else { return }
        let milliseconds = (until - Self.now()) / 1_000_000
        log.info("outlier detection: \(self.endpoints[ejected].hostPort) ejected from \(self.name) for \(milliseconds)ms (\(reason))")
    }

    /// Endpoint `index`'s health for `/clusters`: `HEALTHY`, or `EJECTED` and until when (seconds from now).
    public func health(_ index: Int) -> (state: String, ejectedForSeconds: Double?) {
        guard let outliers = self.outliers else { return ("HEALTHY", nil) }
        let now = Self.now()
        return outliers.withLockedValue { detector in
            guard detector.isEjected(index, now: now), let until = detector.endpoints[index].ejectedUntil else { return ("HEALTHY", nil) }
            return ("EJECTED", Double(until - now) / 1e9)
        }
    }

    /// The clock outlier detection runs on (monotonic nanoseconds).
    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// Whether requests in flight are counted (LEAST_REQUEST over several endpoints).
    var countsActiveRequests: Bool { !self.active.isEmpty }

    /// A request (or connection) to endpoint `index` began; each is ended once with ``requestEnded(_:)``.
    func requestStarted(_ index: Int) {
        if !self.active.isEmpty { self.active[index].wrappingIncrement(ordering: .relaxed) }
    }

    func requestEnded(_ index: Int) {
        if !self.active.isEmpty { self.active[index].wrappingDecrement(ordering: .relaxed) }
    }

    /// The balancer's name, as Istio spells it (`/clusters`).
    public var loadBalancerName: String { self.balancer.name }

    /// The circuit breakers' and outlier detection's series for `/stats/prometheus`, under the
    /// names Istio users look for (Envoy's): overflows by resource, what remains of each limit,
    /// ejections. Empty without limits or detection.
    public var clusterSeries: [String: Double] {
        let label = "{cluster_name=\"\(self.name)\"}"
        var series: [String: Double] = [:]
        if let outliers = self.outliers {
            let now = Self.now()
            series["envoy_cluster_outlier_detection_ejections_active\(label)"] = Double(outliers.withLockedValue { detector in
                detector.endpoints.indices.filter { detector.isEjected($0, now: now) }.count
            })
            series["envoy_cluster_outlier_detection_ejections_enforced_total\(label)"] = Double(self.ejectionsMade.load(ordering: .relaxed))
        }
        guard let breaker = self.breaker else { return series }
        for resource in CircuitBreaker.Resource.allCases {
            series["envoy_cluster_\(resource.overflowCounter)\(label)"] = Double(breaker.overflowCount(resource))
            if let remaining = breaker.remaining(resource) {
                series["envoy_cluster_circuit_breakers_default_\(resource.remainingGauge)\(label)"] = Double(remaining)
            }
        }
        return series
    }

    /// Endpoint `index`'s requests in flight (0 when the balancer does not count them).
    public func activeRequests(_ index: Int) -> Int {
        self.active.isEmpty ? 0 : self.active[index].load(ordering: .relaxed)
    }
}

/// One endpoint of a cluster. A class: it is handed around per request (the router, the filters,
/// the pool), and a reference costs one retain where this many fields cost one each.
public final class ClusterEndpoint: Sendable, Hashable {
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

/// How upstream sockets are opened: `connectionPool.tcp.connectTimeout` and `tcpKeepalive`.
struct UpstreamConnectOptions: Sendable {
    let timeout: TimeAmount
    /// SO_KEEPALIVE with these values (each the kernel's default when nil); nil = off.
    let keepalive: TCPKeepalive?
}

extension ClientBootstrap {
    func upstreamOptions(_ options: UpstreamConnectOptions) -> ClientBootstrap {
        var bootstrap = self.connectTimeout(options.timeout)
        guard let keepalive = options.keepalive else { return bootstrap }
        bootstrap = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1)
        #if os(Linux)
        let tcp = SocketOptionLevel(IPPROTO_TCP)
        if let time = keepalive.time {
            bootstrap = bootstrap.channelOption(ChannelOptions.socket(tcp, SocketOptionName(TCP_KEEPIDLE)), value: Self.seconds(time))
        }
        if let interval = keepalive.interval {
            bootstrap = bootstrap.channelOption(ChannelOptions.socket(tcp, SocketOptionName(TCP_KEEPINTVL)), value: Self.seconds(interval))
        }
        if let probes = keepalive.probes {
            bootstrap = bootstrap.channelOption(ChannelOptions.socket(tcp, SocketOptionName(TCP_KEEPCNT)), value: SocketOptionValue(probes))
        }
        #endif
        return bootstrap
    }

    /// Whole seconds, at least 1 (the kernel's unit).
    private static func seconds(_ duration: Duration) -> SocketOptionValue {
        SocketOptionValue(max(duration.components.seconds, 1))
    }
}
