/// `kind: Telemetry` (`telemetry.istio.io/v1alpha1`, `v1`) → ``TelemetryPolicy``.
enum TelemetryDecoder {
    static let group = "telemetry.istio.io"
    static let versions = ["v1alpha1", "v1"]

    static let spec = Schema(["selector", "tracing", "metrics", "accessLogging"], unsupported: ["targetRef", "targetRefs"])
    static let selector = Schema(["matchLabels"])
    static let providerRef = Schema(["name"])
    static let modeMatch = Schema(["mode"])
    static let tracing = Schema(
        ["match", "providers", "randomSamplingPercentage", "disableSpanReporting", "customTags"],
        unsupported: ["useRequestIdForTraceSampling", "enableIstioTags"]
    )
    static let customTag = Schema(["literal", "environment", "header"])
    static let literal = Schema(["value"])
    static let environment = Schema(["name", "defaultValue"])
    static let header = Schema(["name", "defaultValue"])
    static let metrics = Schema(["providers", "overrides", "reportingInterval"])
    static let override = Schema(["match", "disabled", "tagOverrides"])
    static let metricMatch = Schema(["metric", "mode"], unsupported: ["customMetric"])
    static let tagOverride = Schema(["operation", "value"])
    static let accessLogging = Schema(["match", "providers", "disabled"], unsupported: ["filter"])

    static let metricNames: KeyValuePairs<String, IstioMetric?> = [
        "ALL_METRICS": nil, "REQUEST_COUNT": .requestCount, "REQUEST_DURATION": .requestDuration,
        "REQUEST_SIZE": .requestSize, "RESPONSE_SIZE": .responseSize, "TCP_OPENED_CONNECTIONS": .tcpOpenedConnections,
        "TCP_CLOSED_CONNECTIONS": .tcpClosedConnections, "TCP_SENT_BYTES": .tcpSentBytes,
        "TCP_RECEIVED_BYTES": .tcpReceivedBytes, "GRPC_REQUEST_MESSAGES": .grpcRequestMessages,
        "GRPC_RESPONSE_MESSAGES": .grpcResponseMessages,
    ]
    static let modes: KeyValuePairs<String, TelemetryMode> = [
        "CLIENT_AND_SERVER": .clientAndServer, "CLIENT": .client, "SERVER": .server,
    ]

    static func decode(meta: ResourceMeta, spec field: Field) -> TelemetryPolicy? {
        guard let spec = field.map(Self.spec) else { return nil }
        var selector: [String: String]?
        if let map = spec.map("selector", Self.selector) {
            selector = map.stringMap("matchLabels") ?? [:]
        }
        let tracing = (spec.maps("tracing", Self.tracing) ?? []).map(self.tracingRule)
        let metrics = (spec.maps("metrics", Self.metrics) ?? []).map(self.metricsRule)
        let accessLogging = (spec.maps("accessLogging", Self.accessLogging) ?? []).map(self.accessLoggingRule)
        return TelemetryPolicy(meta: meta, selector: selector, tracing: tracing, metrics: metrics, accessLogging: accessLogging)
    }

    private static func mode(_ rule: MapReader) -> TelemetryMode {
        rule.map("match", Self.modeMatch)?["mode"]?.oneOf(Self.modes) ?? .clientAndServer
    }

    private static func providers(_ rule: MapReader) -> [String] {
        (rule.maps("providers", Self.providerRef) ?? []).compactMap { $0.required("name")?.string() }
    }

    private static func tracingRule(_ rule: MapReader) -> TracingRule {
        var customTags: [String: CustomTag] = [:]
        if let tags = rule["customTags"], let entries = tags.entries() {
            for entry in entries {
                let item = Field(node: entry.value, path: tags.childPath(entry.key), line: entry.line, context: tags.context)
                if let tag = self.customTag(item) { customTags[entry.key] = tag }
            }
        }
        return TracingRule(
            mode: self.mode(rule),
            providers: self.providers(rule),
            randomSamplingPercentage: rule["randomSamplingPercentage"]?.number(in: 0...100),
            disableSpanReporting: rule.bool("disableSpanReporting"),
            customTags: customTags
        )
    }

    /// Exactly one of `literal`, `environment`, `header`.
    private static func customTag(_ field: Field) -> CustomTag? {
        guard let map = field.map(Self.customTag) else { return nil }
        let kinds = ["literal", "environment", "header"].filter { map[$0] != nil }
        guard kinds.count == 1 else {
            field.error(kinds.isEmpty
                ? "a custom tag needs one of literal, environment or header"
                : "a custom tag has one of literal, environment or header, not \(kinds.joined(separator: " and "))")
            return nil
        }
        if let literal = map.map("literal", Self.literal) {
            return literal.required("value")?.string().map(CustomTag.literal)
        }
        if let environment = map.map("environment", Self.environment) {
            return self.nonEmptyName(environment).map {
                CustomTag.environment(name: $0, defaultValue: environment.string("defaultValue"))
            }
        }
        if let header = map.map("header", Self.header) {
            return self.nonEmptyName(header).map { CustomTag.header(name: $0, defaultValue: header.string("defaultValue")) }
        }
        return nil
    }

    private static func nonEmptyName(_ map: MapReader) -> String? {
        guard let field = map.required("name"), let name = field.string() else { return nil }
        if name.isEmpty {
            field.error("the name must not be empty")
            return nil
        }
        return name
    }

    private static func metricsRule(_ rule: MapReader) -> MetricsRule {
        var interval: Duration?
        if let field = rule["reportingInterval"], let duration = field.duration() {
            if duration <= .zero { field.error("the reporting interval must be longer than 0") } else { interval = duration }
        }
        let overrides = (rule.maps("overrides", Self.override) ?? []).map(self.metricOverride)
        return MetricsRule(providers: self.providers(rule), overrides: overrides, reportingInterval: interval)
    }

    private static func metricOverride(_ map: MapReader) -> MetricOverride {
        var override = MetricOverride()
        if let match = map.map("match", Self.metricMatch) {
            if let metric = match["metric"] {
                override.metric = metric.oneOf(Self.metricNames) ?? nil
            }
            override.mode = match["mode"]?.oneOf(Self.modes) ?? .clientAndServer
        }
        override.disabled = map.bool("disabled")
        if let tags = map["tagOverrides"], let entries = tags.entries() {
            for entry in entries {
                let item = Field(node: entry.value, path: tags.childPath(entry.key), line: entry.line, context: tags.context)
                if let operation = self.tagOperation(item, tag: entry.key) { override.tagOverrides[entry.key] = operation }
            }
        }
        return override
    }

    /// `{operation: UPSERT|REMOVE, value}`. Istio's value is a CEL expression; Meshgate sets the label to a
    /// literal: a quoted CEL string (`"'canary'"`) is unquoted, anything else is used as written, with a
    /// warning when it looks like an expression (`request.host`).
    private static func tagOperation(_ field: Field, tag: String) -> TagOperation? {
        guard let map = field.map(Self.tagOverride) else { return nil }
        var upsert = true
        if let operation = map["operation"] {
            guard let value = operation.oneOf(["UPSERT": true, "REMOVE": false]) else { return nil }
            upsert = value
        }
        if !upsert {
            if map["value"] != nil { field.context.sink.warning(at: map.place(of: "value"), "a REMOVE takes no value; ignored") }
            return .remove
        }
        guard let valueField = map.required("value"), let value = valueField.string() else { return nil }
        if let quoted = Self.celStringLiteral(value) { return .upsert(quoted) }
        if Self.looksLikeExpression(value) {
            valueField.warning(
                "Meshgate does not evaluate CEL expressions: the label is set to the literal text \"\(value)\" (quote a literal as \"'\(value)'\")"
            )
        }
        return .upsert(value)
    }

    /// An attribute (`request.host`, `upstream_peer.labels`, …) or an operator: not meant as literal text.
    static func looksLikeExpression(_ value: String) -> Bool {
        let roots = ["request.", "response.", "source.", "destination.", "connection.", "upstream.", "node.", "filter_state", "xds."]
        return roots.contains(where: value.hasPrefix) || value.contains(where: { "()[]?".contains($0) })
            || ["==", "!=", "&&", "||"].contains(where: value.contains)
    }

    /// `'text'` or `"text"` → text.
    static func celStringLiteral(_ value: String) -> String? {
        guard value.count >= 2, let first = value.first, first == "'" || first == "\"", value.last == first else { return nil }
        return String(value.dropFirst().dropLast())
    }

    private static func accessLoggingRule(_ rule: MapReader) -> AccessLoggingRule {
        AccessLoggingRule(mode: self.mode(rule), providers: self.providers(rule), disabled: rule.bool("disabled"))
    }
}
