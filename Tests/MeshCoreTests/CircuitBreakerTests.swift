import MeshConfig
import Testing

@testable import MeshCore

/// The connection-pool limits as counters: acquired only below the limit, overflows counted.
@Suite struct CircuitBreakerTests {
    @Test func noLimitMeansNoBreaker() {
        #expect(CircuitBreaker(nil) == nil)
        #expect(CircuitBreaker(TrafficPolicy(maxRequestsPerConnection: 1)) == nil)
    }

    @Test func eachResourceStopsAtItsLimitAndCountsItsOverflows() throws {
        let breaker = try #require(CircuitBreaker(TrafficPolicy(maxConnections: 1, http1MaxPendingRequests: 2)))
        #expect(breaker.tryAcquire(.connection))
        #expect(!breaker.tryAcquire(.connection))
        #expect(breaker.tryAcquire(.pendingRequest))
        #expect(breaker.tryAcquire(.pendingRequest))
        #expect(!breaker.tryAcquire(.pendingRequest))
        #expect(breaker.overflowCount(.connection) == 1)
        #expect(breaker.overflowCount(.pendingRequest) == 1)
        #expect(breaker.remaining(.pendingRequest) == 0)
        breaker.release(.pendingRequest)
        #expect(breaker.remaining(.pendingRequest) == 1)
        #expect(breaker.tryAcquire(.pendingRequest))
        // Unlimited resources are always granted and have no remaining figure.
        for _ in 0..<1000 { #expect(breaker.tryAcquire(.request)) }
        #expect(breaker.remaining(.request) == nil)
        #expect(breaker.overflowCount(.request) == 0)
        // A pool with no connection may open one over the limit (counted in use, not refused).
        breaker.acquire(.connection)
        #expect(breaker.inUse(.connection) == 2)
        #expect(breaker.remaining(.connection) == 0)
        breaker.release(.connection)
        breaker.release(.connection)
        #expect(breaker.tryAcquire(.connection))
    }

    @Test func clustersReportTheirBreakersUnderEnvoysNames() throws {
        let cluster = Cluster(
            name: "outbound|80||a.default.svc.cluster.local", serviceFQDN: "a.default.svc.cluster.local", servicePort: 80, subset: nil,
            endpoints: [], connectTimeout: .seconds(1), upstreamIdleTimeout: .seconds(1), maxRequestsPerConnection: 0,
            limits: TrafficPolicy(http1MaxPendingRequests: 3)
        )
        let series = cluster.clusterSeries
        let label = "{cluster_name=\"outbound|80||a.default.svc.cluster.local\"}"
        #expect(series["envoy_cluster_upstream_rq_pending_overflow\(label)"] == 0)
        #expect(series["envoy_cluster_circuit_breakers_default_remaining_pending\(label)"] == 3)
        #expect(series["envoy_cluster_circuit_breakers_default_remaining_cx\(label)"] == nil)
    }
}
