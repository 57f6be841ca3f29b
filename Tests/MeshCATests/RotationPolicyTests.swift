import Foundation
import Testing

@testable import MeshCA

@Suite struct RotationPolicyTests {
    private let start = Date(timeIntervalSince1970: 1_750_000_000)

    @Test func istioRenewsAtHalfTheLifetime() {
        let end = self.start.addingTimeInterval(24 * 3600)
        let renewal = RotationPolicy.istio.renewalTime(notBefore: self.start, notAfter: end)
        #expect(renewal == self.start.addingTimeInterval(12 * 3600))
        #expect(!RotationPolicy.istio.needsRenewal(notBefore: self.start, notAfter: end, now: renewal.addingTimeInterval(-1)))
        #expect(RotationPolicy.istio.needsRenewal(notBefore: self.start, notAfter: end, now: renewal))
    }

    @Test func ratioIsTheShareOfLifetimeLeftAndIsClamped() {
        let end = self.start.addingTimeInterval(1000)
        #expect(RotationPolicy(gracePeriodRatio: 0.2).renewalTime(notBefore: self.start, notAfter: end) == self.start.addingTimeInterval(800))
        #expect(RotationPolicy(gracePeriodRatio: 7).gracePeriodRatio == 1)
        #expect(RotationPolicy(gracePeriodRatio: -1).renewalTime(notBefore: self.start, notAfter: end) == end)
        #expect(RotationPolicy(gracePeriodRatio: .nan).gracePeriodRatio == 0.5)
        // An inverted validity has no lifetime: renew at once (at its end, which is already past).
        #expect(RotationPolicy.istio.renewalTime(notBefore: end, notAfter: self.start) == self.start)
    }
}
