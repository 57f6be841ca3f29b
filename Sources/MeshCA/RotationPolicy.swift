import Foundation

/// When a workload certificate is renewed: once less than ``gracePeriodRatio`` of its lifetime is
/// left. Istio's `SECRET_GRACE_PERIOD_RATIO` is 0.5, so a 24h certificate is renewed 12h after its
/// start and keeps serving, still valid, until the new one is in place.
///
/// Pure: the caller passes the certificate's validity and, for ``needsRenewal(notBefore:notAfter:now:)``,
/// the time.
public struct RotationPolicy: Sendable, Hashable {
    /// Istio's default: renew at half the lifetime.
    public static let istio = RotationPolicy(gracePeriodRatio: 0.5)

    /// The share of the lifetime left when renewal starts, within 0...1.
    public let gracePeriodRatio: Double

    /// `gracePeriodRatio` is clamped to 0...1 (0 renews at expiry, 1 as soon as issued).
    public init(gracePeriodRatio: Double = 0.5) {
        self.gracePeriodRatio = gracePeriodRatio.isNaN ? 0.5 : min(max(gracePeriodRatio, 0), 1)
    }

    /// The moment to renew a certificate valid from `notBefore` to `notAfter`.
    public func renewalTime(notBefore: Date, notAfter: Date) -> Date {
        let lifetime = max(0, notAfter.timeIntervalSince(notBefore))
        return notAfter.addingTimeInterval(-lifetime * self.gracePeriodRatio)
    }

    public func needsRenewal(notBefore: Date, notAfter: Date, now: Date) -> Bool {
        now >= self.renewalTime(notBefore: notBefore, notAfter: notAfter)
    }
}
