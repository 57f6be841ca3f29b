import MeshConfig
import NIOConcurrencyHelpers
import NIOCore

/// Istio's standard metrics (`istio_requests_total`, the three histograms, the four TCP series)
/// with Istio's label set in Istio's order, plus Meshgate's own.
///
/// Counted per event loop, with no lock and no atomic: each loop owns a ``MetricsShard`` that only
/// it touches; a scrape asks every loop for a copy of its shard and merges them. Label text is
/// rendered once per endpoint (``DestinationIdentity``) and once per process (the source side).
public final class MeshMetrics: Sendable {
    /// Istio's default buckets (Envoy's `HistogramSettingsImpl::defaultBuckets`), for durations in
    /// milliseconds and for sizes in bytes alike.
    public static let buckets: [Double] = [
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1_800_000, 3_600_000,
    ]

    private let shards: [ObjectIdentifier: MetricsShard]
    private let loops: [EventLoop]
    /// Process-level counters and gauges (reloads, config generation, drops), set by the control plane.
    private let control = NIOLockedValueBox<[String: Double]>([:])
    /// `reporter="source",source_workload=…,source_cluster=…` for this instance.
    private let sourceLabels: NIOLockedValueBox<String>

    public init(group: EventLoopGroup, sourceLabels: String) {
        var shards: [ObjectIdentifier: MetricsShard] = [:]
        var loops: [EventLoop] = []
        for loop in group.makeIterator() {
            shards[ObjectIdentifier(loop)] = MetricsShard(eventLoop: loop)
            loops.append(loop)
        }
        self.shards = shards
        self.loops = loops
        self.sourceLabels = NIOLockedValueBox(sourceLabels)
    }

    /// The reporter and source labels of a gateway: `reporter="source"` (Istio reports gateways as
    /// sources) and this instance's workload, namespace and labels.
    public static func gatewaySourceLabels(workload: String, namespace: String, labels: [String: String]) -> String {
        let app = labels["app"] ?? workload
        let version = labels["version"] ?? "unknown"
        return PrometheusText.labels([
            ("reporter", "source"), ("source_workload", workload), ("source_workload_namespace", namespace),
            ("source_principal", "unknown"), ("source_app", app), ("source_version", version),
            ("source_canonical_service", labels["service.istio.io/canonical-name"] ?? app),
            ("source_canonical_revision", labels["service.istio.io/canonical-revision"] ?? labels["version"] ?? "latest"),
            ("source_cluster", "Kubernetes"),
        ])
    }

    /// Replaces the source labels (after a reload changed this instance's name or labels).
    public func setSourceLabels(_ labels: String) {
        self.sourceLabels.withLockedValue { $0 = labels }
    }

    /// The shard of `eventLoop`; use only on that loop.
    func shard(for eventLoop: EventLoop) -> MetricsShard {
        guard let shard = self.shards[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("event loop \(eventLoop) is not part of the proxy's group")
        }
        return shard
    }

    /// Sets a process-level sample, e.g. `meshgate_config_generation` or
    /// `meshgate_config_reload_total{result="failure"}`.
    public func setControl(_ series: String, _ value: Double) {
        self.control.withLockedValue { $0[series] = value }
    }

    public func addControl(_ series: String, _ delta: Double = 1) {
        self.control.withLockedValue { $0[series, default: 0] += delta }
    }

    // MARK: - Scrape

    /// Copies every loop's shard (on its loop) and merges them.
    func collect() async -> MetricsShard.Data {
        var merged = MetricsShard.Data()
        for loop in self.loops {
            let shard = self.shard(for: loop)
            if let data = try? await loop.submit({ shard.data }).get() {
                merged.merge(data)
            }
        }
        return merged
    }

    /// The Prometheus text exposition (format 0.0.4) of every series, with a Telemetry resource's
    /// metric `overrides` applied by Prometheus name (a disabled metric is left out; removed and
    /// upserted tags change the label sets, and series that become equal are summed).
    public func prometheusText(extra: [String: Double] = [:], overrides: [String: MetricCustomization] = [:]) async -> String {
        let data = await self.collect()
        let source = self.sourceLabels.withLockedValue { $0 }
        var out = ""
        out.reserveCapacity(4096 + data.http.count * 4096)

        let http: [(labels: String, series: HTTPSeries)] = data.http.map { key, series in
            let labels = "\(key.source?.prometheusLabels ?? source),\(key.destination.prometheusLabels),"
                + PrometheusText.labels([
                    ("request_protocol", "http"), ("response_flags", key.flags),
                    ("connection_security_policy", key.source?.securityPolicy ?? "unknown"), ("response_code", String(key.code)),
                    ("grpc_response_status", ""),
                ])
            return (labels, series)
        }
        func family<Value>(_ name: String, _ pick: (HTTPSeries) -> Value, merge: (inout Value, Value) -> Void) -> [(String, Value)]? {
            let custom = overrides[name] ?? MetricCustomization()
            if custom.disabled { return nil }
            var merged: [String: Value] = [:]
            for (labels, series) in http {
                let key = Self.apply(custom, to: labels)
                if merged[key] == nil { merged[key] = pick(series) } else { merge(&merged[key]!, pick(series)) }
            }
            return merged.sorted { $0.key < $1.key }
        }
        if let requests = family("istio_requests_total", { $0.requests }, merge: { $0 += $1 }) {
            out += "# HELP istio_requests_total Requests, by source, destination and response.\n"
            out += "# TYPE istio_requests_total counter\n"
            for (labels, value) in requests { out += "istio_requests_total{\(labels)} \(value)\n" }
        }
        for (name, help, pick) in [
            ("istio_request_duration_milliseconds", "Request duration in milliseconds.", { (s: HTTPSeries) in s.duration }),
            ("istio_request_bytes", "Request body size in bytes.", { (s: HTTPSeries) in s.requestBytes }),
            ("istio_response_bytes", "Response body size in bytes.", { (s: HTTPSeries) in s.responseBytes }),
        ] {
            if let series = family(name, pick, merge: { $0.merge($1) }) {
                Self.renderHistogram(&out, name, help, series)
            }
        }

        let tcp: [(labels: String, series: TCPSeries)] = data.tcp.map { key, series in
            let labels = "\(key.source?.prometheusLabels ?? source),\(key.destination.prometheusLabels),"
                + PrometheusText.labels([
                    ("request_protocol", "tcp"), ("response_flags", key.flags),
                    ("connection_security_policy", key.source?.securityPolicy ?? "unknown"),
                ])
            return (labels, series)
        }
        for (name, help, value) in [
            ("istio_tcp_sent_bytes_total", "Bytes sent to the client (response direction).", { (s: TCPSeries) in s.sentBytes }),
            ("istio_tcp_received_bytes_total", "Bytes received from the client (request direction).", { (s: TCPSeries) in s.receivedBytes }),
            ("istio_tcp_connections_opened_total", "TCP connections opened.", { (s: TCPSeries) in s.opened }),
            ("istio_tcp_connections_closed_total", "TCP connections closed.", { (s: TCPSeries) in s.closed }),
        ] {
            let custom = overrides[name] ?? MetricCustomization()
            if custom.disabled { continue }
            var merged: [String: UInt64] = [:]
            for (labels, series) in tcp { merged[Self.apply(custom, to: labels), default: 0] += value(series) }
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for (labels, total) in merged.sorted(by: { $0.key < $1.key }) { out += "\(name){\(labels)} \(total)\n" }
        }

        out += "# HELP istio_build Istio component build info.\n# TYPE istio_build gauge\n"
        out += "istio_build{component=\"proxy\",tag=\"meshgate\"} 1\n"

        let control = self.control.withLockedValue { $0 }.merging(extra) { _, new in new }
        var families: [String: [(String, Double)]] = [:]
        for (series, value) in control {
            let name = String(series.prefix { $0 != "{" })
            families[name, default: []].append((series, value))
        }
        for name in families.keys.sorted() {
            // Envoy's counters keep Envoy's names (`envoy_cluster_upstream_rq_pending_overflow`).
            let type = name.hasSuffix("_total") || name.hasSuffix("_overflow") ? "counter" : "gauge"
            out += "# HELP \(name) \(Self.help[name] ?? "Meshgate process metric.")\n"
            out += "# TYPE \(name) \(type)\n"
            for (series, value) in families[name]!.sorted(by: { $0.0 < $1.0 }) {
                out += "\(series) \(PrometheusText.value(value))\n"
            }
        }
        return out
    }

    /// A label set with a metric customization applied: removed tags dropped, upserted tags
    /// replaced in place or appended in name order.
    static func apply(_ custom: MetricCustomization, to labels: String) -> String {
        if custom.removedTags.isEmpty && custom.upsertedTags.isEmpty { return labels }
        var pairs = PrometheusText.parseLabels(labels).filter { !custom.removedTags.contains($0.0) }
        var upserts = custom.upsertedTags
        for index in pairs.indices {
            if let value = upserts.removeValue(forKey: pairs[index].0) { pairs[index].1 = value }
        }
        pairs += upserts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return PrometheusText.labels(pairs)
    }

    /// Help texts of Meshgate's own metrics.
    static let help: [String: String] = [
        "meshgate_config_generation": "Generation of the configuration being served.",
        "meshgate_config_reload_total": "Configuration reloads, by result.",
        "meshgate_downstream_connections_active": "Open downstream connections.",
        "meshgate_listener_info": "Bound listeners.",
        "meshgate_access_log_dropped_total": "Access-log lines dropped (buffer full or write errors).",
        "meshgate_tracing_spans_dropped_total": "Spans dropped (queue full or collector errors).",
        "meshgate_downstream_rejected_total": "Requests refused as malformed or ambiguous, by reason.",
        "meshgate_upstream_protocol_errors_total": "Upstream responses refused as malformed or ambiguous (UPE).",
        "meshgate_mirrored_requests_total": "Copies of requests sent to routes' mirror clusters, by mirror cluster.",
        "meshgate_upstream_retries_total": "Retries of upstream requests by the routes' retry policies, by cluster.",
        "envoy_cluster_upstream_cx_overflow": "Connections a cluster's maxConnections refused or queued (Envoy's name).",
        "envoy_cluster_upstream_rq_pending_overflow": "Requests refused with 503 UO: http1MaxPendingRequests were already waiting.",
        "envoy_cluster_upstream_rq_overflow": "Requests refused with 503 UO by a cluster's http2MaxRequests.",
        "envoy_cluster_upstream_rq_retry_overflow": "Retries not made: the cluster's maxRetries were outstanding.",
        "envoy_cluster_circuit_breakers_default_remaining_cx": "Connections left before a cluster's maxConnections.",
        "envoy_cluster_circuit_breakers_default_remaining_pending": "Requests that may still wait for a connection (http1MaxPendingRequests).",
        "envoy_cluster_circuit_breakers_default_remaining_rq": "Requests left before a cluster's http2MaxRequests.",
        "envoy_cluster_circuit_breakers_default_remaining_retries": "Retries left before a cluster's maxRetries.",
    ]

    private static func renderHistogram(_ out: inout String, _ name: String, _ help: String, _ series: [(String, Histogram)]) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (labels, histogram) in series {
            var cumulative: UInt64 = 0
            for (index, bound) in Self.buckets.enumerated() {
                cumulative += histogram.counts[index]
                out += "\(name)_bucket{\(labels),le=\"\(PrometheusText.value(bound))\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(labels),le=\"+Inf\"} \(histogram.count)\n"
            out += "\(name)_sum{\(labels)} \(PrometheusText.value(histogram.sum))\n"
            out += "\(name)_count{\(labels)} \(histogram.count)\n"
        }
    }
}

/// A histogram with ``MeshMetrics/buckets``: per-bucket counts (not cumulative), sum and count.
struct Histogram: Sendable {
    var counts = [UInt64](repeating: 0, count: MeshMetrics.buckets.count)
    var sum: Double = 0
    var count: UInt64 = 0

    mutating func observe(_ value: Double) {
        self.sum += value
        self.count += 1
        // Values above the last bound only count in +Inf.
        if let index = MeshMetrics.buckets.firstIndex(where: { value <= $0 }) {
            self.counts[index] += 1
        }
    }

    mutating func merge(_ other: Histogram) {
        for index in self.counts.indices { self.counts[index] += other.counts[index] }
        self.sum += other.sum
        self.count += other.count
    }
}

struct HTTPSeriesKey: Hashable, Sendable {
    let destination: DestinationIdentity
    /// nil: this proxy is the source.
    let source: SourceIdentity?
    let code: Int
    let flags: String

    static func == (lhs: HTTPSeriesKey, rhs: HTTPSeriesKey) -> Bool {
        lhs.destination === rhs.destination && lhs.source === rhs.source && lhs.code == rhs.code && lhs.flags == rhs.flags
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(self.destination))
        hasher.combine(self.source.map(ObjectIdentifier.init))
        hasher.combine(self.code)
        hasher.combine(self.flags)
    }
}

struct HTTPSeries: Sendable {
    var requests: UInt64 = 0
    var duration = Histogram()
    var requestBytes = Histogram()
    var responseBytes = Histogram()

    mutating func observe(_ record: HTTPExchangeRecord) {
        self.requests += 1
        self.duration.observe(Double(record.durationMicros) / 1000)
        self.requestBytes.observe(Double(record.bytesReceived))
        self.responseBytes.observe(Double(record.bytesSent))
    }

    mutating func merge(_ other: HTTPSeries) {
        self.requests += other.requests
        self.duration.merge(other.duration)
        self.requestBytes.merge(other.requestBytes)
        self.responseBytes.merge(other.responseBytes)
    }
}

struct TCPSeriesKey: Hashable, Sendable {
    let destination: DestinationIdentity
    /// nil: this proxy is the source.
    let source: SourceIdentity?
    let flags: String

    static func == (lhs: TCPSeriesKey, rhs: TCPSeriesKey) -> Bool {
        lhs.destination === rhs.destination && lhs.source === rhs.source && lhs.flags == rhs.flags
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(self.destination))
        hasher.combine(self.source.map(ObjectIdentifier.init))
        hasher.combine(self.flags)
    }
}

struct TCPSeries: Sendable {
    var opened: UInt64 = 0
    var closed: UInt64 = 0
    var sentBytes: UInt64 = 0
    var receivedBytes: UInt64 = 0

    mutating func merge(_ other: TCPSeries) {
        self.opened += other.opened
        self.closed += other.closed
        self.sentBytes += other.sentBytes
        self.receivedBytes += other.receivedBytes
    }
}

/// One event loop's counters. Confined to that loop.
final class MetricsShard: @unchecked Sendable {
    struct Data: Sendable {
        var http: [HTTPSeriesKey: HTTPSeries] = [:]
        var tcp: [TCPSeriesKey: TCPSeries] = [:]

        mutating func merge(_ other: Data) {
            for (key, series) in other.http { self.http[key, default: HTTPSeries()].merge(series) }
            for (key, series) in other.tcp { self.tcp[key, default: TCPSeries()].merge(series) }
        }
    }

    let eventLoop: EventLoop
    private(set) var data = Data()

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func recordHTTP(_ record: HTTPExchangeRecord) {
        let key = HTTPSeriesKey(
            destination: record.destination ?? .unknown, source: record.source, code: record.responseCode, flags: record.responseFlags
        )
        // One hash lookup; the series is updated in place.
        self.data.http[key, default: HTTPSeries()].observe(record)
    }

    func tcpOpened(_ record: TCPConnectionRecord) {
        self.data.tcp[Self.tcpKey(record), default: TCPSeries()].opened += 1
    }

    func tcpBytes(_ record: TCPConnectionRecord, sent: Int, received: Int) {
        let key = Self.tcpKey(record)
        self.data.tcp[key, default: TCPSeries()].sentBytes += UInt64(sent)
        self.data.tcp[key]!.receivedBytes += UInt64(received)
    }

    func tcpClosed(_ record: TCPConnectionRecord) {
        self.data.tcp[Self.tcpKey(record), default: TCPSeries()].closed += 1
    }

    private static func tcpKey(_ record: TCPConnectionRecord) -> TCPSeriesKey {
        TCPSeriesKey(destination: record.destination ?? .unknown, source: record.source, flags: record.responseFlags)
    }
}
