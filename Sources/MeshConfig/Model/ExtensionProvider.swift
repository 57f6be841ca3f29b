/// `extensionProviders` in meshgate.yaml, as Istio's MeshConfig declares them: the external
/// authorizers CUSTOM AuthorizationPolicies name (`envoyExtAuthzHttp`, Envoy's HTTP ext_authz).
public struct ExtensionProvider: Sendable, Hashable {
    public var name: String
    public var extAuthzHTTP: ExtAuthzHTTP
    public var location: SourceLocation?

    public init(name: String, extAuthzHTTP: ExtAuthzHTTP, location: SourceLocation? = nil) {
        self.name = name
        self.extAuthzHTTP = extAuthzHTTP
        self.location = location
    }
}

/// `envoyExtAuthzHttp`: every checked request is sent (its method, path and chosen headers, no
/// body) to `service:port`; a 200 allows it, anything else is the answer the client gets.
public struct ExtAuthzHTTP: Sendable, Hashable {
    /// A declared service host (its FQDN or short name) or an address.
    public var service: String
    public var port: Int
    /// How long a check may take (``defaultTimeout``, Envoy's 200 ms, when unset).
    public var timeout: Duration
    /// Prepended to the checked request's path.
    public var pathPrefix: String
    /// On an authorizer that cannot be reached: let the request through (default false: refused).
    public var failOpen: Bool
    /// The status of that refusal (Istio's default 403).
    public var statusOnError: Int
    /// Request headers sent to the authorizer besides Envoy's always-sent ones.
    public var includeRequestHeadersInCheck: [String]
    public var includeAdditionalHeadersInCheck: [String: String]
    /// Authorizer response headers copied to the upstream request on allow.
    public var headersToUpstreamOnAllow: [String]
    /// Authorizer response headers copied to the client's answer on deny (all of them when empty).
    public var headersToDownstreamOnDeny: [String]
    /// Authorizer response headers copied to the client's answer on allow.
    public var headersToDownstreamOnAllow: [String]

    /// Envoy's ext_authz default.
    public static let defaultTimeout: Duration = .milliseconds(200)

    public init(
        service: String, port: Int, timeout: Duration = Self.defaultTimeout, pathPrefix: String = "", failOpen: Bool = false,
        statusOnError: Int = 403, includeRequestHeadersInCheck: [String] = [], includeAdditionalHeadersInCheck: [String: String] = [:],
        headersToUpstreamOnAllow: [String] = [], headersToDownstreamOnDeny: [String] = [], headersToDownstreamOnAllow: [String] = []
    ) {
        self.service = service
        self.port = port
        self.timeout = timeout
        self.pathPrefix = pathPrefix
        self.failOpen = failOpen
        self.statusOnError = statusOnError
        self.includeRequestHeadersInCheck = includeRequestHeadersInCheck
        self.includeAdditionalHeadersInCheck = includeAdditionalHeadersInCheck
        self.headersToUpstreamOnAllow = headersToUpstreamOnAllow
        self.headersToDownstreamOnDeny = headersToDownstreamOnDeny
        self.headersToDownstreamOnAllow = headersToDownstreamOnAllow
    }
}
