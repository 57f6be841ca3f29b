/// meshgate.yaml `extensionProviders` → ``ExtensionProvider``: `envoyExtAuthzHttp` is run; Istio's
/// other provider kinds are named as not supported.
enum ExtensionProviderDecoder {
    static let provider = Schema(
        ["name", "envoyExtAuthzHttp"],
        unsupported: [
            "envoyExtAuthzGrpc", "zipkin", "lightstep", "datadog", "stackdriver", "opencensus", "skywalking", "opentelemetry",
            "prometheus", "envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "sds",
        ]
    )
    static let extAuthzHTTP = Schema(
        [
            "service", "port", "timeout", "pathPrefix", "failOpen", "statusOnError", "includeRequestHeadersInCheck",
            "includeAdditionalHeadersInCheck", "headersToUpstreamOnAllow", "headersToDownstreamOnDeny", "headersToDownstreamOnAllow",
        ],
        unsupported: ["includeRequestBodyInCheck", "includeHeadersInCheck", "clearRouteCache"]
    )

    static func decode(_ field: Field?) -> [ExtensionProvider] {
        var names: Set<String> = []
        return (field?.maps(Self.provider) ?? []).compactMap { entry in
            guard let name = entry.required("name")?.string() else { return nil }
            guard names.insert(name).inserted else {
                entry["name"]?.error("provider \(name) is declared twice")
                return nil
            }
            guard let http = entry.map("envoyExtAuthzHttp", Self.extAuthzHTTP) else { return nil }
            guard let service = http.required("service")?.string(), let port = http.required("port")?.port() else { return nil }
            var config = ExtAuthzHTTP(service: service, port: port)
            if let timeout = http.duration("timeout") { config.timeout = timeout }
            config.pathPrefix = http.string("pathPrefix") ?? ""
            config.failOpen = http.bool("failOpen") ?? false
            if let field = http["statusOnError"], let text = field.string() {
                if let status = Int(text), (200...599).contains(status) { config.statusOnError = status } else { field.error("'\(text)' is not an HTTP status") }
            }
            let names: (String) -> [String] = { key in http[key]?.strings()?.map { $0.value.lowercased() } ?? [] }
            config.includeRequestHeadersInCheck = names("includeRequestHeadersInCheck")
            config.includeAdditionalHeadersInCheck = http.stringMap("includeAdditionalHeadersInCheck") ?? [:]
            config.headersToUpstreamOnAllow = names("headersToUpstreamOnAllow")
            config.headersToDownstreamOnDeny = names("headersToDownstreamOnDeny")
            config.headersToDownstreamOnAllow = names("headersToDownstreamOnAllow")
            return ExtensionProvider(name: name, extAuthzHTTP: config, location: entry.location)
        }
    }
}
