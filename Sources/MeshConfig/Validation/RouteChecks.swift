/// Cross-references of routes: gateway names, destination hosts, ports and subsets, and the
/// DestinationRules they lean on.
struct RouteChecks {
    let registry: ServiceRegistry
    let gateways: [String: GatewayDeclaration]
    let rules: [DestinationRuleDeclaration]
    let sink: DiagnosticSink

    init(registry: ServiceRegistry, declarations: Declarations, sink: DiagnosticSink) {
        self.registry = registry
        self.gateways = Dictionary(
            declarations.gateways.map { ($0.gateway.qualifiedName, $0) }, uniquingKeysWith: { first, _ in first }
        )
        self.rules = declarations.destinationRules
        self.sink = sink
    }

    func check(_ declaration: VirtualServiceDeclaration) {
        for reference in declaration.gatewayReferences where reference.name != "mesh" && self.gateways[reference.name] == nil {
            let hint = closestName(to: reference.name, among: self.gateways.keys).map { "; did you mean \($0)?" } ?? ""
            self.sink.danglingReference(at: reference.place, "no Gateway \(reference.name) is declared, so nothing is bound to it\(hint)")
        }
        for use in declaration.destinations {
            self.check(use)
        }
    }

    private func check(_ use: DestinationUse) {
        let destination = use.destination
        guard let service = self.registry.service(for: destination.host) else {
            let declared = "no ServiceEntry or Service declares"
            let what = use.writtenHost == destination.host
                ? "\(declared) host \(destination.host)"
                : "host \(use.writtenHost) resolves to \(destination.host), which \(declared)"
            self.sink.danglingReference(at: use.host, what + Self.answers + self.suggestion(for: use))
            return
        }
        let numbers = service.ports.map { String($0.number) }.joined(separator: ", ")
        if let port = destination.port {
            if !service.ports.contains(where: { $0.number == port }) {
                self.sink.danglingReference(
                    at: use.port, "\(service.fqdn) has no port \(port) (its ports: \(numbers.isEmpty ? "none" : numbers))" + Self.answers
                )
            }
        } else if service.ports.count > 1 {
            self.sink.danglingReference(
                at: use.port,
                "\(service.fqdn) has several ports (\(numbers)) and this destination names none: as in Istio, a gateway then uses the port the request came in on (503 NC if the service has no such port), a sidecar the first; choose one with port: {number: …}"
            )
        }
        if let subset = destination.subset {
            guard let rule = self.rule(for: service.fqdn) else {
                self.sink.danglingReference(at: use.subset, "no DestinationRule for \(service.fqdn) defines subset '\(subset)'" + Self.answers)
                return
            }
            if !rule.rule.subsets.contains(where: { $0.name == subset }) {
                let names = rule.rule.subsets.map(\.name).joined(separator: ", ")
                self.sink.danglingReference(
                    at: use.subset,
                    "\(rule.rule.meta.pathPrefix) (\(rule.host.location)) for \(service.fqdn) has no subset '\(subset)' (its subsets: \(names.isEmpty ? "none" : names))"
                        + Self.answers
                )
            }
        }
    }

    /// What a route to an undeclared destination does at run time.
    static let answers = "; requests routed there get 503 (NC, cluster_not_found)"

    /// Another declared host with the same first label, or a close spelling.
    private func suggestion(for use: DestinationUse) -> String {
        let shortName = use.writtenHost.split(separator: ".").first.map(String.init) ?? use.writtenHost
        let sameName = self.registry.hosts.first { $0.split(separator: ".").first.map(String.init) == shortName }
        let guess = sameName ?? closestName(to: use.destination.host, among: self.registry.hosts)
        return guess.map { "; did you mean \($0)?" } ?? ""
    }

    /// The DestinationRule that applies to `host`: an exact host first, else the narrowest wildcard.
    func rule(for host: String) -> DestinationRuleDeclaration? {
        let candidates = self.rules.filter { hostMatches(pattern: $0.rule.host, host: host) }
        return candidates.first { $0.rule.host.lowercased() == host.lowercased() }
            ?? candidates.max { $0.rule.host.count < $1.rule.host.count }
    }

    /// DestinationRules: the host should be a declared service; two rules for one host are one too
    /// many; a subset whose labels select none of the service's endpoints routes into 503s.
    func checkRules() {
        var seen: [String: DestinationRuleDeclaration] = [:]
        for declaration in self.rules {
            let rule = declaration.rule
            if let first = seen[rule.host.lowercased()] {
                self.sink.warning(
                    at: declaration.host,
                    "\(first.rule.meta.pathPrefix) (\(first.host.location)) already applies to \(rule.host); this rule is not used"
                )
                continue
            }
            seen[rule.host.lowercased()] = declaration
            guard !rule.host.hasPrefix("*") else { continue }
            guard let service = self.registry.service(for: rule.host) else {
                self.sink.warning(at: declaration.host, "no ServiceEntry or Service declares host \(rule.host)")
                continue
            }
            guard !service.endpoints.isEmpty else { continue }
            for (subset, place) in zip(rule.subsets, declaration.subsets) where !subset.labels.isEmpty {
                if !service.endpoints.contains(where: { labels($0.labels, match: subset.labels) }) {
                    self.sink.warning(
                        at: place,
                        "subset '\(subset.name)' (\(describe(subset.labels))) selects no endpoint of \(service.fqdn); requests routed to it will get 503"
                    )
                }
            }
        }
    }
}
