import MeshConfig

/// Envoy's consecutive-errors outlier detection for one cluster (`trafficPolicy.outlierDetection`),
/// as a pure state machine: each attempt's result goes in with the time, ejections come out.
/// Nothing runs on a timer: an ejection ends when its time is up (checked when asked), and the
/// `interval` sweep that winds down the ejection multiplier of endpoints that behaved runs when the
/// next result arrives after it was due. State is a few integers per endpoint, whatever the traffic:
/// an endpoint flapping every 100 ms allocates nothing.
struct OutlierDetector {
    /// One attempt's result, as the detectors count it.
    enum Result: Equatable {
        /// A response from the endpoint: a 5xx counts as an error, anything else resets the counts.
        case response(status: Int)
        /// Connect failure, reset or timeout before a response (a local-origin error): counted apart
        /// with `splitExternalLocalOriginErrors`, otherwise as a 503 would be.
        case localFailure
        /// The connection was made (TCP): the end of a run of local-origin errors.
        case connected
    }

    enum Event: Equatable {
        /// Ejected until `until` (nanoseconds on the caller's clock), for this reason.
        case ejected(endpoint: Int, until: Int64, reason: String)
    }

    struct Endpoint: Equatable {
        var consecutive5xx = 0
        var consecutiveGateway = 0
        var consecutiveLocal = 0
        /// Ejections so far, less one per `interval` spent healthy: the ejection time's multiplier.
        var ejections = 0
        var ejectedUntil: Int64?
    }

    /// Envoy's `max_ejection_time` default: an ejection grows no longer (unless the base is longer).
    static let maxEjectionNanos: Int64 = 300 * 1_000_000_000

    let policy: OutlierDetectionPolicy
    private(set) var endpoints: [Endpoint]
    private var lastSweep: Int64

    init(policy: OutlierDetectionPolicy, endpoints: Int, now: Int64) {
        self.policy = policy
        self.endpoints = Array(repeating: Endpoint(), count: endpoints)
        self.lastSweep = now
    }

    /// Counts `result` for `endpoint` at `now`; the ejection it causes, if any.
    mutating func record(_ result: Result, endpoint index: Int, now: Int64) -> Event? {
        self.sweep(now: now)
        guard self.endpoints.indices.contains(index) else { return nil }
        var endpoint = self.endpoints[index]
        let split = self.policy.splitExternalLocalOriginErrors
        switch result {
        case .response(let status) where status >= 500:
            endpoint.consecutive5xx += 1
            if (502...504).contains(status) { endpoint.consecutiveGateway += 1 } else { endpoint.consecutiveGateway = 0 }
            if split { endpoint.consecutiveLocal = 0 }
        case .response:
            endpoint.consecutive5xx = 0
            endpoint.consecutiveGateway = 0
            endpoint.consecutiveLocal = 0
        case .localFailure:
            if split {
                endpoint.consecutiveLocal += 1
            } else {
                endpoint.consecutive5xx += 1
                endpoint.consecutiveGateway += 1
            }
        case .connected:
            if split { endpoint.consecutiveLocal = 0 } else {
                endpoint.consecutive5xx = 0
                endpoint.consecutiveGateway = 0
            }
        }
        self.endpoints[index] = endpoint
        let reason: String
        if Self.reached(endpoint.consecutive5xx, self.policy.consecutive5xxErrors) {
            reason = "\(endpoint.consecutive5xx) consecutive 5xx"
        } else if Self.reached(endpoint.consecutiveGateway, self.policy.consecutiveGatewayErrors) {
            reason = "\(endpoint.consecutiveGateway) consecutive gateway errors"
        } else if split && Self.reached(endpoint.consecutiveLocal, self.policy.consecutiveLocalOriginFailures) {
            reason = "\(endpoint.consecutiveLocal) consecutive local-origin failures"
        } else {
            return nil
        }
        return self.eject(index, now: now, reason: reason)
    }

    private static func reached(_ count: Int, _ threshold: Int) -> Bool { threshold > 0 && count >= threshold }

    private mutating func eject(_ index: Int, now: Int64, reason: String) -> Event? {
        // The counts start again whether or not the ejection is allowed (as Envoy's do).
        self.endpoints[index].consecutive5xx = 0
        self.endpoints[index].consecutiveGateway = 0
        self.endpoints[index].consecutiveLocal = 0
        guard !self.isEjected(index, now: now) else { return nil }
        let ejected = self.endpoints.indices.filter { self.isEjected($0, now: now) }.count
        guard 100 * (ejected + 1) <= self.policy.maxEjectionPercent * self.endpoints.count else { return nil }
        self.endpoints[index].ejections += 1
        let base = Self.nanos(self.policy.baseEjectionTime)
        let duration = min(base * Int64(self.endpoints[index].ejections), max(base, Self.maxEjectionNanos))
        self.endpoints[index].ejectedUntil = now + duration
        return .ejected(endpoint: index, until: now + duration, reason: reason)
    }

    /// Whether `endpoint` is out of balancing at `now`.
    func isEjected(_ index: Int, now: Int64) -> Bool {
        guard let until = self.endpoints[index].ejectedUntil else { return false }
        return now < until
    }

    /// The endpoints balancing must skip at `now`: none when too few would be left
    /// (`minHealthPercent`: panic, every endpoint is used), all of them when every one is ejected.
    func excluded(now: Int64) -> [Int] {
        let ejected = self.endpoints.indices.filter { self.isEjected($0, now: now) }
        guard !ejected.isEmpty else { return [] }
        let healthy = self.endpoints.count - ejected.count
        if 100 * healthy < self.policy.minHealthPercent * self.endpoints.count { return [] }
        return ejected
    }

    /// Each `interval` that passed: an ejection that is over ends, and an endpoint not ejected
    /// has its multiplier lowered by one (Envoy's decay).
    mutating func sweep(now: Int64) {
        let interval = max(Self.nanos(self.policy.interval), 1)
        let intervals = (now - self.lastSweep) / interval
        guard intervals > 0 else { return }
        self.lastSweep += intervals * interval
        for index in self.endpoints.indices {
            // Only the intervals spent out of ejection count.
            var healthy = intervals
            if let until = self.endpoints[index].ejectedUntil {
                guard until <= now else { continue }
                self.endpoints[index].ejectedUntil = nil
                healthy = (now - until) / interval
            }
            self.endpoints[index].ejections = max(0, self.endpoints[index].ejections - Int(min(healthy, Int64(Int32.max))))
        }
    }

    static func nanos(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
