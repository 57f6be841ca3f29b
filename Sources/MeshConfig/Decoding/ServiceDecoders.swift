/// Service declarations and endpoints: `ServiceEntry`, `WorkloadEntry` and Kubernetes `v1 Service`.

extension Place {
    /// The place of a whole resource: its first line and `Kind/name`.
    init(meta: ResourceMeta, spec: Field) {
        self.init(location: meta.location ?? spec.location, path: meta.pathPrefix)
    }
}

extension PortProtocol {
    /// A protocol as Istio names it (`HTTP`, `GRPC-WEB`, `MONGO`, …; any case). Protocols Meshgate
    /// proxies as bytes map to `.tcp`, gRPC-Web to `.http`; nil for what it cannot carry (UDP).
    init?(istioName: String) {
        switch istioName.uppercased() {
        case "HTTP", "GRPC-WEB", "KUBERNETES.IO/WS": self = .http
        case "HTTP2", "KUBERNETES.IO/H2C", "H2C": self = .http2
        case "HTTPS", "KUBERNETES.IO/WSS": self = .https
        case "GRPC": self = .grpc
        case "TCP", "MONGO", "MYSQL", "REDIS": self = .tcp
        case "TLS": self = .tls
        case "": self = .unknown
        default: return nil
        }
    }
}

/// `kind: WorkloadEntry`, and the same shape inline in `ServiceEntry.endpoints`.
enum WorkloadEntryDecoder {
    static let spec = Schema(["address", "ports", "labels", "serviceAccount", "locality"], unsupported: ["network", "weight"])

    static func decode(meta: ResourceMeta, spec field: Field) -> WorkloadDeclaration? {
        guard let spec = field.map(Self.spec),
              let endpoint = self.endpoint(spec, name: meta.name, namespace: meta.namespace)
        else { return nil }
        return WorkloadDeclaration(endpoint: endpoint, place: Place(meta: meta, spec: field))
    }

    static func endpoint(_ map: MapReader, name: String, namespace: String) -> Endpoint? {
        let address = map.required("address")?.string()
        if address?.isEmpty == true { map.field.error("the address must not be empty") }
        var ports: [String: Int] = [:]
        if let field = map["ports"], let entries = field.entries() {
            for entry in entries {
                let item = Field(node: entry.value, path: field.childPath(entry.key), line: entry.line, context: field.context)
                ports[entry.key] = item.port()
            }
        }
        let labels = map.stringMap("labels") ?? [:]
        let serviceAccount = map.string("serviceAccount")
        var locality = map.string("locality")
        if let text = locality, Locality.segments(text) == nil {
            map["locality"]?.error("invalid locality \"\(text)\"; expected region, region/zone or region/zone/subzone")
            locality = nil
        }
        guard let address, !address.isEmpty else { return nil }
        return Endpoint(
            name: name, namespace: namespace, address: address, ports: ports, labels: labels, serviceAccount: serviceAccount,
            locality: locality
        )
    }
}

/// `kind: ServiceEntry` → one service declaration with a host list.
enum ServiceEntryDecoder {
    static let spec = Schema(
        ["hosts", "ports", "endpoints", "workloadSelector", "resolution", "location"],
        unsupported: ["addresses", "exportTo", "subjectAltNames"]
    )
    static let port = Schema(["number", "name", "protocol", "targetPort"])
    static let workloadSelector = Schema(["labels"])

    static func decode(meta: ResourceMeta, spec field: Field) -> ServiceDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        let sink = field.context.sink
        let hosts = self.hosts(spec, namespace: meta.namespace)
        let ports = self.ports(spec)
        let resolution = spec["resolution"]?.oneOf([
            "NONE": ServiceResolution.none, "STATIC": .static, "DNS": .dns, "DNS_ROUND_ROBIN": .dnsRoundRobin,
        ]) ?? ServiceResolution.none
        let location = spec["location"]?.oneOf([
            "MESH_EXTERNAL": ServiceLocation.meshExternal, "MESH_INTERNAL": .meshInternal,
        ]) ?? .meshExternal
        let endpointMaps = spec.maps("endpoints", WorkloadEntryDecoder.spec) ?? []
        let portNames = Set(ports.map(\.name))
        let endpoints = endpointMaps.enumerated().compactMap { index, map -> Endpoint? in
            if let field = map["ports"], let entries = field.entries() {
                for entry in entries where !portNames.contains(entry.key) {
                    sink.error(
                        at: field.context.location(entry.line), path: field.childPath(entry.key),
                        "the ServiceEntry has no port named '\(entry.key)'"
                    )
                }
            }
            return WorkloadEntryDecoder.endpoint(map, name: "\(meta.name)[\(index)]", namespace: meta.namespace)
        }
        let selector = spec.map("workloadSelector", Self.workloadSelector).map { $0.stringMap("labels") ?? [:] }
        if selector != nil, spec["endpoints"] != nil {
            sink.error(at: spec.place(of: "workloadSelector"), "set either workloadSelector or endpoints, not both")
        }
        if resolution == .none, !endpointMaps.isEmpty {
            sink.error(at: spec.place(of: "endpoints"), "resolution NONE takes no endpoints (use STATIC or DNS)")
        }
        if resolution != .none, hosts.count > 1, ports.contains(where: { ![.http, .http2, .https, .grpc, .tls].contains($0.protocol) }) {
            sink.error(
                at: spec.place(of: "hosts"),
                "several hosts with a non-HTTP, non-TLS port cannot be told apart; use one ServiceEntry per host"
            )
        }
        return ServiceDeclaration(
            meta: meta, hosts: hosts, ports: ports, resolution: resolution, location: location,
            inlineEndpoints: endpoints, selector: selector, place: Place(meta: meta, spec: field)
        )
    }

    private static func hosts(_ spec: MapReader, namespace: String) -> [(fqdn: String, place: Place)] {
        guard let field = spec.required("hosts"), let hosts = field.strings() else { return [] }
        if hosts.isEmpty { field.error("a ServiceEntry needs at least one host") }
        return hosts.compactMap { host, item in
            guard !host.isEmpty, host != "*" else {
                item.error("invalid host \"\(host)\"")
                return nil
            }
            return (resolveHost(host, namespace: namespace), item.place)
        }
    }

    private static func ports(_ spec: MapReader) -> [ServicePort] {
        guard let field = spec["ports"], let maps = field.maps(Self.port) else {
            spec.field.warning("a ServiceEntry without ports gives nothing to route to")
            return []
        }
        var ports: [ServicePort] = []
        for map in maps {
            let number = map.required("number")?.port()
            let name = map.required("name")?.string()
            let targetPort = map["targetPort"]?.port()
            var proto = PortProtocol.unknown
            if let field = map["protocol"], let text = field.string() {
                if let parsed = PortProtocol(istioName: text) {
                    proto = parsed
                } else {
                    field.error("unsupported protocol \"\(text)\"")
                }
            }
            guard let number, let name else { continue }
            if ports.contains(where: { $0.name == name }) {
                map.field.error("port name '\(name)' is already defined")
            } else if ports.contains(where: { $0.number == number }) {
                map.field.error("port \(number) is already defined")
            } else {
                ports.append(ServicePort(number: number, name: name, protocol: proto, targetPort: targetPort))
            }
        }
        return ports
    }
}

/// Kubernetes `apiVersion: v1, kind: Service`, read as a service declaration.
enum KubernetesServiceDecoder {
    /// Kubernetes prunes unknown fields, so they are warnings here, not errors.
    static let spec = Schema(
        ["ports", "selector"],
        unsupported: ["externalName", "externalIPs", "loadBalancerIP", "loadBalancerSourceRanges", "sessionAffinityConfig"],
        ignored: [
            "type", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "sessionAffinity",
            "internalTrafficPolicy", "externalTrafficPolicy", "publishNotReadyAddresses",
            "allocateLoadBalancerNodePorts", "loadBalancerClass", "healthCheckNodePort", "trafficDistribution",
        ],
        unknownSeverity: .warning
    )
    static let port = Schema(
        ["name", "port", "targetPort", "protocol", "appProtocol"], ignored: ["nodePort"], unknownSeverity: .warning
    )

    static func decode(meta: ResourceMeta, spec field: Field) -> ServiceDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        let ports = spec.required("ports")?.maps(Self.port)?.compactMap(self.port) ?? []
        let fqdn = "\(meta.name).\(meta.namespace).\(clusterDomainSuffix)"
        return ServiceDeclaration(
            meta: meta, hosts: [(fqdn, Place(meta: meta, spec: field))], ports: ports, resolution: .static,
            location: .meshInternal, inlineEndpoints: [], selector: spec.stringMap("selector"),
            place: Place(meta: meta, spec: field)
        )
    }

    private static func port(_ map: MapReader) -> ServicePort? {
        let number = map.required("port")?.port()
        let name = map.string("name") ?? ""
        if let field = map["protocol"], let l4 = field.string(), l4.uppercased() != "TCP" {
            field.warning("Meshgate proxies TCP only; this \(l4) port is ignored")
            return nil
        }
        var targetPort: Int?
        if let field = map["targetPort"] {
            if case .scalar(let text, .string) = field.node.value {
                field.warning("a named targetPort ('\(text)') is not supported; the endpoints get port \(number.map(String.init) ?? "port")")
            } else {
                targetPort = field.port()
            }
        }
        guard let number else { return nil }
        return ServicePort(number: number, name: name, protocol: self.portProtocol(map, name: name), targetPort: targetPort)
    }

    /// `appProtocol`, else the port name's prefix (`http-web` → HTTP), else unknown (sniffed).
    private static func portProtocol(_ map: MapReader, name: String) -> PortProtocol {
        if let appProtocol = map.string("appProtocol") {
            return PortProtocol(istioName: appProtocol) ?? .unknown
        }
        let prefix = name.split(separator: "-", maxSplits: 1).first.map(String.init) ?? ""
        return PortProtocol(istioName: prefix) ?? .unknown
    }
}
