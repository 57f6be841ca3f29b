/// `kind: DestinationRule` → ``DestinationRule``.
enum DestinationRuleDecoder {
    static let spec = Schema(["host", "trafficPolicy", "subsets"], unsupported: ["exportTo", "workloadSelector"])
    static let trafficPolicy = Schema(
        ["loadBalancer", "connectionPool", "tls", "portLevelSettings", "outlierDetection"],
        unsupported: ["tunnel", "proxyProtocol", "retryBudget"]
    )
    static let portTrafficPolicy = Schema(["port", "loadBalancer", "connectionPool", "tls", "outlierDetection"])
    static let portSelector = Schema(["number"])
    static let clientTLS = Schema(
        ["mode", "clientCertificate", "privateKey", "caCertificates", "sni", "subjectAltNames", "insecureSkipVerify", "credentialName"],
        unsupported: ["caCrl"]
    )
    static let connectionPool = Schema(["tcp", "http"])
    static let tcpSettings = Schema(
        ["maxConnections", "connectTimeout", "tcpKeepalive"], unsupported: ["maxConnectionDuration", "idleTimeout"]
    )
    static let tcpKeepalive = Schema(["probes", "time", "interval"])
    static let httpSettings = Schema(
        ["maxRequestsPerConnection", "idleTimeout", "h2UpgradePolicy", "maxConcurrentStreams", "http1MaxPendingRequests", "http2MaxRequests", "maxRetries"],
        unsupported: ["useClientProtocol"]
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
        let keepalive = tcp?.map("tcpKeepalive", Self.tcpKeepalive).map { keepalive in
            TCPKeepalive(
                probes: keepalive.int("probes", in: 1...Int(Int32.max)), time: keepalive.duration("time"),
                interval: keepalive.duration("interval")
            )
        }
        let balancer = policy.map("loadBalancer", LoadBalancerDecoder.schema)
        return TrafficPolicy(
            connectTimeout: tcp?["connectTimeout"].flatMap(self.connectTimeout),
            maxConnections: tcp?.int("maxConnections", in: 1...Int(Int32.max)),
            http1MaxPendingRequests: http?["http1MaxPendingRequests"].flatMap(self.limit),
            http2MaxRequests: http?["http2MaxRequests"].flatMap(self.limit),
            maxRetries: http?["maxRetries"].flatMap(self.limit),
            tcpKeepalive: keepalive,
            maxRequestsPerConnection: http?.int("maxRequestsPerConnection", in: 0...Int(Int32.max)),
            upstreamIdleTimeout: http?.duration("idleTimeout"),
            h2UpgradePolicy: http?["h2UpgradePolicy"]?.oneOf(
                ["DEFAULT": H2UpgradePolicy.default, "DO_NOT_UPGRADE": .doNotUpgrade, "UPGRADE": .upgrade]
            ),
            maxConcurrentStreams: http?.int("maxConcurrentStreams", in: 1...Int(Int32.max)),
            loadBalancer: balancer.flatMap(LoadBalancerDecoder.decode),
            outlierDetection: policy.map("outlierDetection", LoadBalancerDecoder.outlierDetection).map(LoadBalancerDecoder.outlierDetection),
            localityLB: balancer?.map("localityLbSetting", LoadBalancerDecoder.localityLB).map(LoadBalancerDecoder.localityLB),
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

    /// A circuit-breaker limit: 0 is proto3's unset, Istio's default (no limit), so it is taken
    /// as that, and said.
    private static func limit(_ field: Field) -> Int? {
        guard let value = field.int(in: 0...Int(Int32.max)) else { return nil }
        if value == 0 {
            field.warning("0 means Istio's default here: no limit")
            return nil
        }
        return value
    }

    private static func connectTimeout(_ field: Field) -> Duration? {
        guard let timeout = field.duration() else { return nil }
        guard timeout >= .milliseconds(1) else {
            field.error("connectTimeout must be at least 1ms")
            return nil
        }
        return timeout
    }
}
