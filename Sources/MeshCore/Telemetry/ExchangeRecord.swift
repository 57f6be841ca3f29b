/// What happened in one HTTP request/response exchange, filled in by the HTTP connection manager
/// and handed, when the exchange ends, to the metrics, the access log and the tracer.
///
/// Field names follow Envoy's access-log operators; nil prints as `-`.
public struct HTTPExchangeRecord: Sendable {
    /// Wall-clock start, microseconds since the Unix epoch (`%START_TIME%`, Zipkin `timestamp`).
    public var startMicros: Int64 = 0
    /// Start to last response byte, microseconds (`%DURATION%` is this in milliseconds).
    public var durationMicros: Int64 = 0
    public var method: String = "-"
    /// The request target as received (`%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`).
    public var path: String = "-"
    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`.
    public var protocolName: String = "HTTP/1.1"
    /// 0 when no response was sent.
    public var responseCode: Int = 0
    /// Envoy response flags, `-` for none.
    public var responseFlags: String = "-"
    public var responseCodeDetails: String = "-"
    public var connectionTerminationDetails: String? = nil
    public var upstreamTransportFailureReason: String? = nil
    /// Request body bytes received from the client.
    public var bytesReceived: Int = 0
    /// Response body bytes sent to the client.
    public var bytesSent: Int = 0
    public var upstreamServiceTimeMillis: Int? = nil
    public var xForwardedFor: String? = nil
    public var userAgent: String? = nil
    public var requestID: String? = nil
    public var authority: String? = nil
    /// `ip:port` of the upstream endpoint.
    public var upstreamHost: String? = nil
    public var upstreamCluster: String? = nil
    public var upstreamLocalAddress: String? = nil
    public var downstreamLocalAddress: String? = nil
    public var downstreamRemoteAddress: String? = nil
    /// SNI of the downstream TLS connection.
    public var requestedServerName: String? = nil
    public var routeName: String? = nil
    /// The upstream endpoint's identity, for metric labels and span tags; nil without one.
    public var destination: DestinationIdentity? = nil
    /// On a sidecar's inbound side, who called (reported as `reporter="destination"`); nil when
    /// this proxy is the source.
    public var source: SourceIdentity? = nil

    public init() {}
}

/// What one proxied TCP connection did, handed over when it closes (and, for byte counters,
/// periodically while it is open).
public struct TCPConnectionRecord: Sendable {
    public var startMicros: Int64 = 0
    public var durationMicros: Int64 = 0
    /// Bytes from the client (request direction).
    public var bytesReceived: Int = 0
    /// Bytes to the client (response direction).
    public var bytesSent: Int = 0
    public var responseFlags: String = "-"
    public var upstreamHost: String? = nil
    public var upstreamCluster: String? = nil
    public var upstreamLocalAddress: String? = nil
    public var downstreamLocalAddress: String? = nil
    public var downstreamRemoteAddress: String? = nil
    public var requestedServerName: String? = nil
    public var routeName: String? = nil
    public var destination: DestinationIdentity? = nil
    public var source: SourceIdentity? = nil

    public init() {}
}

/// Who called a sidecar's inbound side, as Istio's destination reporter labels it: the workload
/// from the peer's metadata exchange (`x-envoy-peer-metadata` or the TCP frame) and the principal
/// from its verified certificate. Built once per peer of a connection, not per request.
public final class SourceIdentity: Sendable {
    /// `reporter="destination",source_workload="…",…,source_cluster="…"`, escaped.
    public let prometheusLabels: String
    /// `mutual_tls` for an mTLS peer, `none` for plain text (Istio's `connection_security_policy`).
    public let securityPolicy: String

    /// `principal`: the peer's SPIFFE URI from its certificate; nil on a plain-text connection.
    public init(peer: PeerMetadata?, principal: String?) {
        self.securityPolicy = principal == nil ? "none" : "mutual_tls"
        func known(_ value: String?) -> String { value.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown" }
        self.prometheusLabels = PrometheusText.labels([
            ("reporter", "destination"), ("source_workload", known(peer?.workloadName)),
            ("source_workload_namespace", known(peer?.namespace)), ("source_principal", principal ?? "unknown"),
            ("source_app", known(peer?.app)), ("source_version", known(peer?.version)),
            ("source_canonical_service", peer.map { known($0.canonicalName) } ?? "unknown"),
            ("source_canonical_revision", peer.map { known($0.canonicalRevision) } ?? "unknown"),
            ("source_cluster", known(peer?.clusterID)),
        ])
    }
}

/// Who an upstream endpoint is, as Istio's metric labels name it. Built once per endpoint when
/// the snapshot is compiled, never per request; a class, so metrics key series by identity and the
/// label text is rendered once.
public final class DestinationIdentity: Sendable {
    public let workload: String
    public let workloadNamespace: String
    /// `spiffe://…` when the connection was mTLS with a verified identity, else `unknown`.
    public let principal: String
    public let app: String
    public let version: String
    /// FQDN, e.g. `reviews.default.svc.cluster.local`.
    public let service: String
    public let serviceName: String
    public let serviceNamespace: String
    public let canonicalService: String
    public let canonicalRevision: String
    /// `destination_workload="…",…,destination_cluster="…"` in Istio's label order, escaped.
    public let prometheusLabels: String

    public init(
        workload: String, workloadNamespace: String, principal: String, app: String, version: String,
        service: String, serviceName: String, serviceNamespace: String, canonicalService: String, canonicalRevision: String,
        cluster: String = "Kubernetes"
    ) {
        self.workload = workload
        self.workloadNamespace = workloadNamespace
        self.principal = principal
        self.app = app
        self.version = version
        self.service = service
        self.serviceName = serviceName
        self.serviceNamespace = serviceNamespace
        self.canonicalService = canonicalService
        self.canonicalRevision = canonicalRevision
        self.prometheusLabels = PrometheusText.labels([
            ("destination_workload", workload), ("destination_workload_namespace", workloadNamespace),
            ("destination_principal", principal), ("destination_app", app), ("destination_version", version),
            ("destination_service", service), ("destination_service_name", serviceName),
            ("destination_service_namespace", serviceNamespace), ("destination_canonical_service", canonicalService),
            ("destination_canonical_revision", canonicalRevision), ("destination_cluster", cluster),
        ])
    }

    /// The labels of a request that reached no endpoint (no route, no cluster).
    public static let unknown = DestinationIdentity(
        workload: "unknown", workloadNamespace: "unknown", principal: "unknown", app: "unknown", version: "unknown",
        service: "unknown", serviceName: "unknown", serviceNamespace: "unknown", canonicalService: "unknown",
        canonicalRevision: "unknown", cluster: "unknown"
    )
}
