/// `kind: Gateway` → ``Gateway``.
enum GatewayDecoder {
    static let spec = Schema(["selector", "servers"])
    static let server = Schema(["port", "hosts", "tls", "name"], unsupported: ["bind", "defaultEndpoint"])
    static let port = Schema(["number", "name", "protocol"], unsupported: ["targetPort"])

    /// Protocols Istio accepts on a gateway that Meshgate proxies as plain TCP.
    static let tcpLikeProtocols: Set = ["MYSQL", "REDIS"]

    static func decode(meta: ResourceMeta, spec field: Field) -> GatewayDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        let selector = spec.stringMap("selector") ?? [:]
        var servers: [GatewayServer] = []
        var places: [Place] = []
        var portNames: [String: Int] = [:]
        let serverFields = spec.required("servers")?.maps(Self.server) ?? []
        if let servers = spec["servers"], case .sequence(let items) = servers.node.value, items.isEmpty {
            servers.error("a Gateway needs at least one server")
        }
        for server in serverFields {
            guard let decoded = self.server(server) else { continue }
            if let first = portNames[decoded.portName] {
                field.context.sink.error(
                    at: server.place(of: "port"),
                    "port name '\(decoded.portName)' is already used by servers[\(first)]; port names must be unique within a Gateway"
                )
            } else {
                portNames[decoded.portName] = servers.count
            }
            servers.append(decoded)
            places.append(server.place(of: "port"))
        }
        return GatewayDeclaration(gateway: Gateway(meta: meta, selector: selector, servers: servers), serverPorts: places)
    }

    private static func server(_ server: MapReader) -> GatewayServer? {
        let port = server.required("port")?.map(Self.port)
        let number = port?.required("number")?.port()
        let portName = port?.required("name")?.string()
        let proto = port?.required("protocol").flatMap(self.serverProtocol)
        let hosts = self.hosts(server)
        let name = server.string("name")
        var tls: ServerTLSSettings?
        var httpsRedirect = false
        if let proto {
            (tls, httpsRedirect) = ServerTLSDecoder.decode(server["tls"], protocol: proto)
            if server["tls"] == nil, proto == .https || proto == .tls {
                server.context.sink.error(at: server.place(of: "tls"), "\(proto == .https ? "an" : "a") \(proto.rawValue) server needs tls settings")
            }
        } else {
            _ = server["tls"]?.map(ServerTLSDecoder.schema)  // without a protocol, only its field names can be checked
        }
        guard let number, let portName, let proto, let hosts else { return nil }
        return GatewayServer(
            portNumber: number, portName: portName, protocol: proto, hosts: hosts, name: name,
            httpsRedirect: httpsRedirect, tls: tls
        )
    }

    /// `hosts`, each with any `ns/`, `./` or `*/` prefix removed.
    private static func hosts(_ server: MapReader) -> [String]? {
        guard let field = server.required("hosts"), let written = field.strings() else { return nil }
        if written.isEmpty {
            field.error("a server needs at least one host")
            return nil
        }
        var hosts: [String] = []
        for (host, item) in written {
            let name = host.firstIndex(of: "/").map { String(host[host.index(after: $0)...]) } ?? host
            if name.isEmpty {
                item.error("empty host")
            } else {
                hosts.append(name)
            }
        }
        return hosts.count == written.count ? hosts : nil
    }

    private static func serverProtocol(_ field: Field) -> ServerProtocol? {
        guard let text = field.string() else { return nil }
        let name = text.uppercased()
        if let proto = ServerProtocol(rawValue: name) { return proto }
        if Self.tcpLikeProtocols.contains(name) {
            field.warning("Meshgate proxies \(name) as plain TCP (no \(name) protocol filter)")
            return .tcp
        }
        let known = ServerProtocol.allCases.map(\.rawValue).joined(separator: ", ")
        field.error("invalid protocol \"\(text)\"; expected one of \(known)")
        return nil
    }
}
