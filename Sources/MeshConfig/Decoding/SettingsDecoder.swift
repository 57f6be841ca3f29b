/// `meshgate.yaml` → ``MeshSettings``. Every key is optional; an unknown key is a warning (it is our
/// own file, not Istio's strict schema), a wrong type an error.
enum SettingsDecoder {
    static let schema = Schema(
        [
            "labels", "namespace", "bindAddress", "readinessPort", "adminPort", "drainTimeout", "eventLoops", "credentialsDir",
            "tcpIdleTimeout", "httpIdleTimeout", "workloadName", "metricsPort", "tcpReportingDuration", "accessLogFile",
            "accessLogEncoding", "tracing",
        ],
        unknownSeverity: .warning
    )
    static let tracing = Schema(["sampling", "zipkin"], unknownSeverity: .warning)
    static let zipkin = Schema(["address"], unknownSeverity: .warning)

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
        if let address = map.string("bindAddress") { settings.bindAddress = address }
        if let port = map["readinessPort"]?.port() { settings.readinessPort = port }
        if let port = map["adminPort"]?.port() { settings.adminPort = port }
        if let timeout = map.duration("drainTimeout") { settings.drainTimeout = timeout }
        if let loops = map.int("eventLoops", in: 0...4096) { settings.eventLoops = loops }
        if let timeout = map.duration("tcpIdleTimeout") { settings.tcpIdleTimeout = timeout }
        if let timeout = map.duration("httpIdleTimeout") { settings.httpIdleTimeout = timeout }
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
        return settings
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
