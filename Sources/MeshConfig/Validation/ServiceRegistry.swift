/// Every declared service by host, with its endpoints resolved:
/// WorkloadEntries of the same namespace whose labels match the ServiceEntry `workloadSelector` or
/// the Kubernetes Service `selector`, plus the ServiceEntry's inline endpoints.
struct ServiceRegistry {
    private(set) var services: [Service] = []
    /// Lower-cased FQDN → index in `services`.
    private var byHost: [String: Int] = [:]

    init(_ declarations: Declarations, sink: DiagnosticSink) {
        for declaration in declarations.services {
            let selected = Self.selected(by: declaration.selector, namespace: declaration.meta.namespace, in: declarations.workloads)
            for (fqdn, place) in declaration.hosts {
                if let index = self.byHost[fqdn.lowercased()] {
                    let first = self.services[index].meta
                    sink.error(
                        at: place,
                        "host \(fqdn) is already declared by \(first.pathPrefix)\(first.location.map { " (\($0))" } ?? "")"
                    )
                    continue
                }
                var endpoints = declaration.inlineEndpoints + selected
                if endpoints.isEmpty, [.dns, .dnsRoundRobin].contains(declaration.resolution), !fqdn.hasPrefix("*") {
                    // A DNS ServiceEntry without endpoints resolves its own host.
                    endpoints = [Endpoint(name: "\(declaration.meta.name)/\(fqdn)", namespace: declaration.meta.namespace, address: fqdn)]
                }
                if endpoints.isEmpty {
                    sink.warning(at: place, "\(fqdn) has no endpoints\(Self.why(declaration)); requests to it will get 503 (no healthy upstream)")
                }
                self.byHost[fqdn.lowercased()] = self.services.count
                self.services.append(
                    Service(
                        meta: declaration.meta, fqdn: fqdn, ports: declaration.ports, endpoints: endpoints,
                        resolution: declaration.resolution, location: declaration.location
                    )
                )
            }
        }
    }

    func service(for host: String) -> Service? {
        self.byHost[host.lowercased()].map { self.services[$0] }
    }

    var hosts: [String] { self.services.map(\.fqdn) }

    private static func selected(by selector: [String: String]?, namespace: String, in workloads: [WorkloadDeclaration]) -> [Endpoint] {
        guard let selector, !selector.isEmpty else { return [] }
        return workloads.map(\.endpoint).filter { $0.namespace == namespace && labels($0.labels, match: selector) }
    }

    private static func why(_ declaration: ServiceDeclaration) -> String {
        guard let selector = declaration.selector, !selector.isEmpty else {
            return declaration.meta.kind == "Service" ? " (it has no selector)" : ""
        }
        return " (no WorkloadEntry in namespace \(declaration.meta.namespace) has labels \(describe(selector)))"
    }
}

/// Whether `labels` has every key of `selector` with the same value.
func labels(_ labels: [String: String], match selector: [String: String]) -> Bool {
    selector.allSatisfy { labels[$0.key] == $0.value }
}

/// `a=1,b=2`, sorted by key.
func describe(_ labels: [String: String]) -> String {
    labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
}
