import Crypto
import NIOConcurrencyHelpers
import NIOSSL
import X509

/// This instance's mesh certificate (its SPIFFE identity) and the TLS contexts made from it.
///
/// The control plane installs new material on start, on reload (`certDir`) and on rotation
/// (`caDir`); each new connection reads the current one, so open connections keep the certificate
/// they were made with and new ones use the new certificate at once.
public final class MeshIdentity: Sendable {
    /// ALPN offered when this proxy originates mTLS carrying HTTP/1.1 (what Istio's sidecars offer).
    static let clientHTTPALPN = ["istio-http/1.1", "istio", "http/1.1"]
    /// ALPN offered when originating mTLS carrying HTTP/2 (Istio's `istio-h2`).
    static let clientHTTP2ALPN = ["istio-h2", "istio", "h2"]
    /// ALPN offered when originating mTLS carrying TCP: Istio's metadata exchange first.
    static let clientTCPALPN = [PeerMetadataExchange.alpn, "istio"]
    /// ALPN accepted inbound, in our order of preference.
    static let serverALPN = ["istio-http/1.1", "istio-http/1.0", "http/1.1", "istio-h2", "h2", PeerMetadataExchange.alpn, "istio"]
    /// The ALPN values that mean HTTP/2 on a mesh connection.
    static let http2ALPN: Set<String> = ["istio-h2", "h2"]

    /// One certificate, its key, the mesh roots, and the contexts built from them.
    public struct Material: Sendable {
        /// `spiffe://TRUST-DOMAIN/ns/NS/sa/SA`, this instance's identity (the leaf's URI SAN).
        public let uri: String
        public let trustDomain: String
        /// Validity of the leaf, seconds since 1970.
        public let notValidBefore: Int
        public let notValidAfter: Int
        /// Where it came from (a directory, or "issued by the CA in DIR").
        public let origin: String
        let clientHTTP: NIOSSLContext
        let clientHTTP2: NIOSSLContext
        let clientTCP: NIOSSLContext
        let server: NIOSSLContext
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    private let current = NIOLockedValueBox<Material?>(nil)

    public init() {}

    public func load() -> Material? {
        self.current.withLockedValue { $0 }
    }

    public func install(_ material: Material) {
        self.current.withLockedValue { $0 = material }
    }

    /// Builds the contexts from PEM text. The leaf must carry exactly one `spiffe://` URI SAN in
    /// `trustDomain`; the roots are what peers' certificates must chain to.
    public static func material(
        chainPEM: String, keyPEM: String, rootsPEM: String, trustDomain: String, origin: String
    ) throws(Failure) -> Material {
        let chain: [NIOSSLCertificate]
        let roots: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
            roots = try NIOSSLCertificate.fromPEMBytes(Array(rootsPEM.utf8))
            key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
        } catch {
            throw Failure(description: "\(origin): unreadable certificate, key or roots: \(error)")
        }
        guard let leaf = chain.first else { throw Failure(description: "\(origin): no certificate in the chain") }
        guard !roots.isEmpty else { throw Failure(description: "\(origin): no root certificate") }
        let uris = Self.spiffeURIs(of: leaf)
        guard uris.count == 1, let uri = uris.first else {
            throw Failure(description: "\(origin): the certificate must carry exactly one spiffe:// URI SAN, it has \(uris.count)")
        }
        guard Self.trustDomain(of: uri) == trustDomain else {
            throw Failure(description: "\(origin): \(uri) is not in the trust domain \(trustDomain)")
        }
        func context(_ configuration: TLSConfiguration) throws(Failure) -> NIOSSLContext {
            do {
                return try NIOSSLContext(configuration: configuration)
            } catch NIOSSLError.failedToLoadPrivateKey {
                throw Failure(description: "\(origin): the private key does not match the certificate")
            } catch {
                throw Failure(description: "\(origin): \(error)")
            }
        }
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        client.additionalTrustRoots = []
        // The server's identity is its SPIFFE URI, checked after the handshake, not a host name.
        client.certificateVerification = .noHostnameVerification
        client.minimumTLSVersion = .tlsv12
        var clientHTTP = client
        clientHTTP.applicationProtocols = Self.clientHTTPALPN
        var clientHTTP2 = client
        clientHTTP2.applicationProtocols = Self.clientHTTP2ALPN
        var clientTCP = client
        clientTCP.applicationProtocols = Self.clientTCPALPN
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        server.trustRoots = .certificates(roots)
        server.certificateVerification = .noHostnameVerification  // a client certificate is required
        server.minimumTLSVersion = .tlsv12
        server.applicationProtocols = Self.serverALPN
        return Material(
            uri: uri, trustDomain: trustDomain, notValidBefore: Int(leaf.notValidBefore), notValidAfter: Int(leaf.notValidAfter),
            origin: origin, clientHTTP: try context(clientHTTP),
            clientHTTP2: try context(clientHTTP2), clientTCP: try context(clientTCP), server: try context(server)
        )
    }

    /// The `spiffe://` URI SANs of a certificate.
    static func spiffeURIs(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .uri else { return nil }
            let text = String(decoding: name.contents, as: UTF8.self)
            return text.hasPrefix("spiffe://") ? text : nil
        }
    }

    /// `cluster.local` of `spiffe://cluster.local/ns/x/sa/y`.
    static func trustDomain(of uri: String) -> String? {
        guard uri.hasPrefix("spiffe://") else { return nil }
        return uri.dropFirst("spiffe://".count).split(separator: "/", maxSplits: 1).first.map(String.init)
    }

    /// The SHA-256 of a certificate's DER, in lower-case hex (the `Hash=` of x-forwarded-client-cert).
    static func sha256Hex(of certificate: NIOSSLCertificate) -> String {
        guard let der = try? certificate.toDERBytes() else { return "" }
        return SHA256.hash(data: der).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// Who is on the other end of an mTLS connection.
public struct PeerIdentity: Sendable, Hashable {
    /// `spiffe://…` from the peer's certificate; nil when it has none.
    public var uri: String?
    /// SHA-256 of the peer's certificate (hex).
    public var certificateHash: String
    /// The subject as RFC 4514 writes it (`CN=client,O=example`); empty for an X.509-SVID.
    public var subject: String
    /// The certificate's DNS names.
    public var dnsNames: [String]

    /// `cluster.local/ns/default/sa/sleep`: the URI without its scheme, as Istio's `principal`.
    public var principal: String? { self.uri.map { String($0.dropFirst("spiffe://".count)) } }

    init(certificate: NIOSSLCertificate) {
        self.uri = MeshIdentity.spiffeURIs(of: certificate).first
        self.certificateHash = MeshIdentity.sha256Hex(of: certificate)
        let parsed = (try? certificate.toDERBytes()).flatMap { try? Certificate(derEncoded: $0) }
        self.subject = parsed.map { String(describing: $0.subject) } ?? ""
        self.dnsNames = certificate._subjectAlternativeNames().compactMap { name in
            name.nameType == .dnsName ? String(decoding: name.contents, as: UTF8.self) : nil
        }
    }

    /// The `x-forwarded-client-cert` element for this peer, as Envoy's SANITIZE_SET writes it with
    /// Istio's fields: `By` (this proxy's own URI, when it has one), `Hash`, `Subject`, `URI`, `DNS`.
    func forwardedClientCert(by: String?) -> String {
        var parts: [String] = []
        if let by { parts.append("By=\(by)") }
        parts.append("Hash=\(self.certificateHash)")
        parts.append("Subject=\"\(self.subject.replacingOccurrences(of: "\"", with: "\\\""))\"")
        if let uri = self.uri { parts.append("URI=\(uri)") }
        for name in self.dnsNames { parts.append("DNS=\(name)") }
        return parts.joined(separator: ";")
    }
}
