/// `kind: DestinationRule` → ``DestinationRule``.
enum DestinationRuleDecoder {
    static let spec = Schema(["host", "trafficPolicy", "subsets"], unsupported: ["exportTo", "workloadSelector"])
    static let trafficPolicy = Schema(
        ["loadBalancer", "connectionPool", "tls", "portLevelSettings"],
        unsupported: ["outlierDetection", "tunnel", "proxyProtocol", "retryBudget"]
    )
    static let portTrafficPolicy = Schema(["port", "loadBalancer", "connectionPool", "tls"], unsupported: ["outlierDetection"])
    static let portSelector = Schema(["number"])
    static let clientTLS = Schema(
        ["mode", "clientCertificate", "privateKey", "caCertificates", "sni", "subjectAltNames", "insecureSkipVerify", "credentialName"],
        unsupported: ["caCrl"]
    )
    static let loadBalancer = Schema(
        ["simple"], unsupported: ["consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"]
    )
    static let connectionPool = Schema(["tcp", "http"])
    static let tcpSettings = Schema(
        ["maxConnections", "connectTimeout"], unsupported: ["tcpKeepalive", "maxConnectionDuration", "idleTimeout"]
    )
    static let httpSettings = Schema(
        ["maxRequestsPerConnection", "idleTimeout", "h2UpgradePolicy", "maxConcurrentStreams"],
        unsupported: ["http1MaxPendingRequests", "http2MaxRequests", "maxRetries", "useClientProtocol"]
    )
    static let subset = Schema(["name", "labels", "trafficPolicy"])

    static func decode(meta: ResourceMeta, spec field: Field) -> DestinationRuleDeclaration? {
        guard let spec = field.map(Self.spec) else { return nil }
        guard let hostField = spec.required("host"), let host = hostField.string() else { return nil }
        if host.isEmpty {
            hostField.error("the host must not be empty; name a service")
        }
        let policy = spec.map("trafficPolicy", Self.trafficPolicy).map(self.trafficPolicy)
        var subsets: [Subset] = []
        var places: [Place] = []
        var names: [String: Int] = [:]
        for subset in spec.maps("subsets", Self.subset) ?? [] {
            guard let name = subset.required("name")?.string() else { continue }
            if let first = names[name] {
                subset.field.error("subset '\(name)' is already defined by subsets[\(first)]")
                continue
            }
            names[name] = subsets.count
            var labels: [String: String] = [:]
            var labelsValid = true
            if let field = subset["labels"] {
                if let map = field.stringMap() { labels = map } else { labelsValid = false }
            }
            if labels.isEmpty, labelsValid {
                subset.field.warning("subset '\(name)' has no labels: it selects every endpoint of the service")
            }
            let subsetPolicy = subset.map("trafficPolicy", Self.trafficPolicy).map(self.trafficPolicy)
            subsets.append(Subset(name: name, labels: labels, trafficPolicy: subsetPolicy))
            places.append(subset.place)
        }
        return DestinationRuleDeclaration(
            rule: DestinationRule(
                meta: meta, host: resolveHost(host, namespace: meta.namespace), trafficPolicy: policy, subsets: subsets
            ),
            host: hostField.place,
            subsets: places
        )
    }

    private static func trafficPolicy(_ policy: MapReader) -> TrafficPolicy {
        let pool = policy.map("connectionPool", Self.connectionPool)
        let tcp = pool?.map("tcp", Self.tcpSettings)
        let http = pool?.map("http", Self.httpSettings)
        var portLevel: [Int: TrafficPolicy] = [:]
        for entry in policy.maps("portLevelSettings", Self.portTrafficPolicy) ?? [] {
            guard let number = entry.required("port")?.map(Self.portSelector)?.required("number")?.port() else { continue }
            if portLevel[number] != nil {
                entry.field.error("port \(number) already has settings")
                continue
            }
            portLevel[number] = self.trafficPolicy(entry)
        }
        // Read so that a bad value is still an error, but not acted on yet (the next issue's circuit
        // breakers and balancing algorithms): said, not dropped in silence.
        let maxConnections = tcp?.int("maxConnections", in: 1...Int(Int32.max))
        if maxConnections != nil { tcp?["maxConnections"]?.warning("not supported yet; ignored (no connection limit applies)") }
        return TrafficPolicy(
            connectTimeout: tcp?["connectTimeout"].flatMap(self.connectTimeout),
            maxConnections: maxConnections,
            maxRequestsPerConnection: http?.int("maxRequestsPerConnection", in: 0...Int(Int32.max)),
            upstreamIdleTimeout: http?.duration("idleTimeout"),
            h2UpgradePolicy: http?["h2UpgradePolicy"]?.oneOf(
                ["DEFAULT": H2UpgradePolicy.default, "DO_NOT_UPGRADE": .doNotUpgrade, "UPGRADE": .upgrade]
            ),
            maxConcurrentStreams: http?.int("maxConcurrentStreams", in: 1...Int(Int32.max)),
            loadBalancer: policy.map("loadBalancer", Self.loadBalancer)?["simple"].flatMap(self.loadBalancer),
            tls: policy.map("tls", Self.clientTLS).flatMap(self.clientTLS),
            portLevel: portLevel
        )
    }

    /// `tls`: the mode, and the files SIMPLE and MUTUAL need (MUTUAL: a client certificate and key).
    private static func clientTLS(_ tls: MapReader) -> ClientTLSSettings? {
        guard let mode = tls.required("mode")?.oneOf(
            ["DISABLE": ClientTLSSettings.Mode.disable, "SIMPLE": .simple, "MUTUAL": .mutual, "ISTIO_MUTUAL": .istioMutual]
        ) else { return nil }
        if tls["credentialName"] != nil {
            tls.field.warning("credentialName applies to gateways reading Kubernetes secrets; name the files with clientCertificate, privateKey and caCertificates")
        }
        let certificate = tls.string("clientCertificate")
        let key = tls.string("privateKey")
        if mode == .mutual, certificate == nil || key == nil {
            tls.field.error("MUTUAL needs clientCertificate and privateKey")
        }
        if mode == .istioMutual || mode == .disable {
            for key in ["clientCertificate", "privateKey", "caCertificates"] where tls[key] != nil {
                tls[key]?.warning("\(key) is ignored with mode \(mode.rawValue)")
            }
        }
        return ClientTLSSettings(
            mode: mode, clientCertificatePath: certificate, privateKeyPath: key, caCertificatesPath: tls.string("caCertificates"),
            sni: tls.string("sni"), subjectAltNames: tls["subjectAltNames"]?.strings()?.map(\.value) ?? [],
            insecureSkipVerify: tls.bool("insecureSkipVerify") ?? false, location: tls.location
        )
    }

    private static func connectTimeout(_ field: Field) -> Duration? {
        guard let timeout = field.duration() else { return nil }
        guard timeout >= .milliseconds(1) else {
            field.error("connectTimeout must be at least 1ms")
            return nil
        }
        return timeout
    }

    private static func loadBalancer(_ field: Field) -> LoadBalancerPolicy? {
        guard let text = field.string() else { return nil }
        switch text {
        case "ROUND_ROBIN": return .roundRobin
        case "RANDOM":
            field.warning("RANDOM is not supported yet; round robin applies")
            return .random
        case "LEAST_REQUEST", "LEAST_CONN":
            field.warning("\(text) is not supported yet; round robin applies")
            return .leastRequest
        case "UNSPECIFIED": return nil
        case "PASSTHROUGH":
            field.warning("PASSTHROUGH is not supported yet; ignored (the default balancing applies)")
            return nil
        default:
            field.error("invalid value \"\(text)\"; expected ROUND_ROBIN, RANDOM, LEAST_REQUEST, LEAST_CONN, UNSPECIFIED or PASSTHROUGH")
            return nil
        }
    }
}
