/// `trafficPolicy.loadBalancer`: how a cluster picks an endpoint for each request (each connection,
/// for TCP). Istio's effective default when nothing is said is `LEAST_REQUEST`.
public enum LoadBalancerPolicy: Sendable, Hashable {
    case roundRobin
    case random
    /// Power of two choices over the endpoints' active requests (Envoy's default choice count).
    case leastRequest
    case consistentHash(ConsistentHashPolicy)
}

/// `loadBalancer.consistentHash`: requests with the same key reach the same endpoint while the
/// endpoint set stays; when one of N endpoints goes, about 1/N of the keys move.
public struct ConsistentHashPolicy: Sendable, Hashable {
    public enum Key: Sendable, Hashable {
        /// `httpHeaderName` (lowercased).
        case header(String)
        /// `httpCookie`: with a `ttl`, a missing cookie is generated and set on the response (a
        /// session cookie when the ttl is 0), as Envoy does; without one, a request lacking the
        /// cookie is balanced at random.
        case cookie(name: String, path: String?, ttl: Duration?)
        /// `useSourceIp`: the downstream peer's IP.
        case sourceIP
        /// `httpQueryParameterName`.
        case queryParameter(String)
    }

    public enum Table: Sendable, Hashable {
        /// `ringHash.minimumRingSize` (or the deprecated `minimumRingSize`); Envoy's default 1024.
        case ringHash(minimumSize: Int)
        /// `maglev.tableSize`, a prime; Envoy's default 65537.
        case maglev(tableSize: Int)
    }

    public static let defaultRingSize = 1024
    public static let defaultMaglevTableSize = 65537

    public var key: Key
    public var table: Table

    public init(key: Key, table: Table = .ringHash(minimumSize: ConsistentHashPolicy.defaultRingSize)) {
        self.key = key
        self.table = table
    }
}

/// `trafficPolicy.outlierDetection`: endpoints that keep failing are ejected from balancing for a
/// while (Envoy's consecutive-errors detectors; success-rate detection is not part of Istio's API).
/// Defaults as Istio documents them.
public struct OutlierDetectionPolicy: Sendable, Hashable {
    /// `consecutive5xxErrors` (or the deprecated `consecutiveErrors`): 5xx answers in a row; 0 = off.
    public var consecutive5xxErrors = 5
    /// `consecutiveGatewayErrors`: 502, 503 and 504 in a row; 0 = off (the default).
    public var consecutiveGatewayErrors = 0
    /// `splitExternalLocalOriginErrors`: connect failures, resets and timeouts are counted apart,
    /// against `consecutiveLocalOriginFailures`, rather than as 5xx answers.
    public var splitExternalLocalOriginErrors = false
    public var consecutiveLocalOriginFailures = 5
    /// `interval`: how often ejection multipliers of endpoints that behaved wind down.
    public var interval: Duration = .seconds(10)
    /// `baseEjectionTime`: an ejection lasts this × the endpoint's ejections so far (at most 300s or this, whichever is more).
    public var baseEjectionTime: Duration = .seconds(30)
    /// `maxEjectionPercent`: at most this share of the cluster's endpoints ejected at once.
    public var maxEjectionPercent = 10
    /// `minHealthPercent`: below this share of endpoints not ejected, ejections are ignored (panic).
    public var minHealthPercent = 0

    public init() {}
}

/// `loadBalancer.localityLbSetting`, over endpoint localities (`region/zone/subzone`) and this
/// instance's own (`locality` in meshgate.yaml). As in Istio, failover applies only when the
/// cluster has outlier detection.
public struct LocalityLBSetting: Sendable, Hashable {
    /// `distribute[]`: from this instance's locality (a pattern, `*` as the last segment matches
    /// any), the share of traffic each locality pattern gets.
    public struct Distribute: Sendable, Hashable {
        public var from: String
        public var to: [Weighted]
        public init(from: String, to: [Weighted]) {
            self.from = from
            self.to = to
        }
    }

    public struct Weighted: Sendable, Hashable {
        public var locality: String
        public var weight: Int
        public init(locality: String, weight: Int) {
            self.locality = locality
            self.weight = weight
        }
    }

    /// `failover[]`: when this instance's region (`from`) has no healthy endpoint, region `to` next.
    public struct Failover: Sendable, Hashable {
        public var from: String
        public var to: String
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
    }

    /// `enabled: false` turns locality balancing off for this cluster.
    public var enabled = true
    public var distribute: [Distribute] = []
    public var failover: [Failover] = []
    /// `failoverPriority[]`: labels, most important first, whose values endpoints share with this
    /// instance to be preferred.
    public var failoverPriority: [String] = []

    public init(enabled: Bool = true, distribute: [Distribute] = [], failover: [Failover] = [], failoverPriority: [String] = []) {
        self.enabled = enabled
        self.distribute = distribute
        self.failover = failover
        self.failoverPriority = failoverPriority
    }
}

/// `region/zone/subzone`, as WorkloadEntry `locality` and meshgate.yaml's `locality` spell it.
public enum Locality {
    /// The segments of a locality (1 to 3, none empty), or nil. `wildcard`: the last segment may be `*`.
    public static func segments(_ text: String, wildcard: Bool = false) -> [Substring]? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && !$0.contains(" ") }) else { return nil }
        if parts.dropLast().contains("*") || (!wildcard && parts.last == "*") { return nil }
        return parts
    }

    /// Whether `locality` falls under `pattern` (segment by segment; a trailing `*` matches the rest).
    public static func matches(_ pattern: String, _ locality: String) -> Bool {
        let pattern = pattern.split(separator: "/"), locality = locality.split(separator: "/")
        for (index, segment) in pattern.enumerated() {
            if segment == "*" { return true }
            guard index < locality.count, locality[index] == segment else { return false }
        }
        return pattern.count == locality.count
    }
}
