/// AuthorizationPolicy checks that need the rest of the configuration: which policies this
/// instance runs (the others are named, as info, so a selector typo does not pass unnoticed), and
/// rules reading HTTP fields where this instance has TCP ports (there they never match in an ALLOW
/// policy, and are left out of a DENY one, as Istio builds them).
enum AuthorizationChecks {
    static func check(_ policies: [AuthorizationPolicy], settings: MeshSettings, gateways: [Gateway], sink: DiagnosticSink) {
        let tcpPorts = gateways
            .filter { gateway in gateway.selector.allSatisfy { settings.labels[$0.key] == $0.value } }
            .flatMap(\.servers).filter { !$0.protocol.isHTTP }.map(\.portNumber)
        let declared = Set(settings.extensionProviders.map(\.name))
        var customProvider: String?
        for policy in policies {
            let path = policy.meta.pathPrefix
            if policy.action == .custom, let provider = policy.provider {
                // Refused, not skipped: a policy that should check requests must not let them through unchecked.
                if !declared.contains(provider) {
                    let known = declared.isEmpty ? "none is declared" : "declared: \(declared.sorted().joined(separator: ", "))"
                    sink.error(at: policy.meta.location, path: "\(path).spec.provider.name", "provider \(provider) is not an extensionProviders entry (envoyExtAuthzHttp) of meshgate.yaml; \(known)")
                }
            }
            guard policy.applies(toNamespace: settings.namespace, labels: settings.labels, name: settings.workloadName, rootNamespace: settings.rootNamespace) else {
                let labels = settings.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                sink.info(
                    at: policy.meta.location, path: path,
                    "selects nothing this instance runs (namespace \(settings.namespace), labels \(labels), workload \(settings.workloadName)); not enforced here"
                )
                continue
            }
            if policy.action == .custom, let provider = policy.provider {
                // Istio's rule: one workload, one external authorizer.
                if let first = customProvider, first != provider {
                    sink.error(at: policy.meta.location, path: "\(path).spec.provider.name", "this instance's CUSTOM policies already use provider \(first); one workload has one external authorizer")
                }
                customProvider = customProvider ?? provider
            }
            guard !tcpPorts.isEmpty else { continue }
            for (index, rule) in policy.rules.enumerated() where rule.usesHTTPOnlyFields {
                let ports = Set(rule.to.flatMap(\.ports))
                let affected = ports.isEmpty ? tcpPorts : tcpPorts.filter(ports.contains)
                guard !affected.isEmpty else { continue }
                let effect = policy.action == .deny
                    ? "its HTTP-only fields are left out there, so it denies more"
                    : "it never matches there"
                sink.warning(
                    at: policy.meta.location, path: "\(path).spec.rules[\(index)]",
                    "reads HTTP-only fields (methods, paths, hosts, request headers, requestPrincipals, request.auth) but TCP port(s) \(affected.map(String.init).joined(separator: ", ")) carry no HTTP request: \(effect), as in Istio"
                )
            }
        }
    }
}
