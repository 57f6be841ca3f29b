import MeshConfig
import NIOCore
import NIOHTTP1

/// One request/response exchange: what the connection manager, the filters and the router know of
/// it. A class: it is updated at every event of the request, and a reference is cheaper to update in
/// place than a struct to copy out and back.
final class HTTPExchange {
    enum UpstreamState {
        /// No upstream: before routing, or a local reply.
        case none
        case connecting
        /// Waiting before the router (re)starts (an injected delay, a retry's backoff): request
        /// parts are held as while connecting.
        case waiting
        case attached(UpstreamHTTPHandler)
        case finished
    }

    /// Where the request goes, kept so it can be sent again (a closed pooled connection, a retry).
    struct Target {
        var cluster: Cluster
        var endpointIndex: Int
        var head: HTTPRequestHead
    }

    // MARK: Downstream

    var requestHead: HTTPRequestHead
    var keepAlive: Bool
    var isHead: Bool
    let started: NIODeadline
    var requestComplete = false
    var responseStarted = false
    var responseComplete = false
    /// The downstream response is close-delimited (HTTP/1.0 client, or no framing from upstream).
    var closeAfterResponse = false
    /// The rest of the request body is discarded (local reply or early upstream response).
    var discardRequestBody = false
    /// A HEAD response that announces chunked framing: no terminating chunk may follow.
    var suppressEndMarker = false
    /// How the request body is framed upstream (one canonical header, whatever the client sent).
    var bodyFraming = Framing.none

    // MARK: Telemetry

    /// What the access log, the metrics and the span are told when the exchange ends.
    var record = HTTPExchangeRecord()
    var telemetry = ExchangeTelemetry()
    var span: Tracer.Span?
    var reported = false

    // MARK: Filters' per-request state

    /// The route's `headers.response`, and the picked destination's (applied first).
    var responseHeaders: HeaderOperations?
    var destinationResponseHeaders: HeaderOperations?
    /// What the route's CORS policy adds to this request's response (an allowed origin).
    enum CORSResponse {
        case preflight(HTTPHeaders)
        case response(origin: String, policy: CompiledCORS)
    }

    var cors: CORSResponse?
    /// A consistent-hash cookie the balancer generated: set on the response.
    var setCookie: String?
    /// An injected delay held the request (flag `DI`).
    var delayInjected = false
    /// The request's verified JWT (RequestAuthentication), for the policies and the upstream headers.
    var jwt: VerifiedJWT?
    /// Headers an external authorizer asked to add to the upstream request.
    var extAuthzHeaders: [(String, String)]?

    // MARK: Router

    var upstream: UpstreamState = .none
    var target: Target?
    /// Request parts received before the upstream was ready.
    var pendingRequestParts: [HTTPClientRequestPart] = []
    var upstreamStart: NIODeadline = .now()
    /// The upstream connection came from the idle pool (it may have been closed by the server).
    var reusedConnection = false
    /// Some request body has been written upstream: the request can no longer be replayed.
    var bodySent = false
    /// The upstream may serve another request after this response (keep-alive, no `close`).
    var upstreamReusable = true
    /// An upgrade (WebSocket) asked of an HTTP/1.1 upstream: on 101 both connections become a tunnel.
    var upgrade: String?
    /// The upstream answered 101: the tunnel is installed at the end of that response.
    var switching = false
    /// The upstream head waits for the request's first part to decide its framing (HTTP/2 without `content-length`).
    var deferredHead: HTTPRequestHead?
    /// The route's `timeout`, started when the request is complete; cancelled when reported.
    var timeout: TimeAmount?
    var timeoutTimer: Scheduled<Void>?
    /// An injected delay or a retry's backoff, until the router (re)starts.
    var waitTimer: Scheduled<Void>?
    /// The route's retry policy at work (nil before routing; a route with `attempts: 0` has one
    /// that never retries, and still sends again what a stale connection never processed).
    var retry: RetryState?
    /// The request body received, kept while it fits so a retry (or a mirror) can send it again;
    /// with the end's trailers once the request is complete.
    var replayBody: [HTTPClientRequestPart] = []
    var replayBytes = 0
    var replayTrailers: HTTPHeaders?
    var replayable = true
    /// Mirror clusters this request is copied to once complete.
    var mirrors: [Cluster] = []
    /// Endpoints of the target cluster that failed this request, for retries to avoid.
    var failedEndpoints: [Int] = []
    /// The request's consistent-hash key, hashed (a retry picks along the same table).
    var hashKey: UInt64?
    /// The endpoint that counts this attempt among its requests in flight (LEAST_REQUEST), until it ends.
    var countedAttempt: (cluster: Cluster, endpoint: Int)?
    /// The target cluster has outlier detection: each attempt's result is reported to it.
    var reportsOutcomes = false
    /// The target cluster's circuit breaker, while this exchange holds any of its resources.
    var breaker: CircuitBreaker?
    /// Holds one of the breaker's requests (`http2MaxRequests`) / retries (`maxRetries`).
    var holdsRequest = false
    var holdsRetry = false
    /// Waiting for a connection of a cluster at its `maxConnections` (`http1MaxPendingRequests`).
    var pending: PendingRequest?
    var perTryTimer: Scheduled<Void>?
    /// A retriable failure with no retry left: flag `URX`.
    var retriesExhausted = false

    init(requestHead: HTTPRequestHead, keepAlive: Bool, isHead: Bool, started: NIODeadline) {
        self.requestHead = requestHead
        self.keepAlive = keepAlive
        self.isHead = isHead
        self.started = started
    }
}

/// What an exchange needs of the snapshot's telemetry: its access log, its tracer and the sampling
/// rate (three words, not the whole ``SnapshotTelemetry``: the exchange object stays below glibc's
/// 1032-byte tcache limit, which a 1176-byte one missed on every request, measured).
struct ExchangeTelemetry {
    var accessLogger: AccessLogger?
    var tracer: Tracer?
    var sampling: Double = 1.0

    init() {}

    init(_ telemetry: SnapshotTelemetry) {
        self.accessLogger = telemetry.accessLogger
        self.tracer = telemetry.tracer
        self.sampling = telemetry.sampling
    }
}
