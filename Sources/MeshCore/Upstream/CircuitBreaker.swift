import Atomics
import MeshConfig

/// A cluster's connection-pool limits (`trafficPolicy.connectionPool`, Envoy's circuit breakers),
/// counted across the process's event loops as Envoy counts them per cluster. A resource is
/// acquired only while below its limit; what overflows is refused at once (503 `UO`, or a TCP
/// connection closed with `UO`), never queued without bound.
final class CircuitBreaker: Sendable {
    enum Resource: Int, CaseIterable, Sendable {
        /// `tcp.maxConnections`: upstream connections, open or opening.
        case connection
        /// `http.http1MaxPendingRequests`: requests waiting for a connection.
        case pendingRequest
        /// `http.http2MaxRequests`: requests in flight.
        case request
        /// `http.maxRetries`: retries outstanding.
        case retry

        /// Envoy's overflow counter for the resource (`envoy_cluster_<name>` in `/stats/prometheus`).
        var overflowCounter: String {
            switch self {
            case .connection: return "upstream_cx_overflow"
            case .pendingRequest: return "upstream_rq_pending_overflow"
            case .request: return "upstream_rq_overflow"
            case .retry: return "upstream_rq_retry_overflow"
            }
        }

        /// Envoy's `circuit_breakers.default.remaining_*` gauge name.
        var remainingGauge: String {
            switch self {
            case .connection: return "remaining_cx"
            case .pendingRequest: return "remaining_pending"
            case .request: return "remaining_rq"
            case .retry: return "remaining_retries"
            }
        }
    }

    /// Limits by resource; `Int.max` = none.
    let limits: [Int]
    private let counts: [ManagedAtomic<Int>]
    /// Refusals by resource, since this cluster was compiled.
    private let overflows: [ManagedAtomic<Int>]

    /// nil when the policy sets no limit: the request path then counts nothing.
    init?(_ policy: TrafficPolicy?) {
        let limits = [policy?.maxConnections, policy?.http1MaxPendingRequests, policy?.http2MaxRequests, policy?.maxRetries]
        guard limits.contains(where: { $0 != nil }) else { return nil }
        self.limits = limits.map { $0 ?? Int.max }
        self.counts = limits.map { _ in ManagedAtomic(0) }
        self.overflows = limits.map { _ in ManagedAtomic(0) }
    }

    func limit(_ resource: Resource) -> Int { self.limits[resource.rawValue] }

    /// One more of `resource` if that stays within its limit; false (nothing taken) otherwise.
    func tryAcquire(_ resource: Resource) -> Bool {
        let limit = self.limits[resource.rawValue]
        let count = self.counts[resource.rawValue]
        var current = count.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = count.weakCompareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        self.overflows[resource.rawValue].wrappingIncrement(ordering: .relaxed)
        return false
    }

    /// An overflow the caller decided on (a connection over the limit Envoy still lets a pool open).
    func countOverflow(_ resource: Resource) {
        self.overflows[resource.rawValue].wrappingIncrement(ordering: .relaxed)
    }

    func overflowCount(_ resource: Resource) -> Int { self.overflows[resource.rawValue].load(ordering: .relaxed) }

    /// One more of `resource` whatever its limit (Envoy lets a pool with no connection open one).
    func acquire(_ resource: Resource) {
        self.counts[resource.rawValue].wrappingIncrement(ordering: .relaxed)
    }

    func release(_ resource: Resource) {
        self.counts[resource.rawValue].wrappingDecrement(ordering: .relaxed)
    }

    func inUse(_ resource: Resource) -> Int { self.counts[resource.rawValue].load(ordering: .relaxed) }

    /// What is left before `resource` overflows (for the gauges); `nil` when it has no limit.
    func remaining(_ resource: Resource) -> Int? {
        let limit = self.limits[resource.rawValue]
        return limit == Int.max ? nil : max(limit - self.inUse(resource), 0)
    }
}
