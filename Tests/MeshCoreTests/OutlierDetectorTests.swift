import MeshConfig
import Testing

@testable import MeshCore

/// Consecutive-errors outlier detection with the clock passed in (nanoseconds).
@Suite struct OutlierDetectorTests {
    static let second: Int64 = 1_000_000_000

    func policy(_ change: (inout OutlierDetectionPolicy) -> Void) -> OutlierDetectionPolicy {
        var policy = OutlierDetectionPolicy()
        change(&policy)
        return policy
    }

    @Test func consecutive5xxEjectForBaseTimeTimesEjectionsThenReturn() {
        let walkthrough = policy {
            $0.consecutive5xxErrors = 1
            $0.interval = .seconds(1)
            $0.baseEjectionTime = .seconds(180)
            $0.maxEjectionPercent = 100
        }
        var detector = OutlierDetector(policy: walkthrough, endpoints: 3, now: 0)
        #expect(detector.record(.response(status: 200), endpoint: 1, now: 0) == nil)
        #expect(detector.record(.response(status: 503), endpoint: 1, now: 1) == .ejected(endpoint: 1, until: 1 + 180 * Self.second, reason: "1 consecutive 5xx"))
        #expect(detector.excluded(now: 2) == [1])
        #expect(detector.isEjected(1, now: 180 * Self.second))
        #expect(!detector.isEjected(1, now: 180 * Self.second + 1))
        #expect(detector.excluded(now: 181 * Self.second) == [])
        // Ejected again soon after: twice as long (the multiplier decays one per healthy interval).
        let again = detector.record(.localFailure, endpoint: 1, now: 181 * Self.second)
        #expect(again == .ejected(endpoint: 1, until: 181 * Self.second + 300 * Self.second, reason: "1 consecutive 5xx"), "capped at 300s")
    }

    @Test func successesResetTheCountAndFourHundredsAreNotErrors() {
        var detector = OutlierDetector(policy: policy { $0.maxEjectionPercent = 100 }, endpoints: 2, now: 0)
        for _ in 0..<4 { #expect(detector.record(.response(status: 500), endpoint: 0, now: 0) == nil) }
        #expect(detector.record(.response(status: 404), endpoint: 0, now: 0) == nil)
        for _ in 0..<4 { #expect(detector.record(.response(status: 502), endpoint: 0, now: 0) == nil) }
        #expect(detector.record(.response(status: 500), endpoint: 0, now: 0) != nil, "the default: 5 in a row")
    }

    @Test func gatewayErrorsAndSplitLocalOriginFailures() {
        var gateway = OutlierDetector(policy: policy {
            $0.consecutive5xxErrors = 0
            $0.consecutiveGatewayErrors = 2
            $0.maxEjectionPercent = 100
        }, endpoints: 2, now: 0)
        #expect(gateway.record(.response(status: 503), endpoint: 0, now: 0) == nil)
        #expect(gateway.record(.response(status: 500), endpoint: 0, now: 0) == nil, "a 500 breaks the run of gateway errors")
        #expect(gateway.record(.localFailure, endpoint: 0, now: 0) == nil)
        #expect(gateway.record(.response(status: 504), endpoint: 0, now: 0)?.reasonText == "2 consecutive gateway errors")

        var split = OutlierDetector(policy: policy {
            $0.splitExternalLocalOriginErrors = true
            $0.consecutiveLocalOriginFailures = 2
            $0.consecutive5xxErrors = 3
            $0.maxEjectionPercent = 100
        }, endpoint: 0)
        #expect(split.record(.localFailure, endpoint: 0, now: 0) == nil)
        #expect(split.record(.response(status: 500), endpoint: 0, now: 0) == nil, "a response ends the local run")
        #expect(split.record(.localFailure, endpoint: 0, now: 0) == nil)
        #expect(split.record(.connected, endpoint: 0, now: 0) == nil)
        #expect(split.record(.localFailure, endpoint: 0, now: 0) == nil)
        #expect(split.record(.localFailure, endpoint: 0, now: 0)?.reasonText == "2 consecutive local-origin failures")
        // Local failures never count as 5xx when split: two 500s more make 3 with the first.
        #expect(split.record(.response(status: 500), endpoint: 1, now: 0) == nil)
        #expect(split.record(.localFailure, endpoint: 1, now: 0) == nil)
        #expect(split.record(.response(status: 500), endpoint: 1, now: 0) == nil)
        #expect(split.record(.response(status: 500), endpoint: 1, now: 0)?.reasonText == "3 consecutive 5xx")
    }

    @Test func maxEjectionPercentAndPanicBelowMinHealth() {
        // Istio's default 10%: with 3 endpoints not even one may go.
        var cautious = OutlierDetector(policy: policy { $0.consecutive5xxErrors = 1 }, endpoints: 3, now: 0)
        #expect(cautious.record(.response(status: 503), endpoint: 0, now: 0) == nil)
        var half = OutlierDetector(policy: policy {
            $0.consecutive5xxErrors = 1
            $0.maxEjectionPercent = 50
            $0.minHealthPercent = 60
        }, endpoints: 4, now: 0)
        #expect(half.record(.response(status: 503), endpoint: 0, now: 0) != nil)
        #expect(half.excluded(now: 1) == [0])
        #expect(half.record(.response(status: 503), endpoint: 1, now: 0) != nil)
        #expect(half.record(.response(status: 503), endpoint: 2, now: 0) == nil, "a third would pass 50%")
        // Two of four ejected: 50% healthy < 60%: panic, every endpoint is used.
        #expect(half.excluded(now: 1) == [])
        var all = OutlierDetector(policy: policy {
            $0.consecutive5xxErrors = 1
            $0.maxEjectionPercent = 100
        }, endpoints: 1, now: 0)
        #expect(all.record(.response(status: 503), endpoint: 0, now: 0) != nil)
        #expect(all.excluded(now: 1) == [0], "with minHealthPercent 0 a cluster can be left with none")
    }

    @Test func aFlappingEndpointKeepsAFixedAmountOfState() {
        var detector = OutlierDetector(policy: policy {
            $0.consecutive5xxErrors = 1
            $0.baseEjectionTime = .milliseconds(50)
            $0.interval = .milliseconds(100)
            $0.maxEjectionPercent = 100
        }, endpoints: 2, now: 0)
        var ejections = 0
        for step in 0..<10_000 {
            let now = Int64(step) * 100_000_000
            if detector.record(.response(status: step % 2 == 0 ? 503 : 200), endpoint: 0, now: now) != nil { ejections += 1 }
        }
        #expect(ejections == 5_000)
        #expect(detector.endpoints.count == 2)
        #expect(detector.endpoints[0].ejections <= 2, "the multiplier decays between ejections")
    }
}

extension OutlierDetector {
    init(policy: OutlierDetectionPolicy, endpoint: Int) {
        self.init(policy: policy, endpoints: 2, now: 0)
    }
}

extension OutlierDetector.Event {
    var reasonText: String {
        switch self {
        case .ejected(_, _, let reason): return reason
        }
    }
}
