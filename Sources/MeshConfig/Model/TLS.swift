/// A Gateway server's `tls` block, with file paths resolved: `credentialName: NAME` becomes
/// `CREDENTIALS-DIR/NAME/tls.crt`, `tls.key` and (for MUTUAL) `ca.crt`; relative paths are taken
/// from the config directory.
public struct ServerTLSSettings: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable {
        case simple = "SIMPLE"
        case mutual = "MUTUAL"
        case optionalMutual = "OPTIONAL_MUTUAL"
        case passthrough = "PASSTHROUGH"
        case autoPassthrough = "AUTO_PASSTHROUGH"
        case istioMutual = "ISTIO_MUTUAL"
    }

    public enum ProtocolVersion: String, Sendable, Hashable, Comparable {
        case auto = "TLS_AUTO"
        case v1_0 = "TLSV1_0"
        case v1_1 = "TLSV1_1"
        case v1_2 = "TLSV1_2"
        case v1_3 = "TLSV1_3"

        private var rank: Int {
            switch self {
            case .auto: return 0
            case .v1_0: return 1
            case .v1_1: return 2
            case .v1_2: return 3
            case .v1_3: return 4
            }
        }

        public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool { lhs.rank < rhs.rank }
    }

    public var mode: Mode
    /// PEM certificate chain (leaf first).
    public var certificatePath: String?
    /// PEM private key.
    public var privateKeyPath: String?
    /// PEM CA bundle that client certificates must chain to (MUTUAL, OPTIONAL_MUTUAL).
    public var caCertificatesPath: String?
    /// The `credentialName`, when the paths came from one.
    public var credentialName: String?
    /// `caCertCredentialName`: the credential whose `ca.crt` verifies client certificates (before
    /// the `credentialName`'s own; `caCertificates` goes first).
    public var caCertCredentialName: String?
    /// Client certificate SANs accepted (MUTUAL); empty = any certificate from the CA.
    public var subjectAltNames: [String]
    public var minProtocolVersion: ProtocolVersion?
    public var maxProtocolVersion: ProtocolVersion?
    /// OpenSSL-style cipher suite names (TLS 1.2 and below).
    public var cipherSuites: [String]
    /// The line of the `tls` block, for diagnostics about its files.
    public var location: SourceLocation?

    public init(
        mode: Mode,
        certificatePath: String? = nil,
        privateKeyPath: String? = nil,
        caCertificatesPath: String? = nil,
        credentialName: String? = nil,
        caCertCredentialName: String? = nil,
        subjectAltNames: [String] = [],
        minProtocolVersion: ProtocolVersion? = nil,
        maxProtocolVersion: ProtocolVersion? = nil,
        cipherSuites: [String] = [],
        location: SourceLocation? = nil
    ) {
        self.mode = mode
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.caCertificatesPath = caCertificatesPath
        self.credentialName = credentialName
        self.caCertCredentialName = caCertCredentialName
        self.subjectAltNames = subjectAltNames
        self.minProtocolVersion = minProtocolVersion
        self.maxProtocolVersion = maxProtocolVersion
        self.cipherSuites = cipherSuites
        self.location = location
    }
}

/// A VirtualService `tls[]` rule: routes TLS connections by SNI without terminating them.
public struct TLSRoute: Sendable, Hashable {
    public var match: [TLSMatch]
    public var route: [RouteDestination]
    public var location: SourceLocation?

    public init(match: [TLSMatch], route: [RouteDestination], location: SourceLocation? = nil) {
        self.match = match
        self.route = route
        self.location = location
    }
}

/// `tls[].match[]`: SNI host patterns (required; exact or `*.suffix`), optionally a port and gateways.
public struct TLSMatch: Sendable, Hashable {
    public var sniHosts: [String]
    public var port: Int?
    public var gateways: [String]

    public init(sniHosts: [String], port: Int? = nil, gateways: [String] = []) {
        self.sniHosts = sniHosts
        self.port = port
        self.gateways = gateways
    }
}
