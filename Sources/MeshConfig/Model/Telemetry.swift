/// `kind: Telemetry` (`telemetry.istio.io/v1alpha1` and `v1`): tracing, metrics and access-log
/// settings for the workloads a policy selects.
///
/// Scope, as Istio defines it: a policy without a selector in the root namespace (`istio-system`)
/// applies mesh-wide; one without a selector elsewhere applies to its namespace; one with
/// `selector.matchLabels` applies to the workloads of its namespace whose labels include them.
/// ``effectiveTelemetry(for:policies:mode:)`` folds the policies that select an instance over its
/// `meshgate.yaml` values.
public struct TelemetryPolicy: Sendable, Hashable {
    /// Istio's default `meshConfig.rootNamespace`: a policy there without a selector is mesh-wide.
    public static let rootNamespace = "istio-system"

    public enum Scope: Sendable, Hashable {
        case mesh
        case namespace(String)
        /// The workloads of `namespace` whose labels include `labels` (`selector.matchLabels`).
        case workload(namespace: String, labels: [String: String])

        /// How specific the scope is: policies are applied in this order, the most specific last.
        public var rank: Int {
            switch self {
            case .mesh: return 0
            case .namespace: return 1
            case .workload: return 2
            }
        }
    }

    public var meta: ResourceMeta
    public var scope: Scope
    public var tracing: [TracingRule]
    public var metrics: [MetricsRule]
    public var accessLogging: [AccessLoggingRule]

    public init(
        meta: ResourceMeta,
        selector: [String: String]? = nil,
        tracing: [TracingRule] = [],
        metrics: [MetricsRule] = [],
        accessLogging: [AccessLoggingRule] = []
    ) {
        self.meta = meta
        if let selector {
            self.scope = .workload(namespace: meta.namespace, labels: selector)
        } else if meta.namespace == Self.rootNamespace {
            self.scope = .mesh
        } else {
            self.scope = .namespace(meta.namespace)
        }
        self.tracing = tracing
        self.metrics = metrics
        self.accessLogging = accessLogging
    }

    /// Whether this policy applies to an instance with these labels in this namespace.
    public func selects(namespace: String, labels: [String: String]) -> Bool {
        switch self.scope {
        case .mesh:
            return true
        case .namespace(let scoped):
            return scoped == namespace
        case .workload(let scoped, let selector):
            return scoped == namespace && selector.allSatisfy { labels[$0.key] == $0.value }
        }
    }
}

/// Which side of the traffic a rule applies to (`match.mode`). A gateway is a client (it reports as
/// `reporter="source"`); a sidecar is a client outbound and a server inbound.
public enum TelemetryMode: String, Sendable, Hashable {
    case client = "CLIENT"
    case server = "SERVER"
    case clientAndServer = "CLIENT_AND_SERVER"

    public func covers(_ side: TelemetryMode) -> Bool { self == .clientAndServer || self == side }
}

/// A span tag added to every span: `customTags` of a Telemetry `tracing` rule.
public enum CustomTag: Sendable, Hashable {
    case literal(String)
    /// The value of an environment variable of the proxy, else `defaultValue`.
    case environment(name: String, defaultValue: String?)
    /// The value of a request header, else `defaultValue`.
    case header(name: String, defaultValue: String?)
}

public struct TracingRule: Sendable, Hashable {
    public var mode: TelemetryMode
    public var providers: [String]
    /// 0...100; nil leaves the inherited value.
    public var randomSamplingPercentage: Double?
    public var disableSpanReporting: Bool?
    public var customTags: [String: CustomTag]

    public init(
        mode: TelemetryMode = .clientAndServer,
        providers: [String] = [],
        randomSamplingPercentage: Double? = nil,
        disableSpanReporting: Bool? = nil,
        customTags: [String: CustomTag] = [:]
    ) {
        self.mode = mode
        self.providers = providers
        self.randomSamplingPercentage = randomSamplingPercentage
        self.disableSpanReporting = disableSpanReporting
        self.customTags = customTags
    }
}

/// Istio's standard metrics, as `overrides[].match.metric` names them.
public enum IstioMetric: String, Sendable, Hashable, CaseIterable {
    case requestCount = "REQUEST_COUNT"
    case requestDuration = "REQUEST_DURATION"
    case requestSize = "REQUEST_SIZE"
    case responseSize = "RESPONSE_SIZE"
    case tcpOpenedConnections = "TCP_OPENED_CONNECTIONS"
    case tcpClosedConnections = "TCP_CLOSED_CONNECTIONS"
    case tcpSentBytes = "TCP_SENT_BYTES"
    case tcpReceivedBytes = "TCP_RECEIVED_BYTES"
    case grpcRequestMessages = "GRPC_REQUEST_MESSAGES"
    case grpcResponseMessages = "GRPC_RESPONSE_MESSAGES"

    /// The Prometheus name it is exported under.
    public var prometheusName: String {
        switch self {
        case .requestCount: return "istio_requests_total"
        case .requestDuration: return "istio_request_duration_milliseconds"
        case .requestSize: return "istio_request_bytes"
        case .responseSize: return "istio_response_bytes"
        case .tcpOpenedConnections: return "istio_tcp_connections_opened_total"
        case .tcpClosedConnections: return "istio_tcp_connections_closed_total"
        case .tcpSentBytes: return "istio_tcp_sent_bytes_total"
        case .tcpReceivedBytes: return "istio_tcp_received_bytes_total"
        case .grpcRequestMessages: return "istio_request_messages_total"
        case .grpcResponseMessages: return "istio_response_messages_total"
        }
    }
}

/// A change to one label of a metric: `tagOverrides.<tag>`.
public enum TagOperation: Sendable, Hashable {
    /// Set the label to this value (adding the label when the metric has none of that name).
    case upsert(String)
    case remove
}

public struct MetricOverride: Sendable, Hashable {
    /// nil = `ALL_METRICS` (Istio's default when `match.metric` is absent).
    public var metric: IstioMetric?
    public var mode: TelemetryMode
    public var disabled: Bool?
    public var tagOverrides: [String: TagOperation]

    public init(
        metric: IstioMetric? = nil, mode: TelemetryMode = .clientAndServer, disabled: Bool? = nil,
        tagOverrides: [String: TagOperation] = [:]
    ) {
        self.metric = metric
        self.mode = mode
        self.disabled = disabled
        self.tagOverrides = tagOverrides
    }

    public func applies(to metric: IstioMetric) -> Bool { self.metric == nil || self.metric == metric }
}

public struct MetricsRule: Sendable, Hashable {
    public var providers: [String]
    public var overrides: [MetricOverride]
    /// How often open TCP connections' byte counters are flushed; nil leaves the inherited value.
    public var reportingInterval: Duration?

    public init(providers: [String] = [], overrides: [MetricOverride] = [], reportingInterval: Duration? = nil) {
        self.providers = providers
        self.overrides = overrides
        self.reportingInterval = reportingInterval
    }
}

public struct AccessLoggingRule: Sendable, Hashable {
    public var mode: TelemetryMode
    public var providers: [String]
    public var disabled: Bool?

    public init(mode: TelemetryMode = .clientAndServer, providers: [String] = [], disabled: Bool? = nil) {
        self.mode = mode
        self.providers = providers
        self.disabled = disabled
    }
}

// MARK: - Effective telemetry

/// The telemetry settings one instance runs with, for one side of its traffic: `meshgate.yaml`'s
/// values with the Telemetry policies that select the instance applied over them.
public struct EffectiveTelemetry: Sendable, Hashable {
    /// Percent (0...100) of requests traced when the client did not decide.
    public var samplingPercentage: Double
    /// Zipkin collector `host:port`; nil = no collector.
    public var zipkinAddress: String?
    /// False when a policy set `disableSpanReporting: true`: trace headers still propagate,
    /// spans are not sent.
    public var spanReporting: Bool
    /// Extra span tags, by tag name.
    public var customTags: [String: CustomTag]
    /// Where access-log lines go; nil = access logging off.
    public var accessLogFile: String?
    public var accessLogEncoding: AccessLogEncoding
    /// How often open TCP connections' byte counters are flushed.
    public var reportingInterval: Duration
    /// Metrics with an override, and what the overrides, applied in order, came to. A metric
    /// absent from this map is reported as standard.
    public var metrics: [IstioMetric: MetricCustomization]

    public init(
        samplingPercentage: Double, zipkinAddress: String?, spanReporting: Bool, customTags: [String: CustomTag],
        accessLogFile: String?, accessLogEncoding: AccessLogEncoding, reportingInterval: Duration,
        metrics: [IstioMetric: MetricCustomization]
    ) {
        self.samplingPercentage = samplingPercentage
        self.zipkinAddress = zipkinAddress
        self.spanReporting = spanReporting
        self.customTags = customTags
        self.accessLogFile = accessLogFile
        self.accessLogEncoding = accessLogEncoding
        self.reportingInterval = reportingInterval
        self.metrics = metrics
    }

    /// Whether spans are sent anywhere.
    public var reportsSpans: Bool { self.spanReporting && self.zipkinAddress != nil }

    /// The customization of `metric` (standard when none applies).
    public func metric(_ metric: IstioMetric) -> MetricCustomization { self.metrics[metric] ?? MetricCustomization() }
}

/// What the overrides that apply to one metric came to.
public struct MetricCustomization: Sendable, Hashable {
    public var disabled: Bool
    /// Standard labels removed, in no particular order.
    public var removedTags: Set<String>
    /// Labels set to a literal value (a standard label's value replaced, or a new label appended
    /// after the standard ones, in name order).
    public var upsertedTags: [String: String]

    public init(disabled: Bool = false, removedTags: Set<String> = [], upsertedTags: [String: String] = [:]) {
        self.disabled = disabled
        self.removedTags = removedTags
        self.upsertedTags = upsertedTags
    }
}

/// The telemetry an instance runs with for one side (`mode`: `.client` for a gateway and a
/// sidecar's outbound traffic, `.server` for a sidecar's inbound).
///
/// Policies apply from the least to the most specific (mesh-wide, then the instance's namespace,
/// then those selecting it by labels), each field set by a later policy replacing the earlier
/// value, as Istio merges them: sampling, `disableSpanReporting`, `reportingInterval` and
/// `accessLogging.disabled` are replaced; custom tags are merged by name; metric overrides are
/// applied in order. Within one policy, rules apply in list order. Only the first policy of each
/// scope counts (the others are reported by validation), as Istio keeps the oldest.
///
/// Access logging is on when `meshgate.yaml` names an `accessLogFile`, or when a policy's
/// `accessLogging` rule selects a provider (Istio's `envoy` provider writes to `/dev/stdout`, so
/// that is the file then), and off when the last rule that says so has `disabled: true`.
public func effectiveTelemetry(
    for settings: MeshSettings, policies: [TelemetryPolicy], mode: TelemetryMode = .client
) -> EffectiveTelemetry {
    var result = EffectiveTelemetry(
        samplingPercentage: settings.tracingSampling,
        zipkinAddress: settings.zipkinAddress,
        spanReporting: true,
        customTags: [:],
        accessLogFile: settings.accessLogFile.isEmpty ? nil : settings.accessLogFile,
        accessLogEncoding: settings.accessLogEncoding,
        reportingInterval: settings.tcpReportingDuration,
        metrics: [:]
    )
    let fileWhenEnabled = settings.accessLogFile.isEmpty ? "/dev/stdout" : settings.accessLogFile
    for policy in selectedTelemetryPolicies(for: settings, policies: policies) {
        for rule in policy.tracing where rule.mode.covers(mode) {
            if let percentage = rule.randomSamplingPercentage { result.samplingPercentage = percentage }
            if let disabled = rule.disableSpanReporting { result.spanReporting = !disabled }
            result.customTags.merge(rule.customTags) { _, new in new }
        }
        for rule in policy.metrics {
            if let interval = rule.reportingInterval { result.reportingInterval = interval }
            for override in rule.overrides where override.mode.covers(mode) {
                for metric in IstioMetric.allCases where override.applies(to: metric) {
                    var customization = result.metric(metric)
                    if let disabled = override.disabled { customization.disabled = disabled }
                    for (tag, operation) in override.tagOverrides {
                        switch operation {
                        case .upsert(let value):
                            customization.removedTags.remove(tag)
                            customization.upsertedTags[tag] = value
                        case .remove:
                            customization.upsertedTags[tag] = nil
                            customization.removedTags.insert(tag)
                        }
                    }
                    result.metrics[metric] = customization
                }
            }
        }
        for rule in policy.accessLogging where rule.mode.covers(mode) {
            if rule.disabled == true {
                result.accessLogFile = nil
            } else if rule.disabled == false || !rule.providers.isEmpty {
                result.accessLogFile = fileWhenEnabled
            }
        }
    }
    return result
}

/// The policies that apply to an instance, least specific first: the first mesh-wide one, the
/// first of its namespace, the first selecting it by labels (file order stands in for Istio's
/// creation time).
public func selectedTelemetryPolicies(for settings: MeshSettings, policies: [TelemetryPolicy]) -> [TelemetryPolicy] {
    var firstByRank: [Int: TelemetryPolicy] = [:]
    for policy in policies where policy.selects(namespace: settings.namespace, labels: settings.labels) {
        if firstByRank[policy.scope.rank] == nil { firstByRank[policy.scope.rank] = policy }
    }
    return firstByRank.sorted { $0.key < $1.key }.map(\.value)
}
