/// `trafficPolicy.loadBalancer` → ``LoadBalancerPolicy`` (`simple` or `consistentHash`, one of
/// them) and `trafficPolicy.outlierDetection` → ``OutlierDetectionPolicy``, each checked as Istio's
/// schema and Envoy's limits have it.
enum LoadBalancerDecoder {
    static let schema = Schema(["simple", "consistentHash", "localityLbSetting"], unsupported: ["warmupDurationSecs", "warmup"])
    static let localityLB = Schema(["enabled", "distribute", "failover", "failoverPriority"])
    static let distribute = Schema(["from", "to"])
    static let failover = Schema(["from", "to"])
    static let consistentHash = Schema(
        ["httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName", "ringHash", "maglev", "minimumRingSize"]
    )
    static let httpCookie = Schema(["name", "path", "ttl"], unsupported: ["attributes"])
    static let ringHash = Schema(["minimumRingSize"])
    static let maglev = Schema(["tableSize"])
    /// Envoy's bounds: `ring_hash_lb_config.maximum_ring_size` defaults to 8M; a Maglev table is prime, at most 5000011.
    static let maxRingSize = 8_388_608
    static let maxMaglevTableSize = 5_000_011

    static func decode(_ balancer: MapReader) -> LoadBalancerPolicy? {
        let simple = balancer["simple"].flatMap(self.simple)
        guard let hash = balancer.map("consistentHash", Self.consistentHash) else { return simple }
        if balancer["simple"] != nil {
            balancer.field.error("set either simple or consistentHash, not both")
            return nil
        }
        return self.consistentHash(hash).map(LoadBalancerPolicy.consistentHash)
    }

    private static func simple(_ field: Field) -> LoadBalancerPolicy? {
        guard let text = field.string() else { return nil }
        switch text {
        case "ROUND_ROBIN": return .roundRobin
        case "RANDOM": return .random
        case "LEAST_REQUEST": return .leastRequest
        case "LEAST_CONN":
            field.warning("LEAST_CONN is deprecated; it means LEAST_REQUEST")
            return .leastRequest
        case "UNSPECIFIED": return nil
        case "PASSTHROUGH":
            field.error(
                "PASSTHROUGH sends each connection to its original destination, which Meshgate learns only from transparent capture (not available yet); use LEAST_REQUEST, ROUND_ROBIN or RANDOM"
            )
            return nil
        default:
            field.error("invalid value \"\(text)\"; expected ROUND_ROBIN, RANDOM, LEAST_REQUEST, LEAST_CONN, UNSPECIFIED or PASSTHROUGH")
            return nil
        }
    }

    private static func consistentHash(_ hash: MapReader) -> ConsistentHashPolicy? {
        let keyNames = ["httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"].filter { hash[$0] != nil }
        guard keyNames.count == 1 else {
            hash.field.error(
                keyNames.isEmpty
                    ? "consistentHash needs a key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"
                    : "consistentHash takes one key; found \(keyNames.joined(separator: " and "))"
            )
            return nil
        }
        guard let key = self.key(keyNames[0], hash), let table = self.table(hash) else { return nil }
        return ConsistentHashPolicy(key: key, table: table)
    }

    private static func key(_ name: String, _ hash: MapReader) -> ConsistentHashPolicy.Key? {
        switch name {
        case "httpHeaderName":
            guard let header = hash.string("httpHeaderName") else { return nil }
            guard !header.isEmpty else {
                hash["httpHeaderName"]?.error("the header name must not be empty")
                return nil
            }
            return .header(header.lowercased())
        case "httpQueryParameterName":
            guard let parameter = hash.string("httpQueryParameterName") else { return nil }
            guard !parameter.isEmpty else {
                hash["httpQueryParameterName"]?.error("the query parameter name must not be empty")
                return nil
            }
            return .queryParameter(parameter)
        case "useSourceIp":
            guard let use = hash.bool("useSourceIp") else { return nil }
            guard use else {
                hash["useSourceIp"]?.error("useSourceIp: false gives no hash key; name another key or remove consistentHash")
                return nil
            }
            return .sourceIP
        default:
            guard let cookie = hash.map("httpCookie", Self.httpCookie), let name = cookie.required("name")?.string() else { return nil }
            guard Self.isCookieName(name) else {
                cookie["name"]?.error("\"\(name)\" is not a valid cookie name (RFC 6265 token)")
                return nil
            }
            return .cookie(name: name, path: cookie.string("path"), ttl: cookie.duration("ttl"))
        }
    }

    private static func table(_ hash: MapReader) -> ConsistentHashPolicy.Table? {
        let ring = hash.map("ringHash", Self.ringHash)
        let maglev = hash.map("maglev", Self.maglev)
        let legacyRing = hash.int("minimumRingSize", in: 1...Self.maxRingSize)
        if ring != nil && maglev != nil {
            hash.field.error("set either ringHash or maglev, not both")
            return nil
        }
        if let maglev {
            if hash["minimumRingSize"] != nil {
                hash["minimumRingSize"]?.error("minimumRingSize is for ringHash, not maglev")
                return nil
            }
            guard let size = maglev.int("tableSize", in: 1...Self.maxMaglevTableSize) ?? (maglev["tableSize"] == nil ? ConsistentHashPolicy.defaultMaglevTableSize : nil) else {
                return nil
            }
            guard Self.isPrime(size) else {
                maglev["tableSize"]?.error("\(size) is not prime; Maglev's table size must be (Envoy's default is 65537)")
                return nil
            }
            return .maglev(tableSize: size)
        }
        if let ring {
            if hash["minimumRingSize"] != nil {
                hash["minimumRingSize"]?.warning("deprecated, and ringHash.minimumRingSize is set: this one is ignored")
            }
            guard let size = ring.int("minimumRingSize", in: 1...Self.maxRingSize) ?? (ring["minimumRingSize"] == nil ? ConsistentHashPolicy.defaultRingSize : nil) else {
                return nil
            }
            return .ringHash(minimumSize: size)
        }
        if hash["minimumRingSize"] != nil && legacyRing == nil { return nil }
        return .ringHash(minimumSize: legacyRing ?? ConsistentHashPolicy.defaultRingSize)
    }

    static let outlierDetection = Schema(
        [
            "consecutiveErrors", "consecutive5xxErrors", "consecutiveGatewayErrors", "splitExternalLocalOriginErrors",
            "consecutiveLocalOriginFailures", "interval", "baseEjectionTime", "maxEjectionPercent", "minHealthPercent",
        ]
    )

    static func outlierDetection(_ detection: MapReader) -> OutlierDetectionPolicy {
        var policy = OutlierDetectionPolicy()
        let counts = 0...Int(Int32.max)
        if detection["consecutiveErrors"] != nil {
            if detection["consecutive5xxErrors"] != nil {
                detection["consecutiveErrors"]?.warning("deprecated, and consecutive5xxErrors is set: this one is ignored")
            } else {
                detection["consecutiveErrors"]?.warning("deprecated; it means consecutive5xxErrors")
                policy.consecutive5xxErrors = detection.int("consecutiveErrors", in: counts) ?? policy.consecutive5xxErrors
            }
        }
        policy.consecutive5xxErrors = detection.int("consecutive5xxErrors", in: counts) ?? policy.consecutive5xxErrors
        policy.consecutiveGatewayErrors = detection.int("consecutiveGatewayErrors", in: counts) ?? policy.consecutiveGatewayErrors
        policy.splitExternalLocalOriginErrors = detection.bool("splitExternalLocalOriginErrors") ?? false
        policy.consecutiveLocalOriginFailures = detection.int("consecutiveLocalOriginFailures", in: counts) ?? policy.consecutiveLocalOriginFailures
        if detection["consecutiveLocalOriginFailures"] != nil && !policy.splitExternalLocalOriginErrors {
            detection["consecutiveLocalOriginFailures"]?.warning("takes effect only with splitExternalLocalOriginErrors: true")
        }
        for (key, keyPath) in [("interval", \OutlierDetectionPolicy.interval), ("baseEjectionTime", \.baseEjectionTime)] {
            guard let field = detection[key], let value = field.duration() else { continue }
            if value < .milliseconds(1) {
                field.error("\(key) must be at least 1ms")
            } else {
                policy[keyPath: keyPath] = value
            }
        }
        policy.maxEjectionPercent = detection.int("maxEjectionPercent", in: 0...100) ?? policy.maxEjectionPercent
        policy.minHealthPercent = detection.int("minHealthPercent", in: 0...100) ?? policy.minHealthPercent
        if policy.consecutive5xxErrors == 0 && policy.consecutiveGatewayErrors == 0
            && !(policy.splitExternalLocalOriginErrors && policy.consecutiveLocalOriginFailures > 0)
        {
            detection.field.warning("every detector is off (consecutive5xxErrors and consecutiveGatewayErrors are 0): nothing is ever ejected")
        }
        return policy
    }

    static func localityLB(_ setting: MapReader) -> LocalityLBSetting {
        var locality = LocalityLBSetting(enabled: setting.bool("enabled") ?? true)
        func pattern(_ field: Field?, wildcard: Bool) -> String? {
            guard let field, let text = field.string() else { return nil }
            guard Locality.segments(text, wildcard: wildcard) != nil else {
                field.error("invalid locality \"\(text)\"; expected region, region/zone or region/zone/subzone\(wildcard ? " (a last segment may be *)" : "")")
                return nil
            }
            return text
        }
        for rule in setting.maps("distribute", Self.distribute) ?? [] {
            guard let from = pattern(rule.required("from"), wildcard: true), let to = rule.required("to"), let entries = to.entries() else { continue }
            var weights: [LocalityLBSetting.Weighted] = []
            for entry in entries {
                let item = Field(node: entry.value, path: to.childPath(entry.key), line: entry.line, context: to.context)
                guard Locality.segments(entry.key, wildcard: true) != nil else {
                    item.error("invalid locality \"\(entry.key)\"; expected region, region/zone or region/zone/subzone (a last segment may be *)")
                    continue
                }
                guard let weight = item.int(in: 0...100) else { continue }
                weights.append(LocalityLBSetting.Weighted(locality: entry.key, weight: weight))
            }
            if weights.map(\.weight).reduce(0, +) != 100 { to.error("the weights must sum to 100") }
            locality.distribute.append(LocalityLBSetting.Distribute(from: from, to: weights))
        }
        for rule in setting.maps("failover", Self.failover) ?? [] {
            guard let from = pattern(rule.required("from"), wildcard: false), let to = pattern(rule.required("to"), wildcard: false) else { continue }
            locality.failover.append(LocalityLBSetting.Failover(from: from, to: to))
        }
        locality.failoverPriority = setting["failoverPriority"]?.strings()?.map(\.value) ?? []
        if !locality.distribute.isEmpty && !locality.failover.isEmpty {
            setting.field.error("set either distribute or failover, not both (as Istio requires)")
        }
        return locality
    }

    static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        var divisor = 2
        while divisor * divisor <= n {
            if n % divisor == 0 { return false }
            divisor += 1
        }
        return true
    }

    /// RFC 6265's cookie-name: an RFC 7230 token.
    static func isCookieName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (0x21...0x7E).contains(byte) && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
        }
    }
}
