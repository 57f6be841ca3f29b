import MeshConfig
import NIOCore

/// The router's attempts at one request under a route's ``HTTPRetryPolicy``, as Envoy's router
/// and retry state decide them. Pure: each attempt's outcome goes in, an action comes out; the
/// backoff's randomness is a roll passed in.
struct RetryState {
    /// How an attempt failed, as far as retrying is concerned.
    enum Outcome: Equatable {
        /// The connection could not be made (refused, timed out, TLS failed): nothing was sent.
        case connectFailure
        /// The upstream reset or closed the connection before a response head.
        case reset
        /// An HTTP/2 upstream refused the stream (REFUSED_STREAM): nothing was processed.
        case refusedStream
        /// No response head within `perTryTimeout`.
        case perTryTimeout
        /// A response head: its status, and `grpc-status` when the head carries one (trailers-only).
        case response(status: Int, grpcStatus: Int?)
    }

    enum Action: Equatable {
        /// Try again after this backoff (on another endpoint when the policy avoids previous hosts).
        case retry(after: TimeAmount)
        /// The outcome stands: a failure is answered as is, a response passed on.
        case done
        /// The outcome would be retried but no retry is left: it stands, flagged `URX`.
        case exhausted
    }

    let policy: HTTPRetryPolicy
    /// The request's method is idempotent (RFC 9110 §9.2.2).
    let idempotent: Bool
    /// Retries made so far.
    private(set) var retries = 0
    /// The request was already sent again once at no cost to the policy (``resendUnprocessed()``).
    private(set) var resentUnprocessed = false

    init(policy: HTTPRetryPolicy, idempotent: Bool = true) {
        self.policy = policy
        self.idempotent = idempotent
    }

    /// What to do after an attempt ended with `outcome`. `replayable`: the request can be sent
    /// again (its body, if any, is still held). `roll` in 0..<1 picks the jittered backoff.
    ///
    /// Better than Istio (whose default retries a POST the upstream may have acted on, issue
    /// #13851): under a policy that does not name its `retryOn`, a request that is not idempotent is
    /// retried only when nothing of it reached an upstream (a failed connect, a refused stream).
    mutating func next(after outcome: Outcome, replayable: Bool, roll: Double) -> Action {
        guard self.shouldRetry(outcome) else { return .done }
        if !self.idempotent && !self.policy.explicitRetryOn && outcome != .connectFailure && outcome != .refusedStream {
            return .done
        }
        guard replayable, self.retries < self.policy.attempts else { return .exhausted }
        self.retries += 1
        return .retry(after: self.backoff(roll: roll))
    }

    /// After the upstream closed a reused connection it had let idle, or refused an HTTP/2 stream,
    /// before any of the request's body reached it: nothing was processed, so the request goes again
    /// at once on a fresh connection, once, whatever the policy (as HTTP clients resend on a stale
    /// keep-alive connection); not counted as a retry. True when it may.
    mutating func resendUnprocessed() -> Bool {
        guard !self.resentUnprocessed else { return false }
        self.resentUnprocessed = true
        return true
    }

    /// Envoy's fully jittered exponential backoff: the nth retry waits a random share of
    /// `base × (2^n − 1)`, at most 10 × base.
    func backoff(roll: Double) -> TimeAmount {
        let base = TimeAmount(self.policy.backoff).nanoseconds
        let ceiling = min(base * ((1 << min(self.retries, 20)) - 1), base * 10)
        return .nanoseconds(Int64(Double(ceiling) * min(max(roll, 0), 1)))
    }

    /// Whether the policy's `retryOn` covers the outcome.
    func shouldRetry(_ outcome: Outcome) -> Bool {
        let on = self.policy.conditions
        switch outcome {
        case .connectFailure:
            return !on.isDisjoint(with: [.connectFailure, .reset, .fiveXX, .gatewayError])
        case .reset, .perTryTimeout:
            return !on.isDisjoint(with: [.reset, .fiveXX, .gatewayError])
        case .refusedStream:
            return !on.isDisjoint(with: [.refusedStream, .reset, .fiveXX])
        case .response(let status, let grpcStatus):
            // The common case first: a success or a 4xx other than 409, no gRPC error.
            if status < 400 && (grpcStatus ?? 0) == 0 { return false }
            if on.contains(.fiveXX) && (500...599).contains(status) { return true }
            if on.contains(.gatewayError) && (502...504).contains(status) { return true }
            if on.contains(.retriable4xx) && status == 409 { return true }
            if on.contains(.retriableStatusCodes) && self.policy.retriableStatusCodes.contains(status) { return true }
            guard let grpcStatus, let condition = Self.grpcConditions[grpcStatus] else { return false }
            return on.contains(condition)
        }
    }

    /// Whether any gRPC condition is on (so a response's `grpc-status` matters).
    var watchesGRPCStatus: Bool {
        !self.policy.conditions.isDisjoint(with: [.cancelled, .deadlineExceeded, .internal, .resourceExhausted, .unavailable])
    }

    /// The gRPC statuses `retryOn` can name.
    private static let grpcConditions: [Int: HTTPRetryPolicy.Conditions] = [
        1: .cancelled, 4: .deadlineExceeded, 8: .resourceExhausted, 13: .internal, 14: .unavailable,
    ]
}
