/// Checks across Gateways and the VirtualServices bound to them.
struct GatewayChecks {
    let gateways: [GatewayDeclaration]
    let sink: DiagnosticSink

    /// One port serves one protocol. Gateways whose selectors could pick the same instance share
    /// their ports; HTTPS and TLS may share a port (both start with a TLS handshake, told apart by SNI).
    func checkPortProtocols() {
        var declared: [(port: Int, protocol: ServerProtocol, gateway: GatewayDeclaration, place: Place)] = []
        for gateway in self.gateways {
            for (server, place) in zip(gateway.gateway.servers, gateway.serverPorts) {
                let clash = declared.first { other in
                    other.port == server.portNumber
                        && other.protocol != server.protocol
                        && !Set([other.protocol, server.protocol]).isSubset(of: [.https, .tls])
                        && Self.selectorsOverlap(other.gateway.gateway.selector, gateway.gateway.selector)
                }
                // The first declaration of a port sets its protocol; a clashing one is reported and
                // not held against later servers.
                guard let clash else {
                    declared.append((server.portNumber, server.protocol, gateway, place))
                    continue
                }
                let owner = clash.gateway.gateway.meta.pathPrefix
                self.sink.error(
                    at: place,
                    "port \(server.portNumber) is declared \(server.protocol.rawValue) here but \(clash.protocol.rawValue) by \(owner) (\(clash.place.location)); one port serves one protocol"
                )
            }
        }
    }

    /// Servers that start with a TLS handshake (HTTPS and TLS) may share a port: SNI tells them
    /// apart, so a host can belong to only one of them per port.
    func checkSNIHosts() {
        var served: [(port: Int, host: String, gateway: GatewayDeclaration, place: Place)] = []
        for gateway in self.gateways {
            for (server, place) in zip(gateway.gateway.servers, gateway.serverPorts) where [.https, .tls].contains(server.protocol) {
                for host in Set(server.hosts.map { $0.lowercased() }).sorted() {
                    let other = served.first { other in
                        other.port == server.portNumber && other.host == host
                            && Self.selectorsOverlap(other.gateway.gateway.selector, gateway.gateway.selector)
                    }
                    guard let other else {
                        served.append((server.portNumber, host, gateway, place))
                        continue
                    }
                    self.sink.error(
                        at: place,
                        "host \(host) on port \(server.portNumber) is already served by \(other.gateway.gateway.meta.pathPrefix) (\(other.place.location)); servers sharing a port are told apart by SNI, so each host belongs to one of them"
                    )
                }
            }
        }
    }

    /// A VirtualService's `tls` routes serve PASSTHROUGH servers only: a server that terminates TLS
    /// routes by its `http` (HTTPS) or `tcp` (TLS) routes, as in Istio. A tls route that meets no
    /// PASSTHROUGH server on a Gateway it is bound to is never used there.
    func checkTLSRoutesBound(_ declaration: VirtualServiceDeclaration) {
        let virtualService = declaration.virtualService
        for (route, place) in zip(virtualService.tls, declaration.tlsRules) {
            var reported: Set<String> = []
            for match in route.match {
                let names = match.gateways.isEmpty ? virtualService.gateways : match.gateways
                for name in names where name != "mesh" {
                    guard let gateway = self.gateways.first(where: { $0.gateway.qualifiedName == name }) else { continue }
                    let passthrough = gateway.gateway.servers.contains { server in
                        server.tls?.mode == .passthrough && match.port.map { $0 == server.portNumber } ?? true
                    }
                    guard !passthrough, reported.insert(name).inserted else { continue }
                    let port = match.port.map { " on port \($0)" } ?? ""
                    self.sink.warning(
                        at: place,
                        "Gateway \(name) has no PASSTHROUGH server\(port), so this tls route is not used there (a server that terminates TLS takes http or tcp routes)"
                    )
                }
            }
        }
    }

    /// Whether one instance could carry labels matching both selectors (no key with two values).
    static func selectorsOverlap(_ lhs: [String: String], _ rhs: [String: String]) -> Bool {
        lhs.allSatisfy { key, value in rhs[key].map { $0 == value } ?? true }
    }

    /// Istio's IST0132: a VirtualService bound to a gateway none of whose server hosts it shares is
    /// never served there; requests get 404.
    func checkHostsServed(_ declaration: VirtualServiceDeclaration) {
        let virtualService = declaration.virtualService
        guard !virtualService.hosts.isEmpty else { return }
        for name in Set(virtualService.gateways).sorted() {
            guard let gateway = self.gateways.first(where: { $0.gateway.qualifiedName == name }) else { continue }
            let serverHosts = gateway.gateway.servers.flatMap(\.hosts)
            let served = virtualService.hosts.contains { host in serverHosts.contains { hostsOverlap(host, $0) } }
            if !served, !serverHosts.isEmpty {
                self.sink.warning(
                    at: declaration.hosts,
                    "none of the hosts (\(virtualService.hosts.joined(separator: ", "))) is served by Gateway \(name) (its hosts: \(Set(serverHosts).sorted().joined(separator: ", "))); requests will get 404 (Istio IST0132)"
                )
            }
        }
    }

    /// TCP routes on one gateway and port can only live in one VirtualService: plain TCP carries no
    /// host name to tell two VirtualServices apart by their `hosts` (istio#19884). Reported on the
    /// later one.
    func checkTCPConflicts(_ declarations: [VirtualServiceDeclaration]) {
        /// gateway → (port or nil for every port, owner, place) of the VirtualServices seen so far.
        var taken: [String: [(port: Int?, owner: String, place: Place)]] = [:]
        let known = Set(self.gateways.map(\.gateway.qualifiedName))
        for declaration in declarations {
            let virtualService = declaration.virtualService
            var mine: [String: [(port: Int?, owner: String, place: Place)]] = [:]
            var reported: Set<String> = []
            for (route, place) in zip(virtualService.tcp, declaration.tcpRules) {
                let matches = route.match.isEmpty ? [L4Match()] : route.match
                for match in matches {
                    let gateways = match.gateways.isEmpty ? virtualService.gateways : match.gateways
                    for gateway in gateways where gateway != "mesh" && known.contains(gateway) {
                        for other in taken[gateway] ?? [] where Self.portsOverlap(other.port, match.port) {
                            let key = "\(place.path) \(other.owner) \(gateway)"
                            guard reported.insert(key).inserted else { continue }
                            let port = (match.port ?? other.port).map { "port \($0)" } ?? "every port"
                            self.sink.error(
                                at: place,
                                "\(other.owner) (\(other.place.location)) already routes TCP on Gateway \(gateway) \(port); plain TCP carries no host name, so two VirtualServices cannot be told apart by their hosts (istio#19884): merge the tcp routes into one VirtualService or use different ports"
                            )
                        }
                        mine[gateway, default: []].append((match.port, virtualService.meta.pathPrefix, place))
                    }
                }
            }
            taken.merge(mine) { $0 + $1 }
        }
    }

    private static func portsOverlap(_ lhs: Int?, _ rhs: Int?) -> Bool {
        guard let lhs, let rhs else { return true }
        return lhs == rhs
    }
}
