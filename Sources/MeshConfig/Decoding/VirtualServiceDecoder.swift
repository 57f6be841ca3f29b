/// `kind: VirtualService` → ``VirtualService``, recording every gateway reference and destination
/// with its place for validation.
struct VirtualServiceDecoder {
    static let spec = Schema(["hosts", "gateways", "http", "tcp", "tls"], unsupported: ["exportTo"])
    /// HTTP route actions other than `route`: valid, not run yet.
    static let otherActions: Set = ["redirect", "directResponse", "delegate"]
    static let httpRoute = Schema(
        ["name", "match", "route", "rewrite", "timeout", "headers"],
        unsupported: otherActions.union([
            "retries", "fault", "mirror", "mirrors", "mirrorPercentage", "mirrorPercent",
            "mirror_percent", "corsPolicy",
        ])
    )
    static let headers = Schema(["request", "response"])
    static let headerOperations = Schema(["set", "add", "remove"])
    static let rewrite = Schema(["uri", "authority"], unsupported: ["uriRegexRewrite"])
    static let httpMatch = Schema(
        ["name", "uri", "ignoreUriCase", "method", "authority", "headers", "withoutHeaders", "queryParams", "port", "gateways"],
        unsupported: ["scheme", "sourceLabels", "sourceNamespace", "statPrefix"]
    )
    static let httpDestination = Schema(["destination", "weight"], unsupported: ["headers"])
    /// A `tcp[]` or `tls[]` rule.
    static let l4Route = Schema(["match", "route"])
    static let l4Destination = Schema(["destination", "weight"])
    static let l4Match = Schema(
        ["port", "gateways", "sourceLabels"],
        unsupported: ["destinationSubnets", "sourceNamespace"],
        refused: Dictionary(uniqueKeysWithValues: ["sniHosts", "authority", "hosts", "uri", "headers"].map { key in
            (
                key,
                "a tcp route cannot match '\(key)': plain TCP carries no host name, so only port, gateways and "
                    + "sourceLabels can be matched; to route by host name, use a Gateway server with protocol TLS "
                    + "and a VirtualService tls route matching sniHosts (or an http route for HTTP)"
            )
        })
    )
    static let tlsMatch = Schema(
        ["sniHosts", "port", "gateways"],
        unsupported: ["destinationSubnets", "sourceLabels", "sourceNamespace"]
    )
    static let destination = Schema(["host", "subset", "port"])
    static let portSelector = Schema(["number"])

    private let meta: ResourceMeta
    private var references: [GatewayReference] = []
    private var destinations: [DestinationUse] = []

    static func decode(meta: ResourceMeta, spec field: Field) -> VirtualServiceDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        var decoder = VirtualServiceDecoder(meta: meta)
        let (written, hosts) = decoder.hosts(spec)
        // No gateways (omitted or empty) means the mesh, as in Istio.
        let listed = spec["gateways"].flatMap { decoder.gatewayList($0) } ?? []
        let gateways = listed.isEmpty ? ["mesh"] : listed
        if gateways.contains("mesh"), hosts.contains("*") {
            field.context.sink.error(
                at: spec.place(of: "hosts"),
                "host \"*\" is only allowed when the VirtualService is not bound to the mesh (set gateways)"
            )
        }
        let http = spec["http"]?.maps(Self.httpRoute)?.compactMap { decoder.httpRoute($0) } ?? []
        let tcpRules = spec["tcp"]?.maps(Self.l4Route) ?? []
        let tcp = tcpRules.map { decoder.tcpRoute($0) }
        let tlsRules = spec["tls"]?.maps(Self.l4Route) ?? []
        let tls = tlsRules.map { decoder.tlsRoute($0, within: (written, hosts)) }
        if spec["http"] == nil, spec["tcp"] == nil, spec["tls"] == nil {
            field.error("a VirtualService needs http, tcp or tls routes")
        }
        return VirtualServiceDeclaration(
            virtualService: VirtualService(meta: meta, hosts: hosts, gateways: gateways, http: http, tcp: tcp, tls: tls),
            hosts: spec.place(of: "hosts"),
            gatewayReferences: decoder.references,
            destinations: decoder.destinations,
            tcpRules: tcpRules.map(\.place),
            tlsRules: tlsRules.map(\.place)
        )
    }

    private init(meta: ResourceMeta) {
        self.meta = meta
    }

    /// The hosts as written and resolved.
    private func hosts(_ spec: MapReader) -> (written: [String], resolved: [String]) {
        guard let field = spec.required("hosts"), let hosts = field.strings() else { return ([], []) }
        if hosts.isEmpty { field.error("a VirtualService needs at least one host") }
        let written = hosts.compactMap { host, item -> String? in
            guard !host.isEmpty else {
                item.error("empty host")
                return nil
            }
            return host
        }
        return (written, written.map { resolveHost($0, namespace: self.meta.namespace) })
    }

    /// Gateway names resolved to `namespace/name` (`mesh` stays), each reference recorded.
    private mutating func gatewayList(_ field: Field) -> [String]? {
        field.strings()?.map { name, item in
            let resolved = name == "mesh" || name.contains("/") ? name : "\(self.meta.namespace)/\(name)"
            self.references.append(GatewayReference(name: resolved, place: item.place))
            return resolved
        }
    }

    // MARK: HTTP

    private mutating func httpRoute(_ route: MapReader) -> HTTPRoute? {
        let matches = route["match"]?.maps(Self.httpMatch)?.map { self.httpMatch($0) } ?? []
        var destinations: [RouteDestination] = []
        if let field = route["route"] {
            destinations = self.routeDestinations(field, schema: Self.httpDestination)
            if let other = ["redirect", "directResponse"].first(where: { route[$0] != nil }) {
                route.field.error("an http route has either route or \(other), not both")
            }
        } else if Self.otherActions.allSatisfy({ route[$0] == nil }) {
            route.field.error("an http route needs route (or redirect, directResponse or delegate)")
        }
        let rewrite = route.map("rewrite", Self.rewrite).map { rewrite in
            HTTPRewrite(uri: rewrite.string("uri"), authority: rewrite.string("authority"))
        }
        if let uri = rewrite?.uri, !uri.hasPrefix("/") {
            route["rewrite"]?.error("rewrite.uri must start with /, not \"\(uri)\"")
        }
        let headers = route.map("headers", Self.headers)
        return HTTPRoute(
            name: route.string("name"), match: matches, route: destinations, rewrite: rewrite, timeout: route.duration("timeout"),
            requestHeaders: headers?.map("request", Self.headerOperations).map(self.headerOperations),
            responseHeaders: headers?.map("response", Self.headerOperations).map(self.headerOperations),
            location: route.location
        )
    }

    private func headerOperations(_ operations: MapReader) -> HeaderOperations {
        func pairs(_ key: String) -> [HeaderOperations.Pair] {
            (operations.stringMap(key) ?? [:]).map { HeaderOperations.Pair(name: $0.key.lowercased(), value: $0.value) }
                .sorted { $0.name < $1.name }
        }
        let remove = operations["remove"]?.strings()?.map { $0.value.lowercased() } ?? []
        return HeaderOperations(set: pairs("set"), add: pairs("add"), remove: remove)
    }

    private mutating func httpMatch(_ match: MapReader) -> HTTPMatchRequest {
        HTTPMatchRequest(
            name: match.string("name"),
            uri: match["uri"].flatMap { StringMatchDecoder.required($0) },
            ignoreUriCase: match.bool("ignoreUriCase") ?? false,
            method: match["method"].flatMap { StringMatchDecoder.required($0) },
            authority: match["authority"].flatMap { StringMatchDecoder.required($0) },
            headers: match["headers"].map { StringMatchDecoder.named($0, lowercased: true) } ?? [],
            withoutHeaders: match["withoutHeaders"].map { StringMatchDecoder.named($0, lowercased: true) } ?? [],
            queryParams: match["queryParams"].map { StringMatchDecoder.named($0, lowercased: false, prefix: false) } ?? [],
            port: match["port"]?.port(),
            gateways: match["gateways"].flatMap { self.gatewayList($0) } ?? []
        )
    }

    // MARK: TCP

    private mutating func tcpRoute(_ route: MapReader) -> TCPRoute {
        let matches = route["match"]?.maps(Self.l4Match)?.map { match in
            L4Match(
                port: match["port"]?.port(),
                gateways: match["gateways"].flatMap { self.gatewayList($0) } ?? [],
                sourceLabels: match.stringMap("sourceLabels") ?? [:]
            )
        }
        let destinations = route.required("route").map { self.routeDestinations($0, schema: Self.l4Destination) }
        return TCPRoute(match: matches ?? [], route: destinations ?? [], location: route.location)
    }

    // MARK: TLS

    /// A `tls[]` rule: SNI matches (required) and weighted destinations, as a tcp rule's.
    private mutating func tlsRoute(_ route: MapReader, within hosts: (written: [String], resolved: [String])) -> TLSRoute {
        let matchField = route.required("match")
        let matches = matchField?.maps(Self.tlsMatch)?.map { match in
            TLSMatch(
                sniHosts: self.sniHosts(match, within: hosts),
                port: match["port"]?.port(),
                gateways: match["gateways"].flatMap { self.gatewayList($0) } ?? []
            )
        }
        if let matchField, matches?.isEmpty == true {
            matchField.error("a tls route needs at least one match with sniHosts")
        }
        let destinations = route.required("route").map { self.routeDestinations($0, schema: Self.l4Destination) }
        return TLSRoute(match: matches ?? [], route: destinations ?? [], location: route.location)
    }

    /// `sniHosts`: required and non-empty; each an exact name, `*.suffix` or `*`, and within the
    /// VirtualService's hosts (Istio: "SNI host is not a compatible subset of any of the virtual
    /// service hosts").
    private func sniHosts(_ match: MapReader, within hosts: (written: [String], resolved: [String])) -> [String] {
        guard let field = match.required("sniHosts"), let written = field.strings() else { return [] }
        if written.isEmpty { field.error("a tls match needs at least one SNI host") }
        return written.compactMap { host, item in
            if let problem = Self.sniHostProblem(host) {
                item.error("invalid SNI host \"\(host)\": \(problem)")
                return nil
            }
            let patterns = hosts.written + hosts.resolved
            if !patterns.isEmpty, !patterns.contains(where: { hostMatches(pattern: $0, host: host) }) {
                let listed = hosts.written.joined(separator: ", ")
                item.error("SNI host \(host) is not within the VirtualService's hosts (\(listed)); each sniHost must be one of them or fall under a wildcard among them")
                return nil
            }
            return host
        }
    }

    /// Why `host` cannot be matched against a TLS server name (nil when it can).
    static func sniHostProblem(_ host: String) -> String? {
        if host.isEmpty { return "empty" }
        if host == "*" { return nil }
        let name = host.hasPrefix("*.") ? host.dropFirst(2) : Substring(host)
        if name.contains("*") { return "a wildcard is only allowed as the whole first label, as in *.example.com" }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.contains(where: \.isEmpty) { return "empty label" }
        let allowed = labels.allSatisfy { label in label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") } }
        return allowed ? nil : "a host name holds letters, digits, '-' and '.'"
    }

    // MARK: Destinations

    /// `route[]` with its weights: a lone destination gets 100; several must sum to 100, a missing
    /// weight counting as 0 (Istio's rule).
    private mutating func routeDestinations(_ field: Field, schema: Schema) -> [RouteDestination] {
        guard let items = field.maps(schema) else { return [] }
        if items.isEmpty { field.error("a route needs at least one destination") }
        var result: [RouteDestination] = []
        var sum = 0
        var weightsValid = true
        for item in items {
            var weight = 0
            if let field = item["weight"] {
                if let value = field.int(in: 0...100) { weight = value } else { weightsValid = false }
            }
            sum += weight
            if let destination = item.required("destination")?.map(Self.destination).flatMap({ self.destination($0) }) {
                result.append(RouteDestination(destination: destination, weight: weight))
            }
        }
        if items.count == 1, !result.isEmpty {
            result[0].weight = 100
        } else if items.count > 1, weightsValid, sum != 100 {
            field.error("weights sum to \(sum), not 100")
        }
        return result
    }

    private mutating func destination(_ destination: MapReader) -> Destination? {
        guard let hostField = destination.required("host"), let host = hostField.string() else { return nil }
        guard !host.isEmpty, host != "*" else {
            hostField.error("invalid destination host \"\(host)\"; name a service")
            return nil
        }
        var port: Int?
        if let field = destination["port"] {
            if case .scalar(let text, .int) = field.node.value {
                field.error("port is a map: write port: {number: \(text)}")
                return nil
            }
            guard let number = field.map(Self.portSelector)?.required("number")?.port() else { return nil }
            port = number
        }
        let subset = destination.string("subset")
        let resolved = Destination(host: resolveHost(host, namespace: self.meta.namespace), subset: subset, port: port)
        self.destinations.append(
            DestinationUse(
                destination: resolved, writtenHost: host, host: hostField.place,
                port: destination.place(of: "port"), subset: destination.place(of: "subset")
            )
        )
        return resolved
    }
}

/// Istio's `StringMatch` (`exact`, `prefix` or `regex`) and the maps of them that headers and query
/// parameters use.
enum StringMatchDecoder {
    static let schema = Schema(["exact", "prefix", "regex"])

    /// A match that must name one of its kinds (uri, method, authority).
    static func required(_ field: Field) -> StringMatch? {
        guard case .some(let match) = self.decode(field, prefix: true) else { return nil }
        if match == nil { field.error("set one of exact, prefix or regex") }
        return match
    }

    /// `name: {exact|prefix|regex}` entries; `name: {}` asks only for presence.
    static func named(_ field: Field, lowercased: Bool, prefix: Bool = true) -> [HeaderMatch] {
        guard let entries = field.entries() else { return [] }
        return entries.compactMap { entry in
            let item = Field(node: entry.value, path: field.childPath(entry.key), line: entry.line, context: field.context)
            if entry.key.isEmpty { item.error("empty name") }
            let match: StringMatch??
            if entry.value.isNull {
                match = .some(nil)
            } else {
                match = self.decode(item, prefix: prefix)
            }
            guard case .some(let value) = match, !entry.key.isEmpty else { return nil }
            return HeaderMatch(name: lowercased ? entry.key.lowercased() : entry.key, match: value)
        }
    }

    /// nil when invalid (reported); `.some(nil)` for an empty match.
    private static func decode(_ field: Field, prefix allowPrefix: Bool) -> StringMatch?? {
        if case .scalar(let text, _) = field.node.value {
            field.error("expected a map such as {exact: \(text)}, got \(field.node.kindDescription)")
            return nil
        }
        guard let map = field.map(Self.schema) else { return nil }
        let kinds = ["exact", "prefix", "regex"].filter { map[$0] != nil }
        if kinds.count > 1 {
            field.error("set only one of exact, prefix or regex, not \(kinds.joined(separator: " and "))")
            return nil
        }
        guard let kind = kinds.first, let valueField = map[kind], let value = valueField.string() else {
            return kinds.isEmpty ? .some(nil) : nil
        }
        switch kind {
        case "exact":
            return .exact(value)
        case "prefix":
            guard allowPrefix else {
                valueField.error("query parameters match exact or regex only, not prefix")
                return nil
            }
            return .prefix(value)
        default:
            do {
                _ = try RE2Regex(value)
            } catch {
                valueField.error("\(error)")
                return nil
            }
            return .regex(value)
        }
    }
}
