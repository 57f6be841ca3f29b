/// `kind: PeerAuthentication` (security.istio.io): which inbound traffic a sidecar accepts.
///
/// Scope is set by placement, as in Istio: a policy in the root namespace (``MeshSettings/rootNamespace``)
/// with no selector is mesh-wide; one in another namespace with no selector covers that namespace;
/// one with a selector covers the workloads whose labels match it.
public struct PeerAuthentication: Sendable, Hashable {
    public var meta: ResourceMeta
    /// `selector.matchLabels`; nil = no selector (namespace- or mesh-wide).
    public var selector: [String: String]?
    /// `mtls.mode`; `.unset` inherits from the wider scope.
    public var mode: MTLSMode
    /// `portLevelMtls`: workload (app) port → mode. Istio honours it only with a selector.
    public var portLevel: [Int: MTLSMode]

    public init(meta: ResourceMeta, selector: [String: String]?, mode: MTLSMode, portLevel: [Int: MTLSMode]) {
        self.meta = meta
        self.selector = selector
        self.mode = mode
        self.portLevel = portLevel
    }
}

public enum MTLSMode: String, Sendable, Hashable {
    case unset = "UNSET"
    /// Plain text only.
    case disable = "DISABLE"
    /// mTLS and plain text on the same port (Istio's default).
    case permissive = "PERMISSIVE"
    /// mTLS only: a plain-text connection is closed.
    case strict = "STRICT"
}

extension MeshConfiguration {
    /// The inbound mTLS mode of a workload's app port under the PeerAuthentication policies:
    /// the workload's own policy (by selector; its `portLevelMtls` first), then its namespace's,
    /// then the mesh-wide one; PERMISSIVE when none decides.
    public func peerAuthenticationMode(namespace: String, labels: [String: String], appPort: Int?) -> MTLSMode {
        let policies = self.peerAuthentications
        let workload = policies.filter { policy in
            guard policy.meta.namespace == namespace, let selector = policy.selector, !selector.isEmpty else { return false }
            return selector.allSatisfy { labels[$0.key] == $0.value }
        }.sorted { $0.meta.name < $1.meta.name }
        let namespaceWide = policies.filter { $0.meta.namespace == namespace && ($0.selector ?? [:]).isEmpty }
        let meshWide = policies.filter { $0.meta.namespace == self.settings.rootNamespace && ($0.selector ?? [:]).isEmpty }
        var candidates: [MTLSMode] = []
        if let appPort {
            candidates += workload.compactMap { $0.portLevel[appPort] }
        }
        candidates += workload.map(\.mode) + namespaceWide.map(\.mode) + meshWide.map(\.mode)
        return candidates.first { $0 != .unset } ?? .permissive
    }
}

/// A DestinationRule's `trafficPolicy.tls` (ClientTLSSettings): how a proxy originates TLS to the
/// destination's endpoints.
public struct ClientTLSSettings: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable {
        /// Plain text.
        case disable = "DISABLE"
        /// TLS, verifying the server with `caCertificates` (or the system roots).
        case simple = "SIMPLE"
        /// TLS with the client certificate in `clientCertificate` / `privateKey`.
        case mutual = "MUTUAL"
        /// mTLS with this proxy's mesh certificate, verifying the server's SPIFFE identity.
        case istioMutual = "ISTIO_MUTUAL"
    }

    public var mode: Mode
    public var clientCertificatePath: String?
    public var privateKeyPath: String?
    public var caCertificatesPath: String?
    /// SNI to send; default: the destination host (SIMPLE, MUTUAL) or Istio's
    /// `outbound_.PORT_.SUBSET_.HOST` (ISTIO_MUTUAL).
    public var sni: String?
    /// Server identities accepted; empty = the endpoint's own (ISTIO_MUTUAL) or the host name.
    public var subjectAltNames: [String]
    public var insecureSkipVerify: Bool
    public var location: SourceLocation?

    public init(
        mode: Mode, clientCertificatePath: String? = nil, privateKeyPath: String? = nil, caCertificatesPath: String? = nil,
        sni: String? = nil, subjectAltNames: [String] = [], insecureSkipVerify: Bool = false, location: SourceLocation? = nil
    ) {
        self.mode = mode
        self.clientCertificatePath = clientCertificatePath
        self.privateKeyPath = privateKeyPath
        self.caCertificatesPath = caCertificatesPath
        self.sni = sni
        self.subjectAltNames = subjectAltNames
        self.insecureSkipVerify = insecureSkipVerify
        self.location = location
    }
}
