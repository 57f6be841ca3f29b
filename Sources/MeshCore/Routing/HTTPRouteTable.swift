import MeshConfig
import NIOCore
import NIOHTTP1

/// What routing needs to know about one HTTP request, cut from the request head once.
public struct RouteRequest {
    public var method: String
    /// The path without the query string (Envoy's path matchers ignore the query).
    public var path: Substring
    public var query: Substring?
    /// Lower-case host without `:port`.
    public var host: Substring
    public var authority: String
    public var headers: HTTPHeaders
    /// The listener port the request arrived on.
    public var port: Int

    public init(head: HTTPRequestHead, port: Int) {
        self.init(head: head, host: head.headers.first(name: "host") ?? "", port: port)
    }

    /// With the Host header already found (the proxy reads all headers in one pass).
    public init(head: HTTPRequestHead, host: String, port: Int) {
        self.method = head.method.rawValue
        let uri = head.uri[...]
        if let question = uri.firstIndex(of: "?") {
            self.path = uri[..<question]
            self.query = uri[uri.index(after: question)...]
        } else {
            self.path = uri
            self.query = nil
        }
        self.authority = host
        self.host = RouteRequest.hostWithoutPort(self.authority)
        self.headers = head.headers
        self.port = port
    }

    /// `Example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
    static func hostWithoutPort(_ authority: String) -> Substring {
        var host = authority[...]
        if let colon = Self.portColon(host) {
            host = host[..<colon]
        }
        if host.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            return host.lowercased()[...]
        }
        return host
    }

    /// Where `host[:port]`'s port begins: its last `:` outside an IP-literal's brackets.
    static func portColon(_ authority: Substring) -> Substring.Index? {
        guard let colon = authority.lastIndex(of: ":"), !authority.utf8[colon...].contains(UInt8(ascii: "]")) else { return nil }
        return colon
    }

    /// The value of query parameter `name`, if present.
    func queryValue(_ name: String) -> Substring? {
        guard let query = self.query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let equals = pair.firstIndex(of: "=") {
                if pair[..<equals] == name[...] { return pair[pair.index(after: equals)...] }
            } else if pair == name[...] {
                return ""
            }
        }
        return nil
    }
}

/// A route's mirror: the cluster its copies go to, and the share of requests copied.
public struct CompiledMirror: Sendable {
    public let cluster: Cluster
    public let percentage: Double
}

/// One `http[]` rule of a VirtualService, compiled.
public struct CompiledHTTPRoute: Sendable {
    /// Route name for logs: the rule's `name`, else `namespace.vs-name.index`.
    public let name: String
    /// OR'ed; empty matches everything.
    public let matches: [CompiledHTTPMatch]
    public let destinations: WeightedClusters
    /// `rewrite`, when the rule has one.
    public var rewrite: HTTPRewrite? = nil
    /// `timeout`, when the rule has one.
    public var timeout: TimeAmount? = nil
    /// `headers.request` / `headers.response`, when the rule has them.
    public var requestHeaders: HeaderOperations? = nil
    public var responseHeaders: HeaderOperations? = nil
    /// `redirect`: answered with a `location` made from each request.
    public var redirect: HTTPRedirect? = nil
    /// `directResponse`, compiled to its reply.
    public var directResponse: LocalReply? = nil
    /// `fault`, when the rule injects one.
    public var fault: HTTPFaultInjection? = nil
    /// `retries`, or Istio's default policy.
    public var retries: HTTPRetryPolicy = .default
    /// `mirror` / `mirrors[]` to declared clusters.
    public var mirrors: [CompiledMirror] = []
    /// `corsPolicy`.
    public var cors: CompiledCORS? = nil
    /// `rewrite.uriRegexRewrite`, compiled.
    public var regexRewrite: (regex: RE2Regex, rewrite: String)? = nil

    public func matches(_ request: RouteRequest) -> Bool {
        self.matches.isEmpty || self.matches.contains { $0.matches(request) }
    }

    /// The request target after `rewrite.uri`: Istio replaces the prefix a prefix match matched,
    /// else the whole path; the query string stays.
    func rewrittenTarget(_ request: RouteRequest, uri replacement: String) -> String {
        let matched = self.matches.first { $0.matches(request) }
        var path = replacement
        if let length = matched?.uri?.prefixLength {
            path += request.path.dropFirst(length)
        }
        if let query = request.query { path += "?\(query)" }
        return path
    }

    /// The request target after `rewrite.uriRegexRewrite`: every match in the path replaced; the
    /// query string stays.
    func regexRewrittenTarget(_ request: RouteRequest, regex: RE2Regex, rewrite: String) -> String {
        var path = regex.replacingAll(in: request.path, with: rewrite)
        if let query = request.query { path += "?\(query)" }
        return path
    }
}

/// One `match[]` entry: every field set must hold.
public struct CompiledHTTPMatch: Sendable {
    let uri: StringMatcher?
    let method: StringMatcher?
    let authority: StringMatcher?
    let headers: [(name: String, matcher: StringMatcher?)]
    let withoutHeaders: [(name: String, matcher: StringMatcher?)]
    let queryParams: [(name: String, matcher: StringMatcher?)]
    let port: Int?
    /// False when `match.gateways` names none of this listener's gateways: the entry can never match here.
    let appliesHere: Bool

    init(_ match: HTTPMatchRequest, listenerGateways: [String]) throws {
        self.uri = try match.uri.map { try StringMatcher($0, ignoreCase: match.ignoreUriCase) }
        self.method = try match.method.map { try StringMatcher($0) }
        self.authority = try match.authority.map { try StringMatcher($0) }
        self.headers = try match.headers.map { ($0.name, try $0.match.map { try StringMatcher($0) }) }
        self.withoutHeaders = try match.withoutHeaders.map { ($0.name, try $0.match.map { try StringMatcher($0) }) }
        self.queryParams = try match.queryParams.map { ($0.name, try $0.match.map { try StringMatcher($0) }) }
        self.port = match.port
        self.appliesHere = match.gateways.isEmpty || match.gateways.contains { listenerGateways.contains($0) }
    }

    func matches(_ request: RouteRequest) -> Bool {
        guard self.appliesHere else { return false }
        if let port = self.port, port != request.port { return false }
        if let uri = self.uri, !uri.matches(request.path) { return false }
        if let method = self.method, !method.matches(request.method) { return false }
        if let authority = self.authority, !authority.matches(request.authority) { return false }
        for (name, matcher) in self.headers {
            guard let value = request.headers.first(name: name) else { return false }
            if let matcher, !matcher.matches(value) { return false }
        }
        for (name, matcher) in self.withoutHeaders {
            if let value = request.headers.first(name: name), matcher?.matches(value) ?? true { return false }
        }
        for (name, matcher) in self.queryParams {
            guard let value = request.queryValue(name) else { return false }
            if let matcher, !matcher.matches(value) { return false }
        }
        return true
    }
}

/// The routes of one HTTP listener, by virtual host: exact host, then the longest `*.suffix`, then `*`.
public struct HTTPRouteTable: Sendable {
    public private(set) var exactHosts: [String: [CompiledHTTPRoute]] = [:]
    /// `(".example.com", routes)`, longest suffix first.
    public private(set) var wildcardHosts: [(suffix: String, routes: [CompiledHTTPRoute])] = []
    public private(set) var catchAll: [CompiledHTTPRoute]? = nil

    public init() {}

    /// Appends `routes` to the virtual host `domain` (`host`, `*.suffix` or `*`).
    mutating func add(domain: String, routes: [CompiledHTTPRoute]) {
        let domain = domain.lowercased()
        if domain == "*" {
            self.catchAll = (self.catchAll ?? []) + routes
        } else if domain.hasPrefix("*") {
            let suffix = String(domain.dropFirst())
            if let index = self.wildcardHosts.firstIndex(where: { $0.suffix == suffix }) {
                self.wildcardHosts[index].routes += routes
            } else {
                self.wildcardHosts.append((suffix, routes))
                self.wildcardHosts.sort { $0.suffix.count > $1.suffix.count }
            }
        } else {
            self.exactHosts[domain, default: []] += routes
        }
    }

    public var isEmpty: Bool { self.exactHosts.isEmpty && self.wildcardHosts.isEmpty && self.catchAll == nil }

    /// The virtual host's routes for a lower-case host without port.
    public func routes(forHost host: Substring) -> [CompiledHTTPRoute]? {
        if let routes = self.exactHosts[String(host)] { return routes }
        for entry in self.wildcardHosts where host.hasSuffix(entry.suffix) && host.count > entry.suffix.count {
            return entry.routes
        }
        return self.catchAll
    }

    /// The first route of the request's virtual host that matches, or nil (404 NR).
    public func route(_ request: RouteRequest) -> CompiledHTTPRoute? {
        guard let routes = self.routes(forHost: request.host) else { return nil }
        return routes.first { $0.matches(request) }
    }
}

/// One `tcp[]` rule, compiled for one listener.
public struct TCPRouteEntry: Sendable {
    public let name: String
    /// OR'ed; empty matches every connection.
    let ports: [Int?]
    public let destinations: WeightedClusters

    init(name: String, route: TCPRoute, listenerGateways: [String], destinations: WeightedClusters) {
        self.name = name
        self.ports = route.match.filter { match in
            match.gateways.isEmpty || match.gateways.contains { listenerGateways.contains($0) }
        }.map(\.port)
        self.destinations = destinations
        self.matchesEverything = route.match.isEmpty
    }

    private let matchesEverything: Bool

    public func matches(port: Int) -> Bool {
        self.matchesEverything || self.ports.contains { $0 == nil || $0 == port }
    }
}

extension HeaderOperations {
    /// `remove`, then `set` (replacing), then `add`, as Envoy applies a route's header operations.
    func apply(to headers: inout HTTPHeaders) {
        for name in self.remove { headers.remove(name: name) }
        for pair in self.set { headers.replaceOrAdd(name: pair.name, value: pair.value) }
        for pair in self.add { headers.add(name: pair.name, value: pair.value) }
    }
}
