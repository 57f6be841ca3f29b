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
