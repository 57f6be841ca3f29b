import MeshConfig
import NIOSSL

/// Builds server TLS contexts from a Gateway server's `tls` settings: certificate chain, key,
/// client CA, protocol versions, cipher suites, ALPN. Reads the files (so a reload picks up
/// certificates replaced on disk) and reports every problem with the file it is about.
public enum TLSContextFactory {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// ALPN offered on HTTPS servers: HTTP/2 first, as Envoy does.
    static let httpALPN = ["h2", "http/1.1"]

    public static func serverContext(
        _ settings: ServerTLSSettings, alpn: [String], hosts: [String], port: Int
    ) throws(Failure) -> (NIOSSLContext, CertificateInfo) {
        guard let certificatePath = settings.certificatePath, let keyPath = settings.privateKeyPath else {
            throw Failure(description: "no serverCertificate/privateKey or credentialName")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw Failure(description: "cannot load certificate \(certificatePath): \(Self.reason(error, path: certificatePath))")
        }
        guard let leaf = chain.first else { throw Failure(description: "certificate \(certificatePath) holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw Failure(description: "cannot load private key \(keyPath): \(Self.reason(error, path: keyPath))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        configuration.applicationProtocols = alpn
        if let minimum = settings.minProtocolVersion, let version = Self.version(minimum) {
            configuration.minimumTLSVersion = version
        }
        if let maximum = settings.maxProtocolVersion, let version = Self.version(maximum) {
            configuration.maximumTLSVersion = version
        }
        if !settings.cipherSuites.isEmpty {
            configuration.cipherSuites = settings.cipherSuites.joined(separator: ":")
        }
        switch settings.mode {
        case .mutual, .optionalMutual:
            guard let caPath = settings.caCertificatesPath else {
                throw Failure(description: "\(settings.mode.rawValue) needs caCertificates (or ca.crt in the credential)")
            }
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(caPath)
            } catch {
                throw Failure(description: "cannot load CA certificates \(caPath): \(Self.reason(error, path: caPath))")
            }
            guard !roots.isEmpty else { throw Failure(description: "CA file \(caPath) holds no PEM certificate") }
            configuration.trustRoots = .certificates(roots)
            configuration.certificateVerification = settings.mode == .mutual ? .noHostnameVerification : .optionalVerification
            configuration.sendCANameList = true
        default:
            configuration.certificateVerification = .none
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // BoringSSL checks the key against the certificate when the context takes it.
            throw Failure(description: "private key \(keyPath) does not match certificate \(certificatePath)")
        } catch {
            throw Failure(description: "TLS settings rejected for \(certificatePath): \(error)")
        }
        return (context, Self.info(leaf, file: certificatePath, hosts: hosts, port: port))
    }

    /// A DestinationRule's SIMPLE or MUTUAL origination: trust `caCertificates` (else the system
    /// roots), present the client certificate for MUTUAL.
    public static func clientContext(_ settings: ClientTLSSettings, alpn: [String]) throws(Failure) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caPath = settings.caCertificatesPath {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath))
            } catch {
                throw Failure(description: "cannot load CA certificates \(caPath): \(Self.reason(error, path: caPath))")
            }
        }
        if settings.insecureSkipVerify {
            configuration.certificateVerification = .none
        } else if !settings.subjectAltNames.isEmpty {
            configuration.certificateVerification = .noHostnameVerification
        }
        if let certificatePath = settings.clientCertificatePath, let keyPath = settings.privateKeyPath {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
            } catch {
                throw Failure(description: "cannot load certificate \(certificatePath): \(Self.reason(error, path: certificatePath))")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            } catch {
                throw Failure(description: "cannot load private key \(keyPath): \(Self.reason(error, path: keyPath))")
            }
        }
        configuration.applicationProtocols = alpn
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw Failure(description: "private key \(settings.privateKeyPath ?? "") does not match certificate \(settings.clientCertificatePath ?? "")")
        } catch {
            throw Failure(description: "TLS settings rejected: \(error)")
        }
    }

    static func info(_ certificate: NIOSSLCertificate, file: String, hosts: [String], port: Int) -> CertificateInfo {
        let names = certificate._subjectAlternativeNames().compactMap { name -> String? in
            switch name.nameType {
            case .dnsName: return "DNS:" + String(decoding: name.contents, as: UTF8.self)
            case .ipAddress: return "IP:" + name.contents.map(String.init).joined(separator: ".")
            case .uri: return "URI:" + String(decoding: name.contents, as: UTF8.self)
            default: return nil
            }
        }
        return CertificateInfo(
            file: file,
            subject: certificate.description,
            subjectAltNames: names,
            notValidAfter: Int(certificate.notValidAfter),
            hosts: hosts,
            port: port
        )
    }

    static func version(_ version: ServerTLSSettings.ProtocolVersion) -> TLSVersion? {
        switch version {
        case .auto: return nil
        case .v1_0: return .tlsv1
        case .v1_1: return .tlsv11
        case .v1_2: return .tlsv12
        case .v1_3: return .tlsv13
        }
    }

    private static func reason(_ error: Error, path: String) -> String {
        if let ioError = error as? NIOSSLError, case .failedToLoadCertificate = ioError { return "not a PEM certificate" }
        return "\(error)"
    }
}
