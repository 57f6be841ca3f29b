import MeshConfig
import NIOSSL

/// What a listener with TLS servers does with a new connection, decided from its ClientHello.
public struct TLSListenerPlan: Sendable {
    /// The port's TLS servers, in declaration order.
    public let servers: [TLSServerPlan]
    /// SNI routes (`tls[]` rules) for passthrough servers, in order.
    public let passthroughRoutes: [TLSRouteEntry]

    /// The server for `serverName`: an exact host first, then the longest `*.suffix`, then `*`.
    /// Without SNI (or with an unknown one): the first terminating server, so old clients get a
    /// certificate; nil when the port has none (the client gets `unrecognized_name`).
    public func server(for serverName: String?) -> TLSServerPlan? {
        if let name = serverName {
            if let exact = self.servers.first(where: { $0.hosts.contains { $0.lowercased() == name } }) { return exact }
            let wildcards = self.servers.flatMap { server in
                server.hosts.filter { $0.hasPrefix("*.") && hostMatches(pattern: $0, host: name) }.map { ($0, server) }
            }
            if let best = wildcards.max(by: { $0.0.count < $1.0.count }) { return best.1 }
            if let any = self.servers.first(where: { $0.hosts.contains("*") }) { return any }
        }
        return self.servers.first { $0.context != nil }
    }

    /// The first SNI route that matches, for a passthrough server.
    public func passthroughRoute(serverName: String?, port: Int) -> TLSRouteEntry? {
        guard let serverName else { return nil }
        return self.passthroughRoutes.first { $0.matches(serverName: serverName, port: port) }
    }
}

/// One Gateway server on a TLS port.
public struct TLSServerPlan: Sendable {
    public let hosts: [String]
    public let mode: ServerTLSSettings.Mode
    /// HTTPS: HTTP routing after termination; TLS: TCP routing after termination (or passthrough).
    public let `protocol`: ServerProtocol
    /// The termination context (certificate, key, client CA, versions, ALPN); nil for passthrough.
    public let context: NIOSSLContext?
    /// What `/status` shows about the served certificate.
    public let certificate: CertificateInfo?

    /// Whether this server serves `host` (for 421 Misdirected Request on reused connections).
    public func serves(host: Substring) -> Bool {
        self.hosts.contains { hostMatches(pattern: $0, host: String(host)) }
    }
}

/// A served certificate as `/status` lists it.
public struct CertificateInfo: Sendable, Codable, Hashable {
    public var file: String
    public var subject: String
    public var subjectAltNames: [String]
    /// Seconds since the Unix epoch.
    public var notValidAfter: Int
    public var hosts: [String]
    public var port: Int
}

/// One `tls[]` rule for a listener: its match entries (OR'ed) and weighted destinations.
public struct TLSRouteEntry: Sendable {
    public let name: String
    /// Each applicable `match[]` entry: its SNI patterns and optional port (both must hold).
    let matches: [(sniHosts: [String], port: Int?)]
    public let destinations: WeightedClusters

    init(name: String, route: TLSRoute, listenerGateways: [String], destinations: WeightedClusters) {
        self.name = name
        self.matches = route.match.filter { match in
            match.gateways.isEmpty || match.gateways.contains { listenerGateways.contains($0) }
        }.map { ($0.sniHosts, $0.port) }
        self.destinations = destinations
    }

    public func matches(serverName: String, port: Int) -> Bool {
        self.matches.contains { match in
            (match.port == nil || match.port == port) && match.sniHosts.contains { hostMatches(pattern: $0, host: serverName) }
        }
    }
}
