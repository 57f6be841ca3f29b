/// `meshgate.yaml` → ``MeshSettings``. Every key is optional; an unknown key is a warning (it is our
/// own file, not Istio's strict schema), a wrong type an error.
enum SettingsDecoder {
    static let schema = Schema(
        [
            "labels", "namespace", "bindAddress", "readinessPort", "adminPort", "drainTimeout", "eventLoops", "credentialsDir",
            "tcpIdleTimeout", "httpIdleTimeout", "workloadName", "metricsPort", "tcpReportingDuration", "accessLogFile",
            "accessLogEncoding", "tracing", "trustDomain", "rootNamespace", "serviceAccount", "caDir", "certDir", "certTTL",
            "workload", "inboundPort", "outboundPort", "appPorts", "outboundTCP", "requestHeadersTimeout", "locality",
            "numTrustedProxies", "jwksRefreshInterval", "extensionProviders",
        ],
        unknownSeverity: .warning
    )
    static let tracing = Schema(["sampling", "zipkin"], unknownSeverity: .warning)
    static let zipkin = Schema(["address"], unknownSeverity: .warning)
    static let workload = Schema(["name", "namespace", "serviceAccount", "labels", "address"], unknownSeverity: .warning)

    static func decode(_ documents: [RawNode], file: String, sink: DiagnosticSink) -> MeshSettings {
        var settings = MeshSettings()
        let context = DecodeContext(file: file, sink: sink)
        let present = documents.filter { !$0.isNull }
        if present.count > 1 {
            sink.error(at: context.location(present[1].line), path: "", "meshgate.yaml holds one document, not \(present.count)")
        }
        guard let document = present.first,
              let map = Field(node: document, path: "", line: document.line, context: context).map(Self.schema)
        else { return settings }
        if let labels = map.stringMap("labels") { settings.labels = labels }
        if let namespace = map.string("namespace") { settings.namespace = namespace }
        if let field = map["locality"], let text = field.string() {
            if Locality.segments(text) == nil {
                field.error("invalid locality \"\(text)\"; expected region, region/zone or region/zone/subzone")
            } else {
                settings.locality = text
            }
        }
        if let address = map.string("bindAddress") { settings.bindAddress = address }
        if let count = map.int("numTrustedProxies", in: 0...64) { settings.numTrustedProxies = count }
        settings.extensionProviders = ExtensionProviderDecoder.decode(map["extensionProviders"])
        if let field = map["jwksRefreshInterval"], let interval = field.duration() {
            if interval < .seconds(1) { field.error("the JWKS refresh interval must be at least 1s") } else { settings.jwksRefreshInterval = interval }
        }
        if let port = map["readinessPort"]?.port() { settings.readinessPort = port }
        if let port = map["adminPort"]?.port() { settings.adminPort = port }
        if let timeout = map.duration("drainTimeout") { settings.drainTimeout = timeout }
        if let loops = map.int("eventLoops", in: 0...4096) { settings.eventLoops = loops }
        if let timeout = map.duration("tcpIdleTimeout") { settings.tcpIdleTimeout = timeout }
        if let timeout = map.duration("httpIdleTimeout") { settings.httpIdleTimeout = timeout }
        if let field = map["requestHeadersTimeout"], let timeout = field.duration() {
            if timeout <= .zero { field.error("the request headers timeout must be longer than 0") } else { settings.requestHeadersTimeout = timeout }
        }
        if let directory = map["credentialsDir"], let text = directory.string() {
            if text.isEmpty { directory.error("the credentials directory must not be empty") } else { settings.credentialsDir = text }
        }
        if let name = map["workloadName"], let text = name.string() {
            if text.isEmpty { name.error("the workload name must not be empty") } else { settings.workloadName = text }
        }
        if let port = map["metricsPort"]?.port() { settings.metricsPort = port }
        if let interval = map["tcpReportingDuration"], let duration = interval.duration() {
            if duration <= .zero {
                interval.error("the reporting interval must be longer than 0")
            } else {
                settings.tcpReportingDuration = duration
            }
        }
        if let file = map.string("accessLogFile") { settings.accessLogFile = file }
        if let encoding = map["accessLogEncoding"]?.oneOf(["TEXT": AccessLogEncoding.text, "JSON": .json]) {
            settings.accessLogEncoding = encoding
        }
        if let tracing = map.map("tracing", Self.tracing) {
            if let sampling = tracing["sampling"]?.number(in: 0...100) { settings.tracingSampling = sampling }
            if let address = tracing.map("zipkin", Self.zipkin)?.required("address"), let text = address.string() {
                if let problem = hostPortProblem(text) {
                    address.error("invalid collector address \"\(text)\": \(problem)")
                } else {
                    settings.zipkinAddress = text
                }
            }
        }
        self.decodeMesh(map, into: &settings)
        return settings
    }

    /// The mesh identity and the sidecar keys. `workload:` is the sidecar's way of writing the
    /// instance's own name, namespace, service account, labels and bind address.
    private static func decodeMesh(_ map: MapReader, into settings: inout MeshSettings) {
        for key in ["trustDomain", "rootNamespace", "serviceAccount", "caDir", "certDir"] {
            guard let field = map[key], let text = field.string() else { continue }
            if text.isEmpty {
                field.error("\(key) must not be empty")
                continue
            }
            switch key {
            case "trustDomain": settings.trustDomain = text
            case "rootNamespace": settings.rootNamespace = text
            case "serviceAccount": settings.serviceAccount = text
            case "caDir": settings.caDir = text
            default: settings.certDir = text
            }
        }
        if settings.caDir != nil, settings.certDir != nil, let field = map["certDir"] {
            field.error("set caDir (issue certificates in process) or certDir (read issued ones), not both")
        }
        if let field = map["certTTL"], let ttl = field.duration() {
            if ttl < .seconds(2) { field.error("certTTL must be at least 2s") } else { settings.certTTL = ttl }
        }
        if let workload = map.map("workload", Self.workload) {
            if let name = workload.string("name"), !name.isEmpty { settings.workloadName = name }
            settings.namespace = workload.string("namespace") ?? "default"
            if let account = workload.string("serviceAccount") { settings.serviceAccount = account }
            settings.labels = workload.stringMap("labels") ?? [:]
            if let address = workload.string("address") { settings.bindAddress = address }
        }
        if let port = map["inboundPort"]?.port() { settings.inboundPort = port }
        if let port = map["outboundPort"]?.port() { settings.outboundPort = port }
        for (servicePort, item) in Self.portKeyed(map["appPorts"], kind: "service port") {
            if let appPort = item.port() { settings.appPorts[servicePort] = appPort }
        }
        for (localPort, item) in Self.portKeyed(map["outboundTCP"], kind: "local port") {
            guard let text = item.string() else { continue }
            if let problem = hostPortProblem(text) {
                item.error("invalid service \"\(text)\": \(problem) (the service's host and port, as tcp-echo:9000)")
                continue
            }
            let colon = text.lastIndex(of: ":")!
            let host = resolveHost(String(text[..<colon]), namespace: settings.namespace)
            settings.outboundTCP[localPort] = OutboundTCPService(host: host, port: Int(text[text.index(after: colon)...])!)
        }
    }

    /// The entries of a map keyed by port number (`appPorts`, `outboundTCP`), each value with its own
    /// place; a key that is not a port 1..65535 is an error at its line and skipped.
    private static func portKeyed(_ field: Field?, kind: String) -> [(port: Int, item: Field)] {
        guard let field, let entries = field.entries() else { return [] }
        return entries.compactMap { entry in
            let item = Field(node: entry.value, path: field.childPath(entry.key), line: entry.line, context: field.context)
            guard let port = Int(entry.key), (1...65535).contains(port) else {
                item.error("'\(entry.key)' is not a \(kind) (1..65535)")
                return nil
            }
            return (port, item)
        }
    }

    /// Why `host:port` is not one (nil when it is): a host, or a bracketed IPv6 address, and a port 1...65535.
    static func hostPortProblem(_ text: String) -> String? {
        guard let colon = text.lastIndex(of: ":") else { return "expected host:port" }
        let host = text[..<colon]
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { return "expected host:port" }
        if host.contains(":"), !(host.hasPrefix("[") && host.hasSuffix("]")) {
            return "write an IPv6 address in brackets, as [::1]:9411"
        }
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return "the port must be a number 1..65535"
        }
        return nil
    }
}
