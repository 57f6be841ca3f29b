import Testing

@testable import MeshConfig

/// meshgate.yaml's telemetry keys, `kind: Telemetry`, and the effective telemetry of an instance.
@Suite struct TelemetryTests {
    // MARK: meshgate.yaml

    @Test func telemetryDefaultsAreIstios() throws {
        let settings = try #require(load([]).configuration?.settings)
        #expect(settings.workloadName == "istio-ingressgateway")
        #expect(settings.metricsPort == 15090)
        #expect(settings.tcpReportingDuration == .seconds(15))
        #expect(settings.accessLogFile == "")
        #expect(settings.accessLogEncoding == .text)
        #expect(settings.tracingSampling == 1.0)
        #expect(settings.zipkinAddress == nil)
    }

    @Test func everyTelemetryKeyIsRead() throws {
        let result = load("""
            workloadName: edge-gateway
            metricsPort: 16090
            tcpReportingDuration: 1s
            accessLogFile: /dev/stdout
            accessLogEncoding: JSON
            tracing:
              sampling: 12.5
              zipkin:
                address: zipkin.istio-system:9411
            """, file: "conf/meshgate.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let settings = try #require(result.configuration?.settings)
        #expect(settings.workloadName == "edge-gateway")
        #expect(settings.metricsPort == 16090)
        #expect(settings.tcpReportingDuration == .seconds(1))
        #expect(settings.accessLogFile == "/dev/stdout")
        #expect(settings.accessLogEncoding == .json)
        #expect(settings.tracingSampling == 12.5)
        #expect(settings.zipkinAddress == "zipkin.istio-system:9411")
    }

    @Test func flowStyleTracingWithAnIntegerSamplingAndAnIPv6Collector() throws {
        let result = load("tracing: {sampling: 100, zipkin: {address: \"[::1]:9411\"}}\n", file: "meshgate.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        #expect(result.configuration?.settings.tracingSampling == 100)
        #expect(result.configuration?.settings.zipkinAddress == "[::1]:9411")
    }

    @Test func telemetryKeysReportWrongValuesWithTheirLines() {
        let result = load("""
            metricsPort: 0
            tcpReportingDuration: 0s
            accessLogEncoding: XML
            workloadName: ""
            tracing:
              sampling: 150
              zipkin:
                address: zipkin
                port: 9411
              samplng: 1
            """, file: "conf/meshgate.yaml")
        #expect(result.configuration == nil)
        #expect(result.lines == [
            "conf/meshgate.yaml:1: error: metricsPort: 0 is out of range 1..65535",
            "conf/meshgate.yaml:2: error: tcpReportingDuration: the reporting interval must be longer than 0",
            "conf/meshgate.yaml:3: error: accessLogEncoding: invalid value \"XML\"; expected one of TEXT, JSON",
            "conf/meshgate.yaml:4: error: workloadName: the workload name must not be empty",
            "conf/meshgate.yaml:6: error: tracing.sampling: 150 is out of range 0..100",
            "conf/meshgate.yaml:8: error: tracing.zipkin.address: invalid collector address \"zipkin\": expected host:port",
            "conf/meshgate.yaml:9: warning: tracing.zipkin.port: unknown field 'port'",
            "conf/meshgate.yaml:10: warning: tracing.samplng: unknown field 'samplng' (did you mean 'sampling'?)",
        ])
    }

    @Test(arguments: [
        ("sampling: lots", "conf/meshgate.yaml:2: error: tracing.sampling: expected a number, got a string (\"lots\")"),
        ("zipkin: {address: \"h:0\"}", "conf/meshgate.yaml:2: error: tracing.zipkin.address: invalid collector address \"h:0\": the port must be a number 1..65535"),
        ("zipkin: {address: \"::1:9411\"}", "conf/meshgate.yaml:2: error: tracing.zipkin.address: invalid collector address \"::1:9411\": write an IPv6 address in brackets, as [::1]:9411"),
        ("zipkin: {}", "conf/meshgate.yaml:2: error: tracing.zipkin.address: required field is missing"),
    ])
    func tracingValuesAreChecked(line: String, diagnostic: String) {
        let result = load("tracing:\n  \(line)\n", file: "conf/meshgate.yaml")
        #expect(result.lines == [diagnostic])
    }

    // MARK: kind: Telemetry

    static func telemetry(_ name: String, namespace: String = "istio-system", apiVersion: String = "telemetry.istio.io/v1", _ spec: String) -> String {
        """
        apiVersion: \(apiVersion)
        kind: Telemetry
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:
        \(spec)
        """
    }

    @Test func aFullPolicyIsDecoded() throws {
        let result = load(Self.telemetry("mesh-default", apiVersion: "telemetry.istio.io/v1alpha1", """
              tracing:
              - match: {mode: CLIENT}
                providers: [{name: zipkin}]
                randomSamplingPercentage: 25.5
                disableSpanReporting: false
                customTags:
                  team: {literal: {value: edge}}
                  zone: {environment: {name: ZONE, defaultValue: unknown}}
                  user: {header: {name: x-user}}
              metrics:
              - providers: [{name: prometheus}]
                reportingInterval: 5s
                overrides:
                - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
                  tagOverrides:
                    request_protocol: {operation: REMOVE}
                    tier: {value: "'gold'"}
                - match: {metric: ALL_METRICS}
                  disabled: true
              accessLogging:
              - providers: [{name: envoy}]
                disabled: false
            """))
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let policy = try #require(result.configuration?.telemetry.first)
        #expect(policy.meta.name == "mesh-default")
        #expect(policy.meta.location?.description == "conf/test.yaml:1")
        #expect(policy.scope == .mesh)
        #expect(policy.tracing == [TracingRule(
            mode: .client, providers: ["zipkin"], randomSamplingPercentage: 25.5, disableSpanReporting: false,
            customTags: [
                "team": .literal("edge"),
                "zone": .environment(name: "ZONE", defaultValue: "unknown"),
                "user": .header(name: "x-user", defaultValue: nil),
            ]
        )])
        #expect(policy.metrics == [MetricsRule(
            providers: ["prometheus"],
            overrides: [
                MetricOverride(metric: .requestCount, tagOverrides: ["request_protocol": .remove, "tier": .upsert("gold")]),
                MetricOverride(metric: nil, disabled: true),
            ],
            reportingInterval: .seconds(5)
        )])
        #expect(policy.accessLogging == [AccessLoggingRule(providers: ["envoy"], disabled: false)])
    }

    @Test func scopeFollowsNamespaceAndSelector() throws {
        let result = load(
            Self.telemetry("mesh", "  tracing: [{randomSamplingPercentage: 1}]") + "\n---\n"
                + Self.telemetry("ns", namespace: "default", "  tracing: [{randomSamplingPercentage: 2}]") + "\n---\n"
                + Self.telemetry("gw", "  selector: {matchLabels: {istio: ingressgateway}}\n  tracing: [{randomSamplingPercentage: 3}]")
        )
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let scopes = try #require(result.configuration?.telemetry.map(\.scope))
        #expect(scopes == [.mesh, .namespace("default"), .workload(namespace: "istio-system", labels: ["istio": "ingressgateway"])])
    }

    @Test func policyErrorsAndWarningsPointAtTheirLines() {
        let result = load(Self.telemetry("bad", """
              targetRef: {kind: Gateway, name: gw}
              tracing:
              - randomSamplingPercentage: 101
                useRequestIdForTraceSampling: true
                customTags:
                  both: {literal: {value: a}, header: {name: b}}
                  none: {}
                  nameless: {environment: {name: ""}}
              metrics:
              - overrides:
                - match: {metric: REQUESTS}
                  tagOverrides:
                    a: {operation: UPSERT}
                    b: {operation: REMOVE, value: x}
                    c: {value: request.host}
                    d: {operation: DELETE}
                reportingInterval: 0s
              accessLogging:
              - filter: {expression: "response.code >= 400"}
                match: {mode: BOTH}
              tracng: []
            """))
        #expect(result.configuration == nil)
        #expect(result.lines == [
            "conf/test.yaml:7: warning: Telemetry/bad.spec.targetRef: not supported yet; ignored",
            "conf/test.yaml:9: error: Telemetry/bad.spec.tracing[0].randomSamplingPercentage: 101 is out of range 0..100",
            "conf/test.yaml:10: warning: Telemetry/bad.spec.tracing[0].useRequestIdForTraceSampling: not supported yet; ignored",
            "conf/test.yaml:12: error: Telemetry/bad.spec.tracing[0].customTags.both: a custom tag has one of literal, environment or header, not literal and header",
            "conf/test.yaml:13: error: Telemetry/bad.spec.tracing[0].customTags.none: a custom tag needs one of literal, environment or header",
            "conf/test.yaml:14: error: Telemetry/bad.spec.tracing[0].customTags.nameless.environment.name: the name must not be empty",
            "conf/test.yaml:17: error: Telemetry/bad.spec.metrics[0].overrides[0].match.metric: invalid value \"REQUESTS\"; expected one of ALL_METRICS, REQUEST_COUNT, REQUEST_DURATION, REQUEST_SIZE, RESPONSE_SIZE, TCP_OPENED_CONNECTIONS, TCP_CLOSED_CONNECTIONS, TCP_SENT_BYTES, TCP_RECEIVED_BYTES, GRPC_REQUEST_MESSAGES, GRPC_RESPONSE_MESSAGES",
            "conf/test.yaml:19: error: Telemetry/bad.spec.metrics[0].overrides[0].tagOverrides.a.value: required field is missing",
            "conf/test.yaml:20: warning: Telemetry/bad.spec.metrics[0].overrides[0].tagOverrides.b.value: a REMOVE takes no value; ignored",
            "conf/test.yaml:21: warning: Telemetry/bad.spec.metrics[0].overrides[0].tagOverrides.c.value: Meshgate does not evaluate CEL expressions: the label is set to the literal text \"request.host\" (quote a literal as \"'request.host'\")",
            "conf/test.yaml:22: error: Telemetry/bad.spec.metrics[0].overrides[0].tagOverrides.d.operation: invalid value \"DELETE\"; expected one of UPSERT, REMOVE",
            "conf/test.yaml:23: error: Telemetry/bad.spec.metrics[0].reportingInterval: the reporting interval must be longer than 0",
            "conf/test.yaml:25: warning: Telemetry/bad.spec.accessLogging[0].filter: not supported yet; ignored",
            "conf/test.yaml:26: error: Telemetry/bad.spec.accessLogging[0].match.mode: invalid value \"BOTH\"; expected one of CLIENT_AND_SERVER, CLIENT, SERVER",
            "conf/test.yaml:27: error: Telemetry/bad.spec.tracng: unknown field 'tracng' (did you mean 'tracing'?)",
        ])
    }

    @Test func unknownTelemetryVersionsAndKindsAreErrors() {
        let result = load(
            Self.telemetry("a", apiVersion: "telemetry.istio.io/v2", "  tracing: []") + "\n---\n"
                + "apiVersion: telemetry.istio.io/v1\nkind: Telemetri\nmetadata: {name: b}\nspec: {}\n"
        )
        #expect(result.lines == [
            "conf/test.yaml:1: error: Telemetry/a.apiVersion: unknown apiVersion telemetry.istio.io/v2; Meshgate reads telemetry.istio.io/v1alpha1 and v1",
            "conf/test.yaml:10: error: Telemetri/b.kind: unknown kind Telemetri in telemetry.istio.io/v1 (did you mean Telemetry?)",
        ])
    }

    @Test func aSecondPolicyOfTheSameScopeIsIgnoredWithAWarning() throws {
        let result = load(
            Self.telemetry("first", "  tracing: [{randomSamplingPercentage: 10}]") + "\n---\n"
                + Self.telemetry("second", "  tracing: [{randomSamplingPercentage: 20}]") + "\n---\n"
                + Self.telemetry("gw1", "  selector: {matchLabels: {istio: ingressgateway}}") + "\n---\n"
                + Self.telemetry("gw2", "  selector: {matchLabels: {istio: ingressgateway}}") + "\n---\n"
                + Self.telemetry("other", "  selector: {matchLabels: {istio: egressgateway}}")
        )
        #expect(result.lines == [
            "conf/test.yaml:9: warning: Telemetry/second: ignored: Telemetry istio-system/first (at conf/test.yaml:1) is already the policy mesh-wide; only the first applies",
            "conf/test.yaml:25: warning: Telemetry/gw2: ignored: Telemetry istio-system/gw1 (at conf/test.yaml:17) is already the policy selecting this instance; only the first applies",
        ])
        let configuration = try #require(result.configuration)
        #expect(configuration.effectiveTelemetry().samplingPercentage == 10)
    }

    // MARK: Effective telemetry

    static func policy(_ name: String, namespace: String = "istio-system", selector: [String: String]? = nil, tracing: [TracingRule] = [],
                       metrics: [MetricsRule] = [], accessLogging: [AccessLoggingRule] = []) -> TelemetryPolicy {
        TelemetryPolicy(
            meta: ResourceMeta(kind: "Telemetry", name: name, namespace: namespace), selector: selector,
            tracing: tracing, metrics: metrics, accessLogging: accessLogging
        )
    }

    @Test func withoutPoliciesMeshgateYamlRules() {
        var settings = MeshSettings()
        settings.tracingSampling = 5
        settings.zipkinAddress = "127.0.0.1:9411"
        settings.accessLogFile = "/var/log/meshgate/access.log"
        settings.accessLogEncoding = .json
        settings.tcpReportingDuration = .seconds(2)
        let effective = effectiveTelemetry(for: settings, policies: [])
        #expect(effective == EffectiveTelemetry(
            samplingPercentage: 5, zipkinAddress: "127.0.0.1:9411", spanReporting: true, customTags: [:],
            accessLogFile: "/var/log/meshgate/access.log", accessLogEncoding: .json, reportingInterval: .seconds(2), metrics: [:]
        ))
        #expect(effective.reportsSpans)
        #expect(effectiveTelemetry(for: MeshSettings(), policies: []).accessLogFile == nil)
    }

    @Test func theMostSpecificPolicyWinsFieldByField() {
        var settings = MeshSettings()
        settings.namespace = "edge"
        settings.labels = ["app": "gateway", "version": "v2"]
        let policies = [
            Self.policy("workload", namespace: "edge", selector: ["app": "gateway"], tracing: [TracingRule(randomSamplingPercentage: 50)]),
            Self.policy("mesh", tracing: [TracingRule(
                randomSamplingPercentage: 10, disableSpanReporting: true, customTags: ["team": .literal("mesh"), "env": .literal("prod")]
            )]),
            Self.policy("namespace", namespace: "edge", tracing: [TracingRule(randomSamplingPercentage: 20, customTags: ["team": .literal("edge")])]),
            Self.policy("elsewhere", namespace: "default", tracing: [TracingRule(randomSamplingPercentage: 99)]),
            Self.policy("other-workload", namespace: "edge", selector: ["app": "other"], tracing: [TracingRule(randomSamplingPercentage: 98)]),
        ]
        #expect(selectedTelemetryPolicies(for: settings, policies: policies).map(\.meta.name) == ["mesh", "namespace", "workload"])
        let effective = effectiveTelemetry(for: settings, policies: policies)
        #expect(effective.samplingPercentage == 50)
        #expect(!effective.spanReporting)
        #expect(effective.customTags == ["team": .literal("edge"), "env": .literal("prod")])
    }

    @Test func rulesForTheOtherSideDoNotApply() {
        let policies = [Self.policy("mesh", tracing: [
            TracingRule(mode: .server, randomSamplingPercentage: 70),
            TracingRule(mode: .client, randomSamplingPercentage: 30),
        ])]
        #expect(effectiveTelemetry(for: MeshSettings(), policies: policies).samplingPercentage == 30)
        #expect(effectiveTelemetry(for: MeshSettings(), policies: policies, mode: .server).samplingPercentage == 70)
    }

    @Test func accessLoggingIsTurnedOnByAProviderAndOffByDisabled() {
        let on = [Self.policy("mesh", accessLogging: [AccessLoggingRule(providers: ["envoy"])])]
        #expect(effectiveTelemetry(for: MeshSettings(), policies: on).accessLogFile == "/dev/stdout")
        var settings = MeshSettings()
        settings.accessLogFile = "/tmp/access.log"
        #expect(effectiveTelemetry(for: settings, policies: on).accessLogFile == "/tmp/access.log")
        let off = [
            Self.policy("mesh", accessLogging: [AccessLoggingRule(providers: ["envoy"])]),
            Self.policy("gw", selector: ["istio": "ingressgateway"], accessLogging: [AccessLoggingRule(disabled: true)]),
        ]
        #expect(effectiveTelemetry(for: settings, policies: off).accessLogFile == nil)
        let serverOnly = [Self.policy("mesh", accessLogging: [AccessLoggingRule(mode: .server, disabled: true)])]
        #expect(effectiveTelemetry(for: settings, policies: serverOnly).accessLogFile == "/tmp/access.log")
    }

    @Test func metricOverridesApplyInOrder() {
        let policies = [
            Self.policy("mesh", metrics: [MetricsRule(
                overrides: [
                    MetricOverride(metric: nil, disabled: true),
                    MetricOverride(metric: .requestCount, disabled: false, tagOverrides: ["response_code": .remove, "tier": .upsert("gold")]),
                ],
                reportingInterval: .seconds(5)
            )]),
            Self.policy("gw", selector: ["istio": "ingressgateway"], metrics: [MetricsRule(overrides: [
                MetricOverride(metric: .requestCount, tagOverrides: ["response_code": .upsert("any"), "tier": .remove]),
                MetricOverride(metric: .tcpSentBytes, mode: .server, disabled: false),
            ])]),
        ]
        let effective = effectiveTelemetry(for: MeshSettings(), policies: policies)
        #expect(effective.reportingInterval == .seconds(5))
        #expect(effective.metric(.requestCount) == MetricCustomization(
            disabled: false, removedTags: ["tier"], upsertedTags: ["response_code": "any"]
        ))
        #expect(effective.metric(.tcpSentBytes).disabled)  // the SERVER override is not the gateway's
        #expect(effective.metric(.requestDuration) == MetricCustomization(disabled: true))
        #expect(IstioMetric.tcpOpenedConnections.prometheusName == "istio_tcp_connections_opened_total")
    }
}
