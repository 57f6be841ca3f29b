import Foundation
import MeshCA
import MeshConfig
import MeshCore

/// Where this instance's mesh certificate comes from (meshgate.yaml `caDir` or `certDir`), and
/// when it must be renewed.
struct IdentitySource: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// Issue in process from the CA in this directory, for `ttl`; renew at half the lifetime.
        case issue(caDir: String, namespace: String, serviceAccount: String, ttl: TimeInterval)
        /// Read what `meshgate ca issue` wrote; re-read on reload.
        case files(certDir: String)
    }

    let kind: Kind
    let trustDomain: String

    /// nil when the settings name neither directory.
    init?(_ settings: MeshSettings) {
        self.trustDomain = settings.trustDomain
        if let caDir = settings.caDir {
            let seconds = Double(settings.certTTL.components.seconds)
            self.kind = .issue(caDir: caDir, namespace: settings.namespace, serviceAccount: settings.serviceAccount, ttl: seconds)
        } else if let certDir = settings.certDir {
            self.kind = .files(certDir: certDir)
        } else {
            return nil
        }
    }

    struct Loaded: Sendable {
        let material: MeshIdentity.Material
        /// When to issue the next one (nil: never; files are replaced by their owner plus SIGHUP).
        let renewAt: Date?
    }

    /// Issues or reads the certificate and builds its TLS contexts. Every failure names the file
    /// or the identity it is about.
    func load(now: Date = Date()) throws -> Loaded {
        let certificate: WorkloadCertificate
        let origin: String
        var renewAt: Date? = nil
        switch self.kind {
        case .issue(let caDir, let namespace, let serviceAccount, let ttl):
            let ca = try MeshCA.load(directory: caDir)
            guard ca.trustDomain == self.trustDomain else {
                throw MeshIdentity.Failure(description: "the CA in \(caDir) is for trust domain '\(ca.trustDomain)', this instance's is '\(self.trustDomain)'")
            }
            // The CA backdates notBefore for clock skew; the lifetime asked for counts from now, and
            // renewal comes at half of it (Istio's SECRET_GRACE_PERIOD_RATIO).
            certificate = try ca.issue(
                namespace: namespace, serviceAccount: serviceAccount, ttl: ttl + MeshCA.clockSkewAllowance, now: now
            )
            origin = "issued by the CA in \(caDir)"
            renewAt = now.addingTimeInterval(ttl * RotationPolicy.istio.gracePeriodRatio)
        case .files(let certDir):
            certificate = try WorkloadCertificate.load(directory: certDir)
            origin = certDir
            guard certificate.notAfter > now else {
                throw MeshIdentity.Failure(description: "\(certDir)/\(WorkloadCertificate.certificateChainFile) expired at \(certificate.notAfter)")
            }
        }
        let material = try MeshIdentity.material(
            chainPEM: try certificate.certificateChainPEM(), keyPEM: try certificate.privateKeyPEM(),
            rootsPEM: try certificate.rootCertificatePEM(), trustDomain: self.trustDomain, origin: origin
        )
        return Loaded(material: material, renewAt: renewAt)
    }
}
