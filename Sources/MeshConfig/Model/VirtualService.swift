// VirtualService and what its http, tcp and tls routes hold, validated (see ``MeshConfiguration``).

public struct VirtualService: Sendable, Hashable {
    public var meta: ResourceMeta
    /// Hosts as written, short names resolved to FQDNs (`reviews` → `reviews.default.svc.cluster.local`);
    /// wildcards and `*` kept as they are. Empty for a delegate, which only serves through the
    /// VirtualServices that delegate to it.
    public var hosts: [String]
    /// Gateway references resolved to `namespace/name`, or `mesh`. Empty in YAML means `["mesh"]`
    /// (and `[]` for a delegate).
    public var gateways: [String]
    public var http: [HTTPRoute]
    public var tcp: [TCPRoute]
    /// SNI routes for TLS passthrough.
    public var tls: [TLSRoute]

    public init(meta: ResourceMeta, hosts: [String], gateways: [String], http: [HTTPRoute], tcp: [TCPRoute], tls: [TLSRoute] = []) {
        self.meta = meta
        self.hosts = hosts
        self.gateways = gateways
        self.http = http
        self.tcp = tcp
        self.tls = tls
    }

    public var qualifiedName: String { "\(self.meta.namespace)/\(self.meta.name)" }
}

public enum StringMatch: Sendable, Hashable {
    case exact(String)
    case prefix(String)
    /// RE2-style pattern; it must match the whole value. Already checked to compile.
    case regex(String)
}

public struct HeaderMatch: Sendable, Hashable {
    /// Lower-case header name.
    public var name: String
    /// nil: the header only has to be present (`end-user: {}`).
    public var match: StringMatch?

    public init(name: String, match: StringMatch?) {
        self.name = name
        self.match = match
    }
}

/// One entry of `http[].match`: every field that is set must hold (AND).
public struct HTTPMatchRequest: Sendable, Hashable {
    public var name: String?
    public var uri: StringMatch?
    public var ignoreUriCase: Bool
    public var method: StringMatch?
    public var authority: StringMatch?
    public var headers: [HeaderMatch]
    public var withoutHeaders: [HeaderMatch]
    /// Query parameters: exact or regex (Istio has no prefix match here).
    public var queryParams: [HeaderMatch]
    public var port: Int?
    /// Restricts this match to the named gateways (resolved `namespace/name` or `mesh`); empty = all.
    public var gateways: [String]

    public init(
        name: String? = nil,
        uri: StringMatch? = nil,
        ignoreUriCase: Bool = false,
        method: StringMatch? = nil,
        authority: StringMatch? = nil,
        headers: [HeaderMatch] = [],
        withoutHeaders: [HeaderMatch] = [],
        queryParams: [HeaderMatch] = [],
        port: Int? = nil,
        gateways: [String] = []
    ) {
        self.name = name
        self.uri = uri
        self.ignoreUriCase = ignoreUriCase
        self.method = method
        self.authority = authority
        self.headers = headers
        self.withoutHeaders = withoutHeaders
        self.queryParams = queryParams
        self.port = port
        self.gateways = gateways
    }
}

public struct Destination: Sendable, Hashable {
    /// FQDN of a declared service.
    public var host: String
    public var subset: String?
    /// Service port; nil when the service has exactly one port.
    public var port: Int?

    public init(host: String, subset: String? = nil, port: Int? = nil) {
        self.host = host
        self.subset = subset
        self.port = port
    }
}

public struct RouteDestination: Sendable, Hashable {
    public var destination: Destination
    /// Relative, as in current Istio: each destination gets `weight / sum of the route's weights` of
    /// the traffic (0 = none); a lone destination gets 100.
    public var weight: Int
    /// `headers.request` / `headers.response` applied when this destination is picked, before the
    /// route's own (Envoy's weighted-cluster header operations).
    public var requestHeaders: HeaderOperations?
    public var responseHeaders: HeaderOperations?

    public init(destination: Destination, weight: Int, requestHeaders: HeaderOperations? = nil, responseHeaders: HeaderOperations? = nil) {
        self.destination = destination
        self.weight = weight
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
    }
}

/// `http[].delegate`: the VirtualService (one with no hosts) whose http routes take this route's place.
public struct DelegateReference: Sendable, Hashable {
    public var name: String
    /// The delegating VirtualService's namespace when not written.
    public var namespace: String

    public init(name: String, namespace: String) {
        self.name = name
        self.namespace = namespace
    }

    public var qualifiedName: String { "\(self.namespace)/\(self.name)" }
}

/// `http[].redirect`: answered by the proxy with a `location` built from the request and these.
public struct HTTPRedirect: Sendable, Hashable {
    /// How the port of the `location` is chosen when `port` is not given.
    public enum DerivePort: Sendable, Hashable {
        /// The scheme's default port: no port in the `location` (Envoy's default).
        case fromProtocolDefault
        /// The port the request arrived on.
        case fromRequestPort
    }

    /// Replaces the path (and the query, when it has one).
    public var uri: String?
    public var authority: String?
    public var port: Int?
    public var derivePort: DerivePort
    public var scheme: String?
    /// 301 (Istio's default), 302, 303, 307 or 308.
    public var redirectCode: Int

    public init(uri: String? = nil, authority: String? = nil, port: Int? = nil, derivePort: DerivePort = .fromProtocolDefault, scheme: String? = nil, redirectCode: Int = 301) {
        self.uri = uri
        self.authority = authority
        self.port = port
        self.derivePort = derivePort
        self.scheme = scheme
        self.redirectCode = redirectCode
    }
}

/// `http[].directResponse`: a fixed answer with no upstream.
public struct HTTPDirectResponse: Sendable, Hashable {
    public var status: Int
    /// `body.string`, or `body.bytes` decoded from base64.
    public var body: [UInt8]

    public init(status: Int, body: [UInt8] = []) {
        self.status = status
        self.body = body
    }
}

public struct HTTPRoute: Sendable, Hashable {
    public var name: String?
    /// OR'ed; empty matches every request.
    public var match: [HTTPMatchRequest]
    /// Where requests go; empty when the route answers itself (`redirect`, `directResponse`).
    public var route: [RouteDestination]
    public var redirect: HTTPRedirect?
    public var directResponse: HTTPDirectResponse?
    /// Set only as decoded: validation splices the delegate's routes in place of this route, so a
    /// validated ``MeshConfiguration`` has no delegating route left.
    public var delegate: DelegateReference?
    /// `rewrite`: the path (or the prefix a prefix match matched) and the authority sent upstream.
    public var rewrite: HTTPRewrite?
    /// `timeout`: the upstream's whole response must arrive within this; nil = none (Istio's default).
    public var timeout: Duration?
    /// `headers.request` and `headers.response`.
    public var requestHeaders: HeaderOperations?
    public var responseHeaders: HeaderOperations?
    /// `fault`: delays and aborts injected into a share of the requests.
    public var fault: HTTPFaultInjection?
    /// `retries`; nil: none written, so Istio's ``HTTPRetryPolicy/default`` applies.
    public var retries: HTTPRetryPolicy?
    /// `mirror` and `mirrors[]`.
    public var mirrors: [HTTPMirror]
    /// `corsPolicy`.
    public var cors: CORSPolicy?
    public var location: SourceLocation?

    public init(
        name: String? = nil, match: [HTTPMatchRequest], route: [RouteDestination], rewrite: HTTPRewrite? = nil,
        timeout: Duration? = nil, requestHeaders: HeaderOperations? = nil, responseHeaders: HeaderOperations? = nil,
        delegate: DelegateReference? = nil, redirect: HTTPRedirect? = nil, directResponse: HTTPDirectResponse? = nil,
        fault: HTTPFaultInjection? = nil, retries: HTTPRetryPolicy? = nil, mirrors: [HTTPMirror] = [],
        cors: CORSPolicy? = nil, location: SourceLocation? = nil
    ) {
        self.cors = cors
        self.mirrors = mirrors
        self.fault = fault
        self.retries = retries
        self.name = name
        self.match = match
        self.route = route
        self.redirect = redirect
        self.directResponse = directResponse
        self.delegate = delegate
        self.rewrite = rewrite
        self.timeout = timeout
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.location = location
    }
}

/// Istio's `Headers.HeaderOperations`: applied as `remove`, then `set` (replacing), then `add`.
public struct HeaderOperations: Sendable, Hashable {
    /// Lower-case names, in name order.
    public var set: [Pair]
    public var add: [Pair]
    public var remove: [String]

    public struct Pair: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(set: [Pair] = [], add: [Pair] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }
}

/// `http[].rewrite`.
public struct HTTPRewrite: Sendable, Hashable {
    /// Replaces the prefix a `prefix` match matched, else the whole path (the query string stays).
    public var uri: String?
    /// Replaces the `Host` / `:authority` sent upstream.
    public var authority: String?
    /// `uriRegexRewrite`: every match of `match` in the path (not the query) replaced by `rewrite`
    /// (`\\1` names a capture group), as Envoy's `regex_rewrite`.
    public var uriRegexRewrite: RegexRewrite?

    public struct RegexRewrite: Sendable, Hashable {
        public var match: String
        public var rewrite: String

        public init(match: String, rewrite: String) {
            self.match = match
            self.rewrite = rewrite
        }
    }

    public init(uri: String? = nil, authority: String? = nil, uriRegexRewrite: RegexRewrite? = nil) {
        self.uri = uri
        self.authority = authority
        self.uriRegexRewrite = uriRegexRewrite
    }
}

/// `tcp[].match[]`: L4 attributes only (TCP cannot see a host name).
public struct L4Match: Sendable, Hashable {
    public var port: Int?
    public var gateways: [String]
    public var sourceLabels: [String: String]

    public init(port: Int? = nil, gateways: [String] = [], sourceLabels: [String: String] = [:]) {
        self.port = port
        self.gateways = gateways
        self.sourceLabels = sourceLabels
    }
}

public struct TCPRoute: Sendable, Hashable {
    /// OR'ed; empty matches every connection.
    public var match: [L4Match]
    public var route: [RouteDestination]
    public var location: SourceLocation?

    public init(match: [L4Match], route: [RouteDestination], location: SourceLocation? = nil) {
        self.match = match
        self.route = route
        self.location = location
    }
}
