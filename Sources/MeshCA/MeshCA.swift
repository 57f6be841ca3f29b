import Crypto
import Foundation
import SwiftASN1
import X509

/// The mesh certificate authority: a self-signed ECDSA P-256 root whose subject is `O=<trust domain>`
/// (as Istio's self-signed root is), kept in a directory as `root-cert.pem` and `root-key.pem`, that
/// issues SPIFFE workload certificates (X.509-SVIDs).
///
/// Nothing here reads the clock: every operation that needs the time takes `now`.
public struct MeshCA: Sendable {
    /// The root certificate's file in the CA directory (also copied beside every workload certificate).
    public static let rootCertificateFile = "root-cert.pem"
    /// The root key's file in the CA directory; mode 0600, refused when group or others can read it.
    public static let rootKeyFile = "root-key.pem"
    /// The self-signed root's lifetime: 10 years (Istio's `CITADEL_SELF_SIGNED_CA_CERT_TTL`).
    public static let rootValidity: TimeInterval = 10 * 365 * 24 * 3600
    /// A workload certificate's lifetime unless asked otherwise: 24h (Istio's `SECRET_TTL` and
    /// `DEFAULT_WORKLOAD_CERT_TTL`).
    public static let defaultWorkloadTTL: TimeInterval = 24 * 3600
    /// The longest workload certificate issued: 90 days (Istio's `MAX_WORKLOAD_CERT_TTL`).
    public static let maximumWorkloadTTL: TimeInterval = 90 * 24 * 3600
    /// Every certificate starts this long before `now`, so a peer whose clock is a little behind
    /// accepts it at once.
    public static let clockSkewAllowance: TimeInterval = 60

    /// The trust domain every identity this CA issues belongs to (the root's `O=`).
    public let trustDomain: String
    public let rootCertificate: Certificate
    private let rootKey: Certificate.PrivateKey

    private init(trustDomain: String, rootCertificate: Certificate, rootKey: Certificate.PrivateKey) {
        self.trustDomain = trustDomain
        self.rootCertificate = rootCertificate
        self.rootKey = rootKey
    }

    // MARK: - Root

    /// A new root in memory: a fresh P-256 key, self-signed, CA:true (critical), keyCertSign and
    /// cRLSign (critical), valid from a minute before `now` for ``rootValidity``.
    public static func create(trustDomain: String = SPIFFEID.defaultTrustDomain, now: Date) throws(MeshCAError) -> MeshCA {
        if let problem = SPIFFEID.trustDomainProblem(trustDomain) {
            throw MeshCAError(.invalidIdentity, "trust domain '\(trustDomain)': \(problem)")
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let notBefore = now.addingTimeInterval(-Self.clockSkewAllowance)
        do {
            let name = try DistinguishedName { OrganizationName(trustDomain) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: notBefore,
                notValidAfter: notBefore.addingTimeInterval(Self.rootValidity),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: key
            )
            return MeshCA(trustDomain: trustDomain, rootCertificate: certificate, rootKey: key)
        } catch {
            throw MeshCAError(.io, "cannot create the root certificate: \(error)")
        }
    }

    /// `meshgate ca init`: creates a root and stores it in `directory` (made 0700), refusing to
    /// replace a root that is already there.
    public static func initialize(
        directory: String, trustDomain: String = SPIFFEID.defaultTrustDomain, now: Date
    ) throws(MeshCAError) -> MeshCA {
        for name in [Self.rootCertificateFile, Self.rootKeyFile] {
            let path = PrivateFiles.join(directory, name)
            if FileManager.default.fileExists(atPath: path) {
                throw MeshCAError(.alreadyExists, "\(path) already exists; remove the CA directory first to start a new root")
            }
        }
        let ca = try Self.create(trustDomain: trustDomain, now: now)
        try ca.write(to: directory)
        return ca
    }

    /// Stores the root as `root-cert.pem` and `root-key.pem` (0600) in `directory` (0700).
    public func write(to directory: String) throws(MeshCAError) {
        try PrivateFiles.makeDirectory(directory, restrict: true)
        let (certificate, key) = try PEMFiles.text { (try PEMFiles.text(self.rootCertificate), try PEMFiles.text(self.rootKey)) }
        try PrivateFiles.write(key, to: PrivateFiles.join(directory, Self.rootKeyFile), mode: 0o600)
        try PrivateFiles.write(certificate, to: PrivateFiles.join(directory, Self.rootCertificateFile), mode: 0o644)
    }

    /// Reads a root written by ``write(to:)``. Refuses a key file that group or others can read
    /// (naming the file and its mode), a key that does not belong to the certificate, and a
    /// certificate that is not a CA or carries no `O=<trust domain>`.
    public static func load(directory: String) throws(MeshCAError) -> MeshCA {
        let certificatePath = PrivateFiles.join(directory, Self.rootCertificateFile)
        let keyPath = PrivateFiles.join(directory, Self.rootKeyFile)
        try PrivateFiles.requireOwnerOnly(keyPath, what: "CA root key")
        let certificate = try PEMFiles.certificates(at: certificatePath, what: "CA root certificate")[0]
        let key = try PEMFiles.privateKey(at: keyPath, what: "CA root key")
        guard key.publicKey == certificate.publicKey else {
            throw MeshCAError(.malformedFile, "\(keyPath) is not the key of \(certificatePath)")
        }
        guard case .isCertificateAuthority = try? certificate.extensions.basicConstraints else {
            throw MeshCAError(.malformedFile, "\(certificatePath) is not a CA certificate (basicConstraints CA:true missing)")
        }
        let organization = certificate.subject.lazy.flatMap { $0 }
            .first { $0.type == .RDNAttributeType.organizationName }
            .flatMap { String($0.value) }
        guard let trustDomain = organization, SPIFFEID.trustDomainProblem(trustDomain) == nil else {
            throw MeshCAError(.malformedFile, "\(certificatePath): the subject has no O=<trust domain> (got '\(certificate.subject)')")
        }
        return MeshCA(trustDomain: trustDomain, rootCertificate: certificate, rootKey: key)
    }

    // MARK: - Workload certificates

    /// Issues the certificate of `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`.
    public func issue(
        namespace: String, serviceAccount: String, ttl: TimeInterval = Self.defaultWorkloadTTL, now: Date
    ) throws(MeshCAError) -> WorkloadCertificate {
        let identity = try SPIFFEID(trustDomain: self.trustDomain, namespace: namespace, serviceAccount: serviceAccount)
        return try self.issue(for: identity, ttl: ttl, now: now)
    }

    /// Issues an X.509-SVID for `identity`: a fresh P-256 key; an empty subject and exactly one URI SAN
    /// (critical, as RFC 5280 asks when the subject is empty, and as Istio's are); CA:false (critical);
    /// digitalSignature (critical); serverAuth and clientAuth. Valid from a minute before `now` for `ttl`.
    public func issue(for identity: SPIFFEID, ttl: TimeInterval = Self.defaultWorkloadTTL, now: Date) throws(MeshCAError)
        -> WorkloadCertificate
    {
        guard identity.trustDomain == self.trustDomain else {
            throw MeshCAError(
                .invalidIdentity,
                "trust domain '\(identity.trustDomain)' of \(identity) is not this CA's ('\(self.trustDomain)')")
        }
        guard ttl > 0, ttl <= Self.maximumWorkloadTTL else {
            throw MeshCAError(.invalidTTL, "ttl \(Int(ttl))s: must be longer than 0 and at most 90 days (2160h)")
        }
        let notBefore = now.addingTimeInterval(-Self.clockSkewAllowance)
        let notAfter = notBefore.addingTimeInterval(ttl)
        guard notAfter <= self.rootCertificate.notValidAfter else {
            throw MeshCAError(.invalidTTL, "ttl \(Int(ttl))s: the certificate would outlive the root (expires \(self.rootCertificate.notValidAfter))")
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        do {
            let rootKeyID = try self.rootCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)]))
                if let rootKeyID { AuthorityKeyIdentifier(keyIdentifier: rootKeyID) }
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: self.rootCertificate.subject,
                subject: DistinguishedName(),
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: self.rootKey
            )
            return WorkloadCertificate(identity: identity, certificate: certificate, privateKey: key, rootCertificate: self.rootCertificate)
        } catch {
            throw MeshCAError(.io, "cannot issue the certificate of \(identity): \(error)")
        }
    }

    // MARK: - TTL text

    /// Reads a certificate lifetime as the command line writes it: Go-style whole hours, minutes and
    /// seconds (`24h`, `90m`, `3600s`, `1h30m`). Nil for anything else.
    public static func parseTTL(_ text: String) -> TimeInterval? {
        var total: TimeInterval = 0
        var digits = ""
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            let unit: TimeInterval
            switch character {
            case "h": unit = 3600
            case "m": unit = 60
            case "s": unit = 1
            default: return nil
            }
            guard let value = Int(digits), value <= 1_000_000_000 else { return nil }
            total += TimeInterval(value) * unit
            digits = ""
        }
        return digits.isEmpty && !text.isEmpty ? total : nil
    }
}
