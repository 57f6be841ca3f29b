/// `meshgate.yaml` → ``MeshSettings``. Every key is optional; an unknown key is a warning (it is our
/// own file, not Istio's strict schema), a wrong type an error.
enum SettingsDecoder {
    static let schema = Schema(
        [
            "labels", "namespace", "bindAddress", "readinessPort", "adminPort", "drainTimeout", "eventLoops", "credentialsDir",
            "tcpIdleTimeout", "httpIdleTimeout",
        ],
        unknownSeverity: .warning
    )

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
        return settings
    }
}
