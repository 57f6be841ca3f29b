/// `kind: VirtualService` → ``VirtualService``, recording every gateway reference and destination
/// with its place for validation.
struct VirtualServiceDecoder {
    static let spec = Schema(["hosts", "gateways", "http", "tcp", "tls"], unsupported: ["exportTo"])
    /// HTTP route actions other than `route`: the proxy answers itself.
    static let otherActions: Set = ["redirect", "directResponse"]
    static let httpRoute = Schema(
        [
            "name", "match", "route", "rewrite", "timeout", "headers", "delegate", "redirect", "directResponse", "fault", "retries",
            "mirror", "mirrors", "mirrorPercentage", "mirrorPercent", "mirror_percent", "corsPolicy",
        ]
    )
    static let redirect = Schema(["uri", "authority", "port", "derivePort", "scheme", "redirectCode"])
    static let directResponse = Schema(["status", "body"])
    static let httpBody = Schema(["string", "bytes"])
    static let delegate = Schema(["name", "namespace"])
    static let headers = Schema(["request", "response"])
    static let headerOperations = Schema(["set", "add", "remove"])
    static let rewrite = Schema(["uri", "authority", "uriRegexRewrite"])
    static let regexRewrite = Schema(["match", "rewrite"])
    static let httpMatch = Schema(
        ["name", "uri", "ignoreUriCase", "method", "authority", "headers", "withoutHeaders", "queryParams", "port", "gateways"],
        unsupported: ["scheme", "sourceLabels", "sourceNamespace", "statPrefix"]
    )
    static let httpDestination = Schema(["destination", "weight", "headers"])
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
    private var delegations: [Int: Place] = [:]

    static func decode(meta: ResourceMeta, spec field: Field) -> VirtualServiceDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        var decoder = VirtualServiceDecoder(meta: meta)
        // No hosts: a delegate, used only through `http[].delegate` of other VirtualServices.
        let isDelegate = spec["hosts"].map { field in field.list()?.isEmpty == true } ?? true
        let (written, hosts) = isDelegate ? ([], []) : decoder.hosts(spec)
        if isDelegate {
            Self.checkDelegate(spec)
        }
        // No gateways (omitted or empty) means the mesh, as in Istio; a delegate binds to none.
        let listed = isDelegate ? [] : spec["gateways"].flatMap { decoder.gatewayList($0) } ?? []
        let gateways = isDelegate ? [] : listed.isEmpty ? ["mesh"] : listed
        if gateways.contains("mesh"), hosts.contains("*") {
            field.context.sink.error(
                at: spec.place(of: "hosts"),
                "host \"*\" is only allowed when the VirtualService is not bound to the mesh (set gateways)"
            )
        }
        let httpRules = spec["http"]?.maps(Self.httpRoute) ?? []
        let http = httpRules.enumerated().map { index, route in decoder.httpRoute(route, index: index, inDelegate: isDelegate) }
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
            tlsRules: tlsRules.map(\.place),
            delegations: decoder.delegations,
            httpRules: httpRules.map(\.place)
        )
    }

    private init(meta: ResourceMeta) {
        self.meta = meta
    }

    /// A delegate (no hosts) has only http routes and binds to no gateway: Istio rejects the others.
    private static func checkDelegate(_ spec: MapReader) {
        if let gateways = spec["gateways"], gateways.strings()?.isEmpty == false {
            gateways.error("a delegate VirtualService (one without hosts) binds to no gateway; remove gateways, or add hosts to make it a root")
        }
        for key in ["tcp", "tls"] {
            if let field = spec[key], field.list()?.isEmpty == false {
                field.error("a delegate VirtualService (one without hosts) has http routes only, not \(key)")
            }
        }
    }

    /// The hosts as written and resolved.
    private func hosts(_ spec: MapReader) -> (written: [String], resolved: [String]) {
        guard let field = spec["hosts"], let hosts = field.strings() else { return ([], []) }
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

    private mutating func httpRoute(_ route: MapReader, index: Int, inDelegate: Bool) -> HTTPRoute {
        let matches = route["match"]?.maps(Self.httpMatch)?.map { self.httpMatch($0) } ?? []
        var destinations: [RouteDestination] = []
        let delegate = self.delegate(route, index: index, inDelegate: inDelegate)
        if let field = route["route"] {
            destinations = self.routeDestinations(field, schema: Self.httpDestination)
            if let other = ["redirect", "directResponse", "delegate"].first(where: { route[$0] != nil }) {
                route.field.error("an http route has either route or \(other), not both")
            }
        } else if route["delegate"] != nil {
            if let other = Self.otherActions.first(where: { route[$0] != nil }) {
                route.field.error("an http route has either delegate or \(other), not both")
            }
        } else if Self.otherActions.allSatisfy({ route[$0] == nil }) {
            route.field.error("an http route needs route (or redirect, directResponse or delegate)")
        } else if route["redirect"] != nil && route["directResponse"] != nil {
            route.field.error("an http route has either redirect or directResponse, not both")
        }
        let redirect = route.map("redirect", Self.redirect).map(Self.redirect)
        let directResponse = route.map("directResponse", Self.directResponse).flatMap(Self.directResponse)
        let rewrite = route.map("rewrite", Self.rewrite).map { rewrite in
            if rewrite["uri"] != nil && rewrite["uriRegexRewrite"] != nil {
                rewrite.field.error("a rewrite has either uri or uriRegexRewrite, not both")
            }
            return HTTPRewrite(
                uri: rewrite.string("uri"), authority: rewrite.string("authority"),
                uriRegexRewrite: rewrite.map("uriRegexRewrite", Self.regexRewrite).flatMap(Self.regexRewrite)
            )
        }
        if let uri = rewrite?.uri, !uri.hasPrefix("/") {
            route["rewrite"]?.error("rewrite.uri must start with /, not \"\(uri)\"")
        }
        let headers = route.map("headers", Self.headers)
        let timeout = route.duration("timeout")
        return HTTPRoute(
            name: route.string("name"), match: matches, route: destinations, rewrite: rewrite, timeout: timeout,
            requestHeaders: headers?.map("request", Self.headerOperations).map(self.headerOperations),
            responseHeaders: headers?.map("response", Self.headerOperations).map(self.headerOperations),
            delegate: delegate, redirect: redirect, directResponse: directResponse,
            fault: route.map("fault", RoutePolicyDecoder.fault).flatMap(RoutePolicyDecoder.fault),
            retries: route.map("retries", RoutePolicyDecoder.retries).map { RoutePolicyDecoder.retries($0, routeTimeout: timeout) },
            mirrors: self.mirrors(route),
            cors: route.map("corsPolicy", RoutePolicyDecoder.cors).map(RoutePolicyDecoder.cors),
            location: route.location
        )
    }

    /// `uriRegexRewrite: {match, rewrite}`: an RE2 regex and a rewrite whose `\\N` name its groups.
    private static func regexRewrite(_ map: MapReader) -> HTTPRewrite.RegexRewrite? {
        guard let matchField = map.required("match"), let pattern = matchField.string(),
            let rewriteField = map.required("rewrite"), let rewrite = rewriteField.string()
        else { return nil }
        do {
            let regex = try RE2Regex(pattern)
            do {
                try regex.checkRewrite(rewrite)
            } catch {
                rewriteField.error("\(error)")
                return nil
            }
        } catch {
            matchField.error("\(error)")
            return nil
        }
        return HTTPRewrite.RegexRewrite(match: pattern, rewrite: rewrite)
    }

    /// `redirect`: at least one of `uri`, `authority`, `scheme`, `port`, `derivePort` (else it would
    /// send the client back where it came from); `port` and `derivePort` exclude each other.
    private static func redirect(_ redirect: MapReader) -> HTTPRedirect {
        if ["uri", "authority", "scheme", "port", "derivePort"].allSatisfy({ redirect[$0] == nil }) {
            redirect.field.error("a redirect needs uri, authority, scheme, port or derivePort: without one it points back at the request")
        }
        if redirect["port"] != nil && redirect["derivePort"] != nil {
            redirect.field.error("a redirect has either port or derivePort, not both")
        }
        let uri = redirect.string("uri")
        if let uri, !uri.hasPrefix("/") {
            redirect["uri"]?.error("redirect.uri must start with /, not \"\(uri)\"")
        }
        if let authority = redirect.string("authority"), authority.isEmpty || authority.contains(where: { " /?#@".contains($0) }) {
            redirect["authority"]?.error("redirect.authority must be a host name (and port), not \"\(authority)\"")
        }
        let scheme = redirect.string("scheme")
        if let scheme, scheme.isEmpty || !scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }) || !(scheme.first?.isLetter ?? false) {
            redirect["scheme"]?.error("redirect.scheme must be a URI scheme such as http or https, not \"\(scheme)\"")
        }
        let code = redirect["redirectCode"]?.int()
        if let code, ![301, 302, 303, 307, 308].contains(code) {
            redirect["redirectCode"]?.error("redirectCode \(code) is not a redirect; expected 301, 302, 303, 307 or 308")
        }
        return HTTPRedirect(
            uri: uri, authority: redirect.string("authority"), port: redirect["port"]?.port(),
            derivePort: redirect["derivePort"]?.oneOf(
                ["FROM_PROTOCOL_DEFAULT": HTTPRedirect.DerivePort.fromProtocolDefault, "FROM_REQUEST_PORT": .fromRequestPort]
            ) ?? .fromProtocolDefault,
            scheme: scheme?.lowercased(), redirectCode: code.flatMap { [301, 302, 303, 307, 308].contains($0) ? $0 : nil } ?? 301
        )
    }

    /// `directResponse`: a status (200–599, as Istio validates) and an optional `body.string` or
    /// `body.bytes` (base64).
    private static func directResponse(_ response: MapReader) -> HTTPDirectResponse? {
        guard let status = response.required("status")?.int(in: 200...599) else { return nil }
        guard let bodyField = response["body"], let body = bodyField.map(Self.httpBody) else {
            return HTTPDirectResponse(status: status)
        }
        if body["string"] != nil && body["bytes"] != nil {
            bodyField.error("a direct response body has either string or bytes, not both")
        }
        if let text = body.string("string") {
            return HTTPDirectResponse(status: status, body: Array(text.utf8))
        }
        if let encoded = body.string("bytes") {
            guard let data = Base64.decode(encoded) else {
                body["bytes"]?.error("body.bytes must be base64")
                return nil
            }
            return HTTPDirectResponse(status: status, body: data)
        }
        return HTTPDirectResponse(status: status)
    }

    /// `delegate: {name, namespace}` (the namespace defaults to this VirtualService's). Istio
    /// supports one level: a delegate cannot delegate again.
    private mutating func delegate(_ route: MapReader, index: Int, inDelegate: Bool) -> DelegateReference? {
        guard let field = route["delegate"], let map = field.map(Self.delegate) else { return nil }
        guard let name = map.required("name")?.string() else { return nil }
        if inDelegate {
            // Kept, so that a cycle through here is also named.
            field.error("a delegate VirtualService cannot delegate again: Istio supports one level of delegation")
        }
        self.delegations[index] = field.place
        return DelegateReference(name: name, namespace: map.string("namespace") ?? self.meta.namespace)
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

    /// `route[]` with its weights, relative as in current Istio: a lone destination gets 100; several
    /// share the traffic in proportion to their weights (a missing weight counts as 0). A sum other
    /// than 100 is a warning naming it; a sum of 0 is an error (Istio: "total destination weight = 0").
    private mutating func routeDestinations(_ field: Field, schema: Schema) -> [RouteDestination] {
        guard let items = field.maps(schema) else { return [] }
        if items.isEmpty { field.error("a route needs at least one destination") }
        var result: [RouteDestination] = []
        var sum = 0
        var weightsValid = true
        for item in items {
            var weight = 0
            if let field = item["weight"] {
                if let value = Self.weight(field) { weight = value } else { weightsValid = false }
            }
            sum += weight
            if let destination = item.required("destination")?.map(Self.destination).flatMap({ self.destination($0) }) {
                let headers = item.map("headers", Self.headers)
                result.append(
                    RouteDestination(
                        destination: destination, weight: weight,
                        requestHeaders: headers?.map("request", Self.headerOperations).map(self.headerOperations),
                        responseHeaders: headers?.map("response", Self.headerOperations).map(self.headerOperations)
                    )
                )
            }
        }
        if items.count == 1, !result.isEmpty {
            result[0].weight = 100
        } else if items.count > 1, weightsValid, sum == 0 {
            field.error("every weight is 0, so no destination gets any traffic; give at least one a weight (Istio rejects this too: total destination weight = 0)")
        } else if items.count > 1, weightsValid, sum != 100 {
            field.warning("weights sum to \(sum), not 100; they are taken as relative, as Istio does (each destination gets its weight/\(sum) of the traffic)")
        }
        return result
    }

    /// A relative share: 0 or more, an int32 as in Istio's API.
    private static func weight(_ field: Field) -> Int? {
        guard let value = field.int() else { return nil }
        guard value >= 0, value <= Int(Int32.max) else {
            field.error("weight \(value) is \(value < 0 ? "negative" : "too large"); a weight is a relative share from 0 to \(Int32.max)")
            return nil
        }
        return value
    }

    /// A destination, resolved and recorded for validation (an unknown host, port or subset).
    mutating func destination(_ destination: MapReader) -> Destination? {
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
