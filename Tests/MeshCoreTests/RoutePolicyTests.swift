import MeshConfig
import NIOCore
import NIOHTTP1
import Testing

@testable import MeshCore

/// The pure decisions behind `retries` and `fault`: no sockets, rolls passed in.
@Suite struct RoutePolicyTests {
    @Test func istiosDefaultPolicyRetriesConnectFailuresAnd503TwiceThenFlagsURX() {
        var state = RetryState(policy: .default)
        #expect(state.next(after: .connectFailure, replayable: true, roll: 0) == .retry(after: .zero))
        #expect(state.next(after: .response(status: 503, grpcStatus: nil), replayable: true, roll: 1) == .retry(after: .milliseconds(75)))
        #expect(state.next(after: .response(status: 503, grpcStatus: nil), replayable: true, roll: 0.5) == .exhausted)
        #expect(state.retries == 2)
        // Not covered by the default: a 500, a 502, a reset after the head was sent, a per-try timeout.
        let fresh = RetryState(policy: .default)
        for outcome in [RetryState.Outcome.response(status: 500, grpcStatus: nil), .response(status: 502, grpcStatus: nil), .reset, .perTryTimeout] {
            #expect(!fresh.shouldRetry(outcome), "\(outcome)")
        }
        #expect(fresh.shouldRetry(.refusedStream))
        // gRPC: unavailable (14) and cancelled (1) in a trailers-only head; not internal (13).
        #expect(fresh.shouldRetry(.response(status: 200, grpcStatus: 14)))
        #expect(fresh.shouldRetry(.response(status: 200, grpcStatus: 1)))
        #expect(!fresh.shouldRetry(.response(status: 200, grpcStatus: 13)))
        #expect(!fresh.shouldRetry(.response(status: 200, grpcStatus: nil)))
    }

    @Test func aRequestThatCannotBeReplayedIsNotRetried() {
        var state = RetryState(policy: .default)
        #expect(state.next(after: .connectFailure, replayable: false, roll: 0) == .exhausted)
        #expect(state.retries == 0)
        var none = RetryState(policy: .disabled)
        #expect(none.next(after: .connectFailure, replayable: true, roll: 0) == .done)
        #expect(state.next(after: .response(status: 200, grpcStatus: nil), replayable: true, roll: 0) == .done)
    }

    @Test func aPostThatReachedAnUpstreamIsRetriedOnlyUnderAnExplicitRetryOn() {
        var post = RetryState(policy: .default, idempotent: false)
        #expect(post.next(after: .response(status: 503, grpcStatus: nil), replayable: true, roll: 0) == .done)
        #expect(post.next(after: .reset, replayable: true, roll: 0) == .done)
        // Nothing of it reached an upstream: retried.
        #expect(post.next(after: .connectFailure, replayable: true, roll: 0) == .retry(after: .zero))
        #expect(post.next(after: .refusedStream, replayable: true, roll: 0) == .retry(after: .zero))
        var explicit = HTTPRetryPolicy.default
        explicit.explicitRetryOn = true
        var named = RetryState(policy: explicit, idempotent: false)
        #expect(named.next(after: .response(status: 503, grpcStatus: nil), replayable: true, roll: 0) == .retry(after: .zero))
        #expect(HTTPProxyHandler.isIdempotent(.PUT) && !HTTPProxyHandler.isIdempotent(.POST) && !HTTPProxyHandler.isIdempotent(.PATCH))
    }

    @Test func retryOnConditionsAsEnvoyReadsThem() {
        func policy(_ conditions: HTTPRetryPolicy.Conditions, codes: Set<Int> = []) -> RetryState {
            RetryState(policy: HTTPRetryPolicy(attempts: 1, conditions: conditions, retriableStatusCodes: codes))
        }
        let fiveXX = policy([.fiveXX])
        for outcome in [RetryState.Outcome.response(status: 500, grpcStatus: nil), .response(status: 599, grpcStatus: nil), .reset, .connectFailure, .perTryTimeout, .refusedStream] {
            #expect(fiveXX.shouldRetry(outcome), "\(outcome)")
        }
        #expect(!fiveXX.shouldRetry(.response(status: 429, grpcStatus: nil)))
        let gateway = policy([.gatewayError])
        #expect(gateway.shouldRetry(.response(status: 502, grpcStatus: nil)) && gateway.shouldRetry(.response(status: 504, grpcStatus: nil)))
        #expect(!gateway.shouldRetry(.response(status: 500, grpcStatus: nil)))
        let connect = policy([.connectFailure])
        #expect(connect.shouldRetry(.connectFailure) && !connect.shouldRetry(.reset))
        #expect(policy([.retriable4xx]).shouldRetry(.response(status: 409, grpcStatus: nil)))
        #expect(!policy([.retriable4xx]).shouldRetry(.response(status: 404, grpcStatus: nil)))
        let codes = policy([.retriableStatusCodes], codes: [429])
        #expect(codes.shouldRetry(.response(status: 429, grpcStatus: nil)) && !codes.shouldRetry(.response(status: 503, grpcStatus: nil)))
        #expect(policy([.deadlineExceeded]).shouldRetry(.response(status: 200, grpcStatus: 4)))
        #expect(policy([.resourceExhausted]).shouldRetry(.response(status: 200, grpcStatus: 8)))
        #expect(policy([.internal]).shouldRetry(.response(status: 200, grpcStatus: 13)))
    }

    @Test func backoffIsJitteredExponentialCappedAtTenTimesTheBase() {
        var state = RetryState(policy: HTTPRetryPolicy(attempts: 10, conditions: [.reset], backoff: .milliseconds(10)))
        var ceilings: [TimeAmount] = []
        for _ in 0..<6 {
            guard case .retry(let wait) = state.next(after: .reset, replayable: true, roll: 1) else { break }
            ceilings.append(wait)
        }
        // 10 × (2^n − 1): 10, 30, 70, then capped at 100.
        #expect(ceilings == [10, 30, 70, 100, 100, 100].map { TimeAmount.milliseconds($0) })
        #expect(state.backoff(roll: 0) == .zero)
        #expect(state.backoff(roll: 0.5) == .milliseconds(50))
    }

    @Test func faultsApplyBelowTheirPercentageIndependently() {
        let fault = HTTPFaultInjection(
            delay: .init(fixedDelay: .milliseconds(300), percentage: 50), abort: .init(status: .http(555), percentage: 10)
        )
        let both = FaultDecision(fault, delayRoll: 49.99, abortRoll: 9.99)
        #expect(both.delay == .milliseconds(300))
        #expect(both.abort?.status.code == 555 && both.abort?.flags == "FI" && both.abort?.details == "fault_filter_abort")
        let neither = FaultDecision(fault, delayRoll: 50, abortRoll: 10)
        #expect(neither.isEmpty)
        let zero = HTTPFaultInjection(delay: .init(fixedDelay: .seconds(1), percentage: 0))
        #expect(FaultDecision(zero, delayRoll: 0, abortRoll: 0).isEmpty)
        let always = HTTPFaultInjection(abort: .init(status: .http(500), percentage: 100))
        #expect(FaultDecision(always, delayRoll: 99.999, abortRoll: 99.999).abort != nil)
    }

    @Test func aGRPCAbortIsATrailersOnlyResponse() {
        let reply = LocalReply.faultAbort(.grpc(code: 14, name: "UNAVAILABLE"))
        let head = reply.head(version: .http1_1, close: false)
        #expect(head.status == .ok)
        #expect(head.headers.first(name: "content-type") == "application/grpc")
        #expect(head.headers.first(name: "grpc-status") == "14")
        #expect(head.headers.first(name: "grpc-message") == "fault filter abort")
        #expect(head.headers.first(name: "content-length") == "0")
    }

    @Test func routesWithoutRetriesGetIstiosDefaultAndFaultsAreCompiled() throws {
        let fault = HTTPFaultInjection(abort: .init(status: .http(503), percentage: 100))
        let snapshot = try SnapshotCompiler.compileGateway(
            Fixtures.configuration(http: [
                HTTPRoute(match: [], route: [Fixtures.to("reviews")], fault: fault, retries: .disabled),
                HTTPRoute(match: [], route: [Fixtures.to("reviews")]),
            ]),
            generation: 1
        )
        let listener = try #require(snapshot.listeners[8080])
        let routes = try #require(listener.http.catchAll)
        #expect(routes[0].fault == fault && routes[0].retries == .disabled)
        #expect(routes[1].fault == nil && routes[1].retries == .default)
    }

    @Test func aMirroredCopysHostGetsTheShadowSuffixBeforeItsPort() {
        #expect(RequestMirror.shadowHost("httpbin:8000") == "httpbin-shadow:8000")
        #expect(RequestMirror.shadowHost("httpbin.default.svc.cluster.local") == "httpbin.default.svc.cluster.local-shadow")
        #expect(RequestMirror.shadowHost("[::1]:80") == "[::1]-shadow:80")
    }

    @Test func corsAnswersAllowedPreflightsAndDecoratesAllowedResponses() throws {
        let cors = try CompiledCORS(CORSPolicy(
            allowOrigins: [.exact("https://app.example"), .regex("https://.*\\.shop\\.example")], allowMethods: ["GET", "POST"],
            allowHeaders: ["x-token"], exposeHeaders: ["x-trace"], maxAge: .seconds(86400), allowCredentials: true
        ))
        guard case .answerPreflight(let preflight) = cors.decide(method: .OPTIONS, origin: "https://app.example", requestMethod: "POST") else {
            Issue.record("an allowed preflight is answered")
            return
        }
        #expect(preflight.first(name: "access-control-allow-origin") == "https://app.example")
        #expect(preflight.first(name: "access-control-allow-methods") == "GET,POST")
        #expect(preflight.first(name: "access-control-allow-headers") == "x-token")
        #expect(preflight.first(name: "access-control-max-age") == "86400")
        #expect(preflight.first(name: "access-control-allow-credentials") == "true")
        #expect(!preflight.contains(name: "access-control-expose-headers"))
        guard case .addToResponse(let origin) = cors.decide(method: .GET, origin: "https://a.shop.example", requestMethod: nil) else {
            Issue.record("an allowed simple request gets response headers")
            return
        }
        var simple = HTTPHeaders([("access-control-allow-origin", "*")])
        cors.responseHeaders(origin: origin, to: &simple)
        #expect(simple[canonicalForm: "access-control-allow-origin"] == ["https://a.shop.example"])
        #expect(simple.first(name: "access-control-expose-headers") == "x-trace")
        #expect(!simple.contains(name: "access-control-allow-methods"))
        // Another origin, no origin, or an OPTIONS that is no preflight: nothing (the preflight is forwarded).
        #expect(cors.decide(method: .OPTIONS, origin: "https://evil.example", requestMethod: "POST") == .none)
        #expect(cors.decide(method: .GET, origin: nil, requestMethod: nil) == .none)
        #expect(cors.decide(method: .OPTIONS, origin: "https://app.example", requestMethod: nil) != .none)
        let ignoring = try CompiledCORS(CORSPolicy(allowOrigins: [.exact("https://app.example")], unmatchedPreflights: .ignore))
        #expect(ignoring.decide(method: .OPTIONS, origin: "https://evil.example", requestMethod: "GET") == .answerPreflight(HTTPHeaders()))
        let any = try CompiledCORS(CORSPolicy(allowOrigins: [.exact("*")]))
        #expect(any.decide(method: .GET, origin: "https://x.example", requestMethod: nil) != .none)
    }

    @Test func retriesAvoidTheEndpointsAlreadyTried() throws {
        let snapshot = try SnapshotCompiler.compileGateway(
            Fixtures.configuration(http: [HTTPRoute(match: [], route: [Fixtures.to("reviews")])]), generation: 1
        )
        let cluster = try #require(snapshot.clusters["outbound|9080||reviews.default.svc.cluster.local"])
        #expect(cluster.endpoints.count == 3)
        for _ in 0..<10 {
            let index = try #require(cluster.chooseEndpoint(avoiding: [0, 2]))
            #expect(index == 1)
        }
        #expect(cluster.chooseEndpoint(avoiding: [0, 1, 2]) != nil)
    }
}

extension RoutePolicyTests {
    @Test func anUnprocessedRequestIsSentAgainOnceWhateverThePolicy() {
        var none = RetryState(policy: .disabled)
        let first = none.resendUnprocessed()
        let second = none.resendUnprocessed()
        #expect(first && !second)
        #expect(none.retries == 0)
        #expect(none.next(after: .reset, replayable: true, roll: 0) == .done)
    }
}
