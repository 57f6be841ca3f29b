import Foundation
import SwiftASN1
import X509

/// A workload's X.509-SVID with its key and the root that signed it, as the CA issues it and as a
/// workload directory holds it: `cert-chain.pem` (leaf, then root), `key.pem` (0600) and `root-cert.pem`.
public struct WorkloadCertificate: Sendable {
    public static let certificateChainFile = "cert-chain.pem"
    public static let keyFile = "key.pem"
    public static let rootCertificateFile = MeshCA.rootCertificateFile

    public let identity: SPIFFEID
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey
    public let rootCertificate: Certificate

    public var notBefore: Date { self.certificate.notValidBefore }
    public var notAfter: Date { self.certificate.notValidAfter }

    init(identity: SPIFFEID, certificate: Certificate, privateKey: Certificate.PrivateKey, rootCertificate: Certificate) {
        self.identity = identity
        self.certificate = certificate
        self.privateKey = privateKey
        self.rootCertificate = rootCertificate
    }

    /// When this certificate should be replaced under `policy`.
    public func renewalTime(policy: RotationPolicy = .istio) -> Date {
        policy.renewalTime(notBefore: self.notBefore, notAfter: self.notAfter)
    }

    /// The leaf then the root, PEM.
    public func certificateChainPEM() throws(MeshCAError) -> String {
        try PEMFiles.text { try PEMFiles.text(self.certificate) + PEMFiles.text(self.rootCertificate) }
    }

    public func privateKeyPEM() throws(MeshCAError) -> String {
        try PEMFiles.text { try PEMFiles.text(self.privateKey) }
    }

    public func rootCertificatePEM() throws(MeshCAError) -> String {
        try PEMFiles.text { try PEMFiles.text(self.rootCertificate) }
    }

    /// Writes the three files into `directory` (created 0700 if missing). Each file is replaced
    /// atomically, the key first, so a reader never sees half a file; the chain is written last,
    /// so a watcher of `cert-chain.pem` finds the matching key already there.
    public func write(to directory: String) throws(MeshCAError) {
        try PrivateFiles.makeDirectory(directory, restrict: false)
        try PrivateFiles.write(try self.privateKeyPEM(), to: PrivateFiles.join(directory, Self.keyFile), mode: 0o600)
        try PrivateFiles.write(try self.rootCertificatePEM(), to: PrivateFiles.join(directory, Self.rootCertificateFile), mode: 0o644)
        try PrivateFiles.write(try self.certificateChainPEM(), to: PrivateFiles.join(directory, Self.certificateChainFile), mode: 0o644)
    }

    /// Reads a directory written by ``write(to:)``: refuses a key that group or others can read, a
    /// key that is not the leaf's, and a leaf without exactly one SPIFFE URI SAN. The root is the
    /// chain's last certificate when the chain has more than one, else `root-cert.pem`.
    public static func load(directory: String) throws(MeshCAError) -> WorkloadCertificate {
        let chainPath = PrivateFiles.join(directory, Self.certificateChainFile)
        let keyPath = PrivateFiles.join(directory, Self.keyFile)
        try PrivateFiles.requireOwnerOnly(keyPath, what: "workload key")
        let chain = try PEMFiles.certificates(at: chainPath, what: "workload certificate chain")
        let key = try PEMFiles.privateKey(at: keyPath, what: "workload key")
        guard key.publicKey == chain[0].publicKey else {
            throw MeshCAError(.malformedFile, "\(keyPath) is not the key of the first certificate in \(chainPath)")
        }
        let identity: SPIFFEID
        do {
            identity = try SPIFFEID(certificate: chain[0])
        } catch {
            throw MeshCAError(error.code, "\(chainPath): \(error.message)")
        }
        let root =
            chain.count > 1
            ? chain[chain.count - 1]
            : try PEMFiles.certificates(at: PrivateFiles.join(directory, Self.rootCertificateFile), what: "root certificate")[0]
        return WorkloadCertificate(identity: identity, certificate: chain[0], privateKey: key, rootCertificate: root)
    }
}

extension SPIFFEID {
    /// The identity of an X.509-SVID: its one URI SAN, which must be a SPIFFE ID of Istio's shape.
    /// A certificate with no URI SAN, several, or one of another shape is refused.
    public init(certificate: Certificate) throws(MeshCAError) {
        let names: SubjectAlternativeNames?
        do {
            names = try certificate.extensions.subjectAlternativeNames
        } catch {
            throw MeshCAError(.malformedFile, "the subjectAltName extension cannot be read: \(error)")
        }
        let uris = (names ?? SubjectAlternativeNames()).compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1 else {
            throw MeshCAError(.invalidIdentity, "an X.509-SVID has exactly one URI SAN; this certificate has \(uris.count)")
        }
        guard let identity = SPIFFEID(uri: uris[0]) else {
            throw MeshCAError(.invalidIdentity, "URI SAN '\(uris[0])' is not spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT")
        }
        self = identity
    }
}
