/// Istio's `HTTPFaultInjection`: a delay, an abort, or both, each for a share of a route's requests
/// (drawn independently, as Envoy's fault filter does: delay first, then abort).
public struct HTTPFaultInjection: Sendable, Hashable {
    public struct Delay: Sendable, Hashable {
        public var fixedDelay: Duration
        /// 0…100; Istio's unset percentage (and Envoy's unset fraction) is 0: no request is delayed.
        public var percentage: Double

        public init(fixedDelay: Duration, percentage: Double) {
            self.fixedDelay = fixedDelay
            self.percentage = percentage
        }
    }

    /// What an aborted request is answered with.
    public enum AbortStatus: Sendable, Hashable {
        case http(Int)
        /// A gRPC status (code and canonical name): HTTP 200 with `grpc-status`, trailers only.
        case grpc(code: Int, name: String)
    }

    public struct Abort: Sendable, Hashable {
        public var status: AbortStatus
        public var percentage: Double

        public init(status: AbortStatus, percentage: Double) {
            self.status = status
            self.percentage = percentage
        }
    }

    public var delay: Delay?
    public var abort: Abort?

    public init(delay: Delay? = nil, abort: Abort? = nil) {
        self.delay = delay
        self.abort = abort
    }

    /// gRPC's canonical status names (Istio's `abort.grpcStatus` values) and their codes.
    public static let grpcStatusCodes: [String: Int] = [
        "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
        "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
        "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
    ]
}

/// Istio's `HTTPRetry`, with Istio's defaults where a route says nothing (``default``).
public struct HTTPRetryPolicy: Sendable, Hashable {
    /// Envoy's `retry_on` conditions Meshgate acts on, as a set of flags (checked per response
    /// without hashing).
    public struct Conditions: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        public static let fiveXX = Conditions(rawValue: 1 << 0)
        public static let gatewayError = Conditions(rawValue: 1 << 1)
        public static let reset = Conditions(rawValue: 1 << 2)
        public static let connectFailure = Conditions(rawValue: 1 << 3)
        public static let retriable4xx = Conditions(rawValue: 1 << 4)
        public static let refusedStream = Conditions(rawValue: 1 << 5)
        public static let retriableStatusCodes = Conditions(rawValue: 1 << 6)
        /// gRPC conditions: read from the response's `grpc-status` header (a trailers-only answer).
        public static let cancelled = Conditions(rawValue: 1 << 7)
        public static let deadlineExceeded = Conditions(rawValue: 1 << 8)
        public static let `internal` = Conditions(rawValue: 1 << 9)
        public static let resourceExhausted = Conditions(rawValue: 1 << 10)
        public static let unavailable = Conditions(rawValue: 1 << 11)

        /// `retryOn` names, in Envoy's spelling.
        public static let names: KeyValuePairs<String, Conditions> = [
            "5xx": .fiveXX, "gateway-error": .gatewayError, "reset": .reset, "connect-failure": .connectFailure,
            "retriable-4xx": .retriable4xx, "refused-stream": .refusedStream, "retriable-status-codes": .retriableStatusCodes,
            "cancelled": .cancelled, "deadline-exceeded": .deadlineExceeded, "internal": .internal,
            "resource-exhausted": .resourceExhausted, "unavailable": .unavailable,
        ]
    }

    /// Retries after the first attempt (Istio's `attempts`); 0 disables retrying.
    public var attempts: Int
    public var perTryTimeout: Duration?
    public var conditions: Conditions
    /// Status codes retried under `retriable-status-codes` (Istio adds bare numbers in `retryOn` here).
    public var retriableStatusCodes: Set<Int>
    /// The first backoff interval; Envoy's default is 25 ms, growing to at most 10× with full jitter.
    public var backoff: Duration
    /// A retry goes to another endpoint than the failed attempts' when there is one (Istio's
    /// `retryIgnorePreviousHosts`, true by default: Envoy's `previous_hosts` predicate).
    public var avoidPreviousHosts = true
    /// `retryOn` was written: its conditions apply to every method. Under Istio's default
    /// conditions a request that is not idempotent is retried only when it never reached an upstream.
    public var explicitRetryOn = false

    public init(
        attempts: Int, perTryTimeout: Duration? = nil, conditions: Conditions, retriableStatusCodes: Set<Int> = [],
        backoff: Duration = .milliseconds(25)
    ) {
        self.attempts = attempts
        self.perTryTimeout = perTryTimeout
        self.conditions = conditions
        self.retriableStatusCodes = retriableStatusCodes
        self.backoff = backoff
    }

    /// Istio's policy for a route without `retries`: 2 retries on connect failure, refused stream,
    /// gRPC unavailable/cancelled, and 503 (`retry.go` `DefaultPolicy()`).
    public static let `default` = HTTPRetryPolicy(
        attempts: 2, conditions: [.connectFailure, .refusedStream, .unavailable, .cancelled, .retriableStatusCodes],
        retriableStatusCodes: [503]
    )

    /// `attempts: 0`.
    public static let disabled = HTTPRetryPolicy(attempts: 0, conditions: [])
}

/// Istio's `mirror` / `mirrors[]`: a copy of each of `percentage` of the requests goes to
/// `destination`, with `-shadow` appended to its host; its response is dropped.
public struct HTTPMirror: Sendable, Hashable {
    public var destination: Destination
    public var percentage: Double

    public init(destination: Destination, percentage: Double = 100) {
        self.destination = destination
        self.percentage = percentage
    }
}

/// Istio's `CorsPolicy`: the gateway answers matching preflights itself and adds the
/// `access-control-*` headers to responses for an allowed origin (Envoy's CORS filter).
public struct CORSPolicy: Sendable, Hashable {
    /// What a preflight from an origin the policy does not allow gets.
    public enum UnmatchedPreflights: Sendable, Hashable {
        /// Sent on to the upstream, as any request (Istio's default).
        case forward
        /// Answered 200 here, without CORS headers.
        case ignore
    }

    public var allowOrigins: [StringMatch]
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    public var maxAge: Duration?
    public var allowCredentials: Bool
    public var unmatchedPreflights: UnmatchedPreflights

    public init(
        allowOrigins: [StringMatch], allowMethods: [String] = [], allowHeaders: [String] = [], exposeHeaders: [String] = [],
        maxAge: Duration? = nil, allowCredentials: Bool = false, unmatchedPreflights: UnmatchedPreflights = .forward
    ) {
        self.allowOrigins = allowOrigins
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders
        self.exposeHeaders = exposeHeaders
        self.maxAge = maxAge
        self.allowCredentials = allowCredentials
        self.unmatchedPreflights = unmatchedPreflights
    }
}
