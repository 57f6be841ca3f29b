/// `kind: RequestAuthentication` (security.istio.io v1beta1 and v1): which JWTs a workload accepts.
/// Scope as AuthorizationPolicy's (``AuthorizationPolicy/applies(toNamespace:labels:name:rootNamespace:)``).
public struct RequestAuthentication: Sendable, Hashable {
    public var meta: ResourceMeta
    public var selector: [String: String]?
    public var targetGateways: [String]
    public var jwtRules: [JWTRule]

    public init(meta: ResourceMeta, selector: [String: String]?, targetGateways: [String] = [], jwtRules: [JWTRule]) {
        self.meta = meta
        self.selector = selector
        self.targetGateways = targetGateways
        self.jwtRules = jwtRules
    }

    public func applies(toNamespace namespace: String, labels: [String: String], name: String, rootNamespace: String) -> Bool {
        AuthorizationPolicy(meta: self.meta, selector: self.selector, targetGateways: self.targetGateways, action: .allow, rules: [])
            .applies(toNamespace: namespace, labels: labels, name: name, rootNamespace: rootNamespace)
    }
}

/// One `jwtRules` entry: an issuer, where its keys are, where its tokens are read from, and what
/// the upstream is told.
public struct JWTRule: Sendable, Hashable {
    public struct HeaderLocation: Sendable, Hashable {
        public var name: String
        /// Stripped from the value (`Bearer `).
        public var prefix: String

        public init(name: String, prefix: String = "") {
            self.name = name
            self.prefix = prefix
        }
    }

    public var issuer: String
    /// Empty: any audience.
    public var audiences: [String]
    /// Inline JWKS (JSON).
    public var jwks: String?
    /// `file://…`, `http://…` or `https://…`: fetched in the background and refreshed.
    public var jwksURI: String?
    /// Default (no location given): `Authorization: Bearer …` and `?access_token=`.
    public var fromHeaders: [HeaderLocation]
    public var fromParams: [String]
    public var fromCookies: [String]
    public var forwardOriginalToken: Bool
    public var outputPayloadToHeader: String?
    /// (header, claim)
    public var outputClaimToHeaders: [ClaimToHeader]
    /// The JWKS fetch's timeout (Istio's default 5s).
    public var timeout: Duration
    public var location: SourceLocation?

    public struct ClaimToHeader: Sendable, Hashable {
        public var header: String
        public var claim: String

        public init(header: String, claim: String) {
            self.header = header
            self.claim = claim
        }
    }

    public init(
        issuer: String, audiences: [String] = [], jwks: String? = nil, jwksURI: String? = nil, fromHeaders: [HeaderLocation] = [],
        fromParams: [String] = [], fromCookies: [String] = [], forwardOriginalToken: Bool = false, outputPayloadToHeader: String? = nil,
        outputClaimToHeaders: [ClaimToHeader] = [], timeout: Duration = .seconds(5), location: SourceLocation? = nil
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.jwks = jwks
        self.jwksURI = jwksURI
        self.fromHeaders = fromHeaders
        self.fromParams = fromParams
        self.fromCookies = fromCookies
        self.forwardOriginalToken = forwardOriginalToken
        self.outputPayloadToHeader = outputPayloadToHeader
        self.outputClaimToHeaders = outputClaimToHeaders
        self.timeout = timeout
        self.location = location
    }

    /// Where tokens are looked for: the configured places, or Istio's default two.
    public var effectiveHeaders: [HeaderLocation] {
        self.fromHeaders.isEmpty && self.fromParams.isEmpty && self.fromCookies.isEmpty
            ? [HeaderLocation(name: "authorization", prefix: "Bearer ")] : self.fromHeaders
    }

    public var effectiveParams: [String] {
        self.fromHeaders.isEmpty && self.fromParams.isEmpty && self.fromCookies.isEmpty ? ["access_token"] : self.fromParams
    }
}

extension MeshConfiguration {
    /// The RequestAuthentications this instance runs.
    public var localRequestAuthentications: [RequestAuthentication] {
        let settings = self.settings
        return self.requestAuthentications.filter {
            $0.applies(toNamespace: settings.namespace, labels: settings.labels, name: settings.workloadName, rootNamespace: settings.rootNamespace)
        }
    }
}
