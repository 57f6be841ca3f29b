#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MeshConfig

/// One span in Zipkin's v2 model, as Envoy's zipkin tracer reports it (`POST /api/v2/spans`, a
/// JSON array of these).
public struct ZipkinSpan: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case client = "CLIENT"
        case server = "SERVER"
    }

    public var traceID: String
    public var parentID: String?
    public var id: String
    public var kind: Kind
    public var name: String
    /// Microseconds since the Unix epoch.
    public var timestampMicros: Int64
    public var durationMicros: Int64
    public var serviceName: String
    public var ipv4: String?
    public var ipv6: String?
    public var port: Int?
    public var tags: [String: String]

    public init(
        traceID: String, parentID: String?, id: String, kind: Kind, name: String, timestampMicros: Int64,
        durationMicros: Int64, serviceName: String, ipv4: String? = nil, ipv6: String? = nil, port: Int? = nil,
        tags: [String: String] = [:]
    ) {
        self.traceID = traceID
        self.parentID = parentID
        self.id = id
        self.kind = kind
        self.name = name
        self.timestampMicros = timestampMicros
        self.durationMicros = durationMicros
        self.serviceName = serviceName
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
        self.tags = tags
    }

    /// `{"traceId":…,"parentId":…,"id":…,"kind":…,"name":…,"timestamp":…,"duration":…,
    /// "localEndpoint":{"serviceName":…,"ipv4":…,"port":…},"tags":{…}}`, tags in name order.
    /// A duration of 0 is written as 1: Zipkin reads 0 as "unknown".
    public func appendJSON(to out: inout String) {
        out.append("{\"traceId\":")
        TelemetryText.appendJSONString(self.traceID, to: &out)
        if let parentID = self.parentID {
            out.append(",\"parentId\":")
            TelemetryText.appendJSONString(parentID, to: &out)
        }
        out.append(",\"id\":")
        TelemetryText.appendJSONString(self.id, to: &out)
        out.append(",\"kind\":\"")
        out.append(self.kind.rawValue)
        out.append("\",\"name\":")
        TelemetryText.appendJSONString(self.name, to: &out)
        out.append(",\"timestamp\":")
        out.append(String(self.timestampMicros))
        out.append(",\"duration\":")
        out.append(String(max(1, self.durationMicros)))
        out.append(",\"localEndpoint\":{\"serviceName\":")
        TelemetryText.appendJSONString(self.serviceName, to: &out)
        if let ipv4 = self.ipv4 {
            out.append(",\"ipv4\":")
            TelemetryText.appendJSONString(ipv4, to: &out)
        }
        if let ipv6 = self.ipv6 {
            out.append(",\"ipv6\":")
            TelemetryText.appendJSONString(ipv6, to: &out)
        }
        if let port = self.port {
            out.append(",\"port\":")
            out.append(String(port))
        }
        out.append("},\"tags\":{")
        for (index, key) in self.tags.keys.sorted().enumerated() {
            if index > 0 { out.append(",") }
            TelemetryText.appendJSONString(key, to: &out)
            out.append(":")
            TelemetryText.appendJSONString(self.tags[key]!, to: &out)
        }
        out.append("}}")
    }

    /// The body of one `POST /api/v2/spans`.
    public static func json(_ spans: [ZipkinSpan]) -> String {
        var out = "["
        out.reserveCapacity(spans.count * 900 + 2)
        for (index, span) in spans.enumerated() {
            if index > 0 { out.append(",") }
            span.appendJSON(to: &out)
        }
        out.append("]")
        return out
    }
}

/// What every span of one configuration shares: resolved once per reload, never per request.
public final class TracerConfiguration: Sendable {
    /// Envoy's `max_path_tag_length` default: the path in `http.url` is cut to this many characters.
    public static let maxPathTagLength = 256

    /// Zipkin collector `host:port`; nil = none.
    public let zipkinAddress: String?
    /// Spans are reported (a collector is set and span reporting is not disabled).
    public let reportsSpans: Bool
    /// `localEndpoint.serviceName`: `<canonical service>.<namespace>`.
    public let serviceName: String
    /// `node_id` is `<prefix><local ip><suffix>`, as Envoy's node id `router~IP~NAME.NS~NS.svc.cluster.local`.
    let nodeIDPrefix: String
    let nodeIDSuffix: String
    /// Tags with the same value on every span: Istio's `istio.*` tags, literal and environment custom tags.
    public let fixedTags: [String: String]
    /// Custom tags read from a request header: (tag, lower-case header name, default).
    public let headerTags: [(tag: String, header: String, defaultValue: String?)]

    public init(
        zipkinAddress: String?,
        spanReporting: Bool = true,
        serviceName: String,
        nodeIDPrefix: String = "router~",
        nodeIDSuffix: String = "~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
        fixedTags: [String: String] = [:],
        headerTags: [(tag: String, header: String, defaultValue: String?)] = []
    ) {
        self.zipkinAddress = zipkinAddress
        self.reportsSpans = spanReporting && zipkinAddress != nil
        self.serviceName = serviceName
        self.nodeIDPrefix = nodeIDPrefix
        self.nodeIDSuffix = nodeIDSuffix
        self.fixedTags = fixedTags
        self.headerTags = headerTags
    }

    /// The configuration an instance runs with: names from `meshgate.yaml` (workload, namespace,
    /// labels), the collector, sampling-independent switches and custom tags from the effective
    /// telemetry; environment custom tags are read now through `environment`.
    ///
    /// Istio's tags: `istio.canonical_service` (label `service.istio.io/canonical-name`, else
    /// `app.kubernetes.io/name`, else `app`, else the workload name), `istio.canonical_revision`
    /// (`service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else `version`,
    /// else `latest`), `istio.namespace`, `istio.mesh_id` (`cluster.local`), `istio.cluster_id`
    /// (`Kubernetes`, Istio's default cluster name).
    public convenience init(
        settings: MeshSettings,
        telemetry: EffectiveTelemetry,
        nodeType: String = "router",
        environment: (String) -> String? = TracerConfiguration.processEnvironment
    ) {
        let labels = settings.labels
        let canonicalService = labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"]
            ?? labels["app"] ?? settings.workloadName
        let canonicalRevision = labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"]
            ?? labels["version"] ?? "latest"
        var fixed: [String: String] = [
            "istio.canonical_service": canonicalService,
            "istio.canonical_revision": canonicalRevision,
            "istio.namespace": settings.namespace,
            "istio.mesh_id": "cluster.local",
            "istio.cluster_id": "Kubernetes",
        ]
        var headerTags: [(tag: String, header: String, defaultValue: String?)] = []
        for (tag, custom) in telemetry.customTags.sorted(by: { $0.key < $1.key }) {
            switch custom {
            case .literal(let value):
                fixed[tag] = value
            case .environment(let name, let defaultValue):
                if let value = environment(name) ?? defaultValue { fixed[tag] = value }
            case .header(let name, let defaultValue):
                headerTags.append((tag, name.lowercased(), defaultValue))
            }
        }
        self.init(
            zipkinAddress: telemetry.zipkinAddress,
            spanReporting: telemetry.spanReporting,
            serviceName: "\(canonicalService).\(settings.namespace)",
            nodeIDPrefix: "\(nodeType)~",
            nodeIDSuffix: "~\(settings.workloadName).\(settings.namespace)~\(settings.namespace).svc.cluster.local",
            fixedTags: fixed,
            headerTags: headerTags
        )
    }

    /// The process environment's value of `name`.
    public static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The span Envoy's HTTP connection manager reports for one exchange of a gateway (an egress,
    /// `CLIENT` span), with its standard tags (`component`, `node_id`, `guid:x-request-id`,
    /// `http.url` with the path cut to 256 characters, `http.method`, `http.protocol`,
    /// `http.status_code`, `upstream_cluster`, `upstream_cluster.name`, `upstream_address`,
    /// `request_size`, `response_size`, `response_flags`, `user_agent`, `downstream_cluster`,
    /// `peer.address`, `error` when there was no response or a 5xx), Istio's tags and the custom tags.
    ///
    /// The name is the route decorator Istio writes, `<service fqdn>:<port>/*`, taken from the
    /// cluster `outbound|<port>|<subset>|<fqdn>`; without a cluster (no route), the authority.
    func span(_ span: Tracer.Span, record: HTTPExchangeRecord) -> ZipkinSpan {
        var tags = self.fixedTags
        for (tag, value) in span.headerTags { tags[tag] = value }
        let localIP = record.downstreamLocalAddress.map { String(TelemetryText.host(ofAddress: $0)) }
        tags["component"] = "proxy"
        tags["node_id"] = self.nodeIDPrefix + (localIP ?? "0.0.0.0") + self.nodeIDSuffix
        if let requestID = record.requestID, !requestID.isEmpty { tags["guid:x-request-id"] = requestID }
        let path = record.path.count > Self.maxPathTagLength ? String(record.path.prefix(Self.maxPathTagLength)) : record.path
        tags["http.url"] = "\(span.scheme)://\(record.authority ?? "")\(path)"
        tags["http.method"] = record.method
        tags["http.protocol"] = record.protocolName
        tags["http.status_code"] = String(record.responseCode)
        tags["downstream_cluster"] = span.downstreamCluster ?? "-"
        tags["user_agent"] = record.userAgent.flatMap { $0.isEmpty ? nil : $0 } ?? "-"
        tags["request_size"] = String(record.bytesReceived)
        tags["response_size"] = String(record.bytesSent)
        tags["response_flags"] = record.responseFlags.isEmpty ? "-" : record.responseFlags
        if let cluster = record.upstreamCluster, !cluster.isEmpty {
            tags["upstream_cluster"] = cluster
            tags["upstream_cluster.name"] = cluster
        }
        if let host = record.upstreamHost, !host.isEmpty { tags["upstream_address"] = host }
        if let remote = record.downstreamRemoteAddress { tags["peer.address"] = String(TelemetryText.host(ofAddress: remote)) }
        if record.responseCode == 0 || record.responseCode >= 500 { tags["error"] = "true" }

        let isIPv6 = localIP?.contains(":") == true
        return ZipkinSpan(
            traceID: span.context.traceID.hex,
            parentID: span.context.parentSpanID.map(TraceHex.hex),
            id: TraceHex.hex(span.context.spanID),
            kind: .client,
            name: Self.spanName(cluster: record.upstreamCluster, authority: record.authority),
            timestampMicros: record.startMicros,
            durationMicros: record.durationMicros,
            serviceName: self.serviceName,
            ipv4: isIPv6 ? nil : localIP,
            ipv6: isIPv6 ? localIP : nil,
            port: record.downstreamLocalAddress.flatMap(TelemetryText.port(ofAddress:)),
            tags: tags
        )
    }

    /// `outbound|9080|v1|reviews.default.svc.cluster.local` → `reviews.default.svc.cluster.local:9080/*`.
    static func spanName(cluster: String?, authority: String?) -> String {
        if let cluster {
            let parts = cluster.split(separator: "|", omittingEmptySubsequences: false)
            if parts.count == 4, !parts[3].isEmpty, !parts[1].isEmpty { return "\(parts[3]):\(parts[1])/*" }
        }
        return authority.flatMap { $0.isEmpty ? nil : $0 } ?? "-"
    }
}
