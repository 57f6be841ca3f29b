import MeshConfig
import NIOCore
import NIOHTTP1

/// The router's dealings with its cluster: requests in flight per endpoint (LEAST_REQUEST), each
/// attempt's result for outlier detection, the circuit breaker's slots, and the wait for a
/// connection of a cluster at its `maxConnections`.
extension HTTPProxyHandler {
    /// The endpoint has one more request in flight (for LEAST_REQUEST), until ``endAttempt(_:)``.
    func beginAttempt(_ exchange: HTTPExchange, _ cluster: Cluster, _ endpoint: Int) {
        exchange.reportsOutcomes = cluster.outliers != nil
        guard cluster.countsActiveRequests, exchange.countedAttempt == nil else { return }
        cluster.requestStarted(endpoint)
        exchange.countedAttempt = (cluster, endpoint)
    }

    /// Outlier detection: the attempt's result counted against its endpoint.
    func recordOutcome(_ exchange: HTTPExchange, _ result: OutlierDetector.Result) {
        guard exchange.reportsOutcomes, let target = exchange.target else { return }
        target.cluster.record(result, endpoint: target.endpointIndex, log: self.environment.log)
    }

    /// Gives back what the exchange holds of its cluster's circuit breaker (at its end).
    func releaseLimits(_ exchange: HTTPExchange) {
        guard let breaker = exchange.breaker else { return }
        if let pending = exchange.pending {
            pending.cancelled = true
            exchange.pending = nil
            breaker.release(.pendingRequest)
        }
        if exchange.holdsRequest { breaker.release(.request) }
        if exchange.holdsRetry { breaker.release(.retry) }
        exchange.holdsRequest = false
        exchange.holdsRetry = false
    }

    /// The attempt on the target endpoint is over (a retry, or the exchange's end).
    func endAttempt(_ exchange: HTTPExchange) {
        guard let (cluster, endpoint) = exchange.countedAttempt else { return }
        cluster.requestEnded(endpoint)
        exchange.countedAttempt = nil
    }

    /// Queues the exchange for a connection of `key` (the cluster is at `maxConnections`), or
    /// answers 503 `UO` when `http1MaxPendingRequests` are already waiting. Request parts are held
    /// meanwhile, as while connecting.
    func waitForConnection(_ exchange: HTTPExchange, breaker: CircuitBreaker, pool: LoopPool, key: String) {
        guard breaker.tryAcquire(.pendingRequest) else {
            self.environment.log.debug("http :\(self.environment.port): \(key): no connection free and http1MaxPendingRequests waiting (UO)")
            self.sendLocalReply(.overflow)
            return
        }
        exchange.upstream = .waiting
        let pending = PendingRequest { connection in
            breaker.release(.pendingRequest)
            exchange.pending = nil
            guard self.exchange === exchange, case .waiting = exchange.upstream, !self.closed, let target = exchange.target else {
                // Not wanted any more (the pool skips cancelled requests; this is the rest): what
                // was handed over goes back.
                if let connection {
                    pool.release(connection, idleTimeout: exchange.target?.cluster.upstreamIdleTimeout ?? .seconds(1))
                } else {
                    breaker.release(.connection)
                }
                return
            }
            if let connection {
                exchange.reusedConnection = true
                self.attach(connection, head: target.head, maxRequests: target.cluster.maxRequestsPerConnection)
            } else {
                // A connection slot was taken for this request: connect.
                self.openConnection(exchange, target: target, pool: pool, key: key)
            }
        }
        exchange.pending = pending
        pool.enqueue(pending, key: key)
    }

    /// Opens a connection for the exchange's target with its breaker slot already held.
    private func openConnection(_ exchange: HTTPExchange, target: HTTPExchange.Target, pool: LoopPool, key: String) {
        let cluster = target.cluster
        exchange.upstream = .none
        exchange.reusedConnection = false
        let connecting = pool.connect(
            key: key, endpoint: cluster.endpoints[target.endpointIndex], options: cluster.connectOptions, breaker: cluster.breaker
        )
        exchange.upstreamStart = .now()
        self.whenConnected(connecting, exchange: exchange, target: target)
    }
}
