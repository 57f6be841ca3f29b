/// `kind: AuthorizationPolicy` (security.istio.io v1beta1 and v1) → ``AuthorizationPolicy``, each
/// value checked as istiod's validation checks it: CIDR blocks, ports, `when` keys, match forms.
enum AuthorizationPolicyDecoder {
    static let spec = Schema(["selector", "targetRef", "targetRefs", "action", "provider", "rules"])
    static let selector = Schema(["matchLabels"])
    static let targetRef = Schema(["group", "kind", "name", "namespace"])
    static let provider = Schema(["name"])
    static let rule = Schema(["from", "to", "when"])
    static let from = Schema(["source"])
    static let to = Schema(["operation"])
    static let source = Schema([
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
        "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts",
    ])
    static let operation = Schema(["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"])
    static let condition = Schema(["key", "values", "notValues"])
    static let actions: KeyValuePairs<String, AuthorizationPolicy.Action> = [
        "ALLOW": .allow, "DENY": .deny, "AUDIT": .audit, "CUSTOM": .custom,
    ]
    /// The annotation that makes a policy dry-run (Istio's).
    static let dryRunAnnotation = "istio.io/dry-run"

    static func decode(meta: ResourceMeta, spec field: Field, annotations: [String: String]) -> AuthorizationPolicy? {
        guard let spec = field.map(Self.spec) else { return nil }
        let selector = spec.map("selector", Self.selector).map { $0.stringMap("matchLabels") ?? [:] }
        let targets = self.targetGateways(spec)
        if selector != nil, spec["targetRef"] != nil || spec["targetRefs"] != nil {
            spec.field.error("set either selector or targetRef(s), not both")
        }
        let action = spec["action"]?.oneOf(Self.actions) ?? .allow
        let provider = spec.map("provider", Self.provider)?.required("name")?.string()
        if action == .custom, provider == nil {
            spec.field.error("a CUSTOM policy needs provider.name (an extensionProviders entry in meshgate.yaml)")
        } else if action != .custom, spec["provider"] != nil {
            spec["provider"]?.error("provider is only for action CUSTOM")
        }
        let rules = spec.maps("rules", Self.rule)?.map(self.rule) ?? []
        var dryRun = false
        if let value = annotations[Self.dryRunAnnotation] {
            switch value {
            case "true": dryRun = true
            case "false": dryRun = false
            default: field.warning("annotation \(Self.dryRunAnnotation) is \"\(value)\"; expected \"true\" or \"false\" (read as false)")
            }
            if dryRun, action == .custom || action == .audit {
                field.warning("dry-run applies to ALLOW and DENY policies; this \(action.rawValue) policy is enforced as usual")
                dryRun = false
            }
        }
        return AuthorizationPolicy(
            meta: meta, selector: selector, targetGateways: targets, action: action, provider: provider, rules: rules, dryRun: dryRun
        )
    }

    /// `targetRef` / `targetRefs` entries of kind `Gateway`: the gateways (by name) the policy attaches to.
    static func targetGateways(_ spec: MapReader) -> [String] {
        var references = spec.map("targetRef", Self.targetRef).map { [$0] } ?? []
        references += spec.maps("targetRefs", Self.targetRef) ?? []
        return references.compactMap { reference in
            guard let kind = reference.required("kind")?.string(), let name = reference.required("name")?.string() else { return nil }
            guard kind == "Gateway" else {
                reference["kind"]?.error("Meshgate attaches policies to a Gateway by targetRef; \(kind) needs a selector instead")
                return nil
            }
            return name
        }
    }

    private static func rule(_ rule: MapReader) -> AuthorizationRule {
        AuthorizationRule(
            from: rule.maps("from", Self.from)?.compactMap { $0.required("source")?.map(Self.source).map(self.source) } ?? [],
            to: rule.maps("to", Self.to)?.compactMap { $0.required("operation")?.map(Self.operation).map(self.operation) } ?? [],
            when: rule.maps("when", Self.condition)?.compactMap(self.condition) ?? []
        )
    }

    private static func source(_ source: MapReader) -> AuthorizationSource {
        var out = AuthorizationSource()
        out.principals = StringMatchSet(self.principals(source["principals"]), not: self.principals(source["notPrincipals"]))
        // `ns/sa` → the principal of that service account in any trust domain.
        out.principals.values += self.serviceAccounts(source["serviceAccounts"])
        out.principals.notValues += self.serviceAccounts(source["notServiceAccounts"])
        out.requestPrincipals = self.matchSet(source, "requestPrincipals")
        out.namespaces = self.matchSet(source, "namespaces")
        out.ipBlocks = CIDRMatchSet(self.blocks(source["ipBlocks"]), not: self.blocks(source["notIpBlocks"]))
        out.remoteIPBlocks = CIDRMatchSet(self.blocks(source["remoteIpBlocks"]), not: self.blocks(source["notRemoteIpBlocks"]))
        return out
    }

    private static func operation(_ operation: MapReader) -> AuthorizationOperation {
        var out = AuthorizationOperation()
        out.hosts = self.matchSet(operation, "hosts")
        out.ports = self.ports(operation["ports"])
        out.notPorts = self.ports(operation["notPorts"])
        out.methods = self.matchSet(operation, "methods")
        out.paths = StringMatchSet(self.paths(operation["paths"]), not: self.paths(operation["notPaths"]))
        return out
    }

    private static func condition(_ condition: MapReader) -> AuthorizationCondition? {
        guard let keyField = condition.required("key"), let text = keyField.string() else { return nil }
        let values = self.strings(condition["values"])
        let notValues = self.strings(condition["notValues"])
        if values.isEmpty, notValues.isEmpty {
            condition.field.error("a condition needs values or notValues")
        }
        guard let key = self.conditionKey(text, keyField) else { return nil }
        var blocks = CIDRMatchSet()
        if key.isAddress {
            blocks = CIDRMatchSet(self.blocks(condition["values"]), not: self.blocks(condition["notValues"]))
        } else if key == .destinationPort {
            _ = self.ports(condition["values"]) + self.ports(condition["notValues"])
        }
        return AuthorizationCondition(key: key, values: StringMatchSet(values, not: notValues), blocks: blocks)
    }

    static let plainKeys: [String: ConditionKey] = [
        "source.ip": .sourceIP, "remote.ip": .remoteIP, "source.namespace": .sourceNamespace,
        "source.principal": .sourcePrincipal, "request.auth.principal": .requestAuthPrincipal,
        "request.auth.audiences": .requestAuthAudiences, "request.auth.presenter": .requestAuthPresenter,
        "destination.ip": .destinationIP, "destination.port": .destinationPort, "connection.sni": .connectionSNI,
    ]

    private static func conditionKey(_ text: String, _ field: Field) -> ConditionKey? {
        if let key = self.plainKeys[text] { return key }
        if text.hasPrefix("request.headers[") {
            guard let names = self.brackets(text.dropFirst("request.headers".count)), names.count == 1, !names[0].isEmpty else {
                field.error("expected request.headers[NAME]")
                return nil
            }
            return .requestHeader(names[0].lowercased())
        }
        if text.hasPrefix("request.auth.claims[") {
            guard let names = self.brackets(text.dropFirst("request.auth.claims".count)), !names.contains(where: \.isEmpty) else {
                field.error("expected request.auth.claims[NAME] or nested request.auth.claims[NAME][NAME]…")
                return nil
            }
            return .requestAuthClaims(names)
        }
        if text.hasPrefix("experimental.envoy.filters.") {
            field.error("\(text) is an experimental Envoy key Meshgate does not read")
            return nil
        }
        let known = Array(self.plainKeys.keys) + ["request.headers[…]", "request.auth.claims[…]"]
        let hint = closestName(to: text, among: known).map { " (did you mean \($0)?)" } ?? ""
        field.error("unknown condition key '\(text)'\(hint)")
        return nil
    }

    /// `[a][b]` → ["a", "b"]; nil when not a sequence of bracketed names.
    private static func brackets(_ text: Substring) -> [String]? {
        var rest = text
        var names: [String] = []
        while !rest.isEmpty {
            guard rest.first == "[", let close = rest.firstIndex(of: "]") else { return nil }
            names.append(String(rest[rest.index(after: rest.startIndex)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names.isEmpty ? nil : names
    }

    private static func strings(_ field: Field?) -> [String] {
        field?.strings()?.map(\.value) ?? []
    }

    private static func matchSet(_ map: MapReader, _ key: String) -> StringMatchSet {
        let negated = "not" + key.prefix(1).uppercased() + key.dropFirst()
        return StringMatchSet(self.strings(map[key]), not: self.strings(map[negated]))
    }

    private static func principals(_ field: Field?) -> [String] {
        (field?.strings() ?? []).map { value, item in
            if value.hasPrefix("spiffe://") {
                item.warning(
                    "principals are written without the spiffe:// scheme (cluster.local/ns/NS/sa/SA), as Istio matches them; this entry never matches"
                )
            }
            return value
        }
    }

    private static func serviceAccounts(_ field: Field?) -> [String] {
        (field?.strings() ?? []).compactMap { value, item in
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !value.contains("*") else {
                item.error("expected NAMESPACE/SERVICE_ACCOUNT with no wildcard")
                return nil
            }
            return "*/ns/\(parts[0])/sa/\(parts[1])"
        }
    }

    private static func blocks(_ field: Field?) -> [CIDR] {
        (field?.strings() ?? []).compactMap { value, item in
            guard let block = CIDR(value) else {
                item.error("'\(value)' is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32, 127.0.0.1)")
                return nil
            }
            return block
        }
    }

    private static func ports(_ field: Field?) -> [Int] {
        (field?.strings() ?? []).compactMap { value, item in
            guard let port = Int(value), (1...65535).contains(port) else {
                item.error("'\(value)' is not a port (1..65535)")
                return nil
            }
            return port
        }
    }

    private static func paths(_ field: Field?) -> [String] {
        (field?.strings() ?? []).compactMap { value, item in
            if value.contains("{") {
                item.error("path templates ({*}, {**}) are not supported yet; use a prefix (/api/*) or suffix (*.json) match")
                return nil
            }
            if value.dropFirst().dropLast().contains("*") {
                item.error("'*' matches only at the start (suffix match) or the end (prefix match) of a path, or alone")
                return nil
            }
            return value
        }
    }
}
