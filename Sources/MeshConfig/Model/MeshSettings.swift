/// This instance's own settings, from `meshgate.yaml` in the config directory.
///
/// Every default lives here, beside its doc comment. Istio's value unless said otherwise.
public struct MeshSettings: Sendable, Hashable {
    /// This instance's labels. A Gateway applies when its `selector` matches them.
    /// Default `{istio: ingressgateway}`, the label of Istio's ingress gateway.
    public var labels: [String: String] = ["istio": "ingressgateway"]

    /// The namespace this instance runs in. Default `istio-system`, where Istio's gateway runs.
    public var namespace: String = "istio-system"
    /// This instance's `region/zone/subzone`, for locality-aware balancing (Istio reads it from the
    /// node; here it is said). nil: none, so no locality preference.
    public var locality: String?

    /// The address every Gateway listener binds. Default `0.0.0.0`.
    public var bindAddress: String = "0.0.0.0"

    /// Readiness (`/healthz/ready`) port. Default 15021, Istio's status port.
    public var readinessPort: Int = 15021

    /// Admin port, bound to 127.0.0.1 only. Default 15000, Envoy's admin port.
    public var adminPort: Int = 15000

    /// How long SIGTERM waits for in-flight requests and connections. Default 30s
    /// (Istio's `terminationDrainDuration` is 5s; we drain longer, because an appliance has no
    /// replica to take over and a finished request is better than a reset one).
    public var drainTimeout: Duration = .seconds(30)

    /// Event loops (threads) on the data path. Default 0 = one per core.
    public var eventLoops: Int = 0

    /// Idle timeout of a proxied TCP connection. Default 1h, as Envoy's tcp_proxy `idle_timeout`.
    public var tcpIdleTimeout: Duration = .seconds(3600)

    /// Idle timeout of a downstream HTTP keep-alive connection. Default 1h, Envoy's
    /// `common_http_protocol_options.idle_timeout`.
    public var httpIdleTimeout: Duration = .seconds(3600)

    /// How long a downstream HTTP/1.1 request head may take from its first byte to its last
    /// (Envoy's `request_headers_timeout`, which Istio leaves unset). Default 10 s, HAProxy's
    /// recommended `timeout http-request`: a real client sends its head in one go, while a slowloris
    /// client trickling bytes would otherwise hold a connection and its partial head forever.
    public var requestHeadersTimeout: Duration = .seconds(10)

    /// Where `credentialName: NAME` finds `NAME/tls.crt`, `NAME/tls.key` and `NAME/ca.crt`.
    /// Default `certs` beside meshgate.yaml. A loaded configuration holds it resolved against the
    /// config directory (absolute when loaded by ``ConfigLoader/load(directory:)``).
    public var credentialsDir: String = "certs"

    // MARK: Mesh identity

    /// The mesh's trust domain: identities are `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`.
    /// Default `cluster.local`, Istio's.
    public var trustDomain: String = "cluster.local"

    /// Istio's root namespace: a PeerAuthentication here with no selector is mesh-wide.
    /// Default `istio-system`.
    public var rootNamespace: String = "istio-system"

    /// This instance's service account, the `sa` of its SPIFFE identity. Default
    /// `istio-ingressgateway-service-account`, the account of Istio's ingress gateway.
    public var serviceAccount: String = "istio-ingressgateway-service-account"

    /// A mesh CA directory (`root-cert.pem`, `root-key.pem`, as `meshgate ca init` writes): the
    /// instance issues its own certificate in process and renews it at half its lifetime.
    /// Resolved against the config directory. nil = none.
    public var caDir: String? = nil

    /// Or a directory with `cert-chain.pem`, `key.pem` and `root-cert.pem` (as `meshgate ca issue`
    /// writes), re-read on every reload. Resolved against the config directory. nil = none.
    public var certDir: String? = nil

    /// Lifetime of certificates issued in process (`caDir`). Default 24h, Istio's `SECRET_TTL`.
    public var certTTL: Duration = .seconds(24 * 3600)

    // MARK: Sidecar role (`meshgate sidecar`)

    /// The port receiving the mesh's traffic for the workload (mTLS, or plain text when
    /// PeerAuthentication allows it), on the workload's address. Default 15006, Istio's.
    public var inboundPort: Int = 15006

    /// The port the workload sends its outbound HTTP calls to (routed by Host), on the workload's
    /// address. Default 15001, Istio's.
    public var outboundPort: Int = 15001

    /// Service port → the port the local app listens on (on the workload's address). The inbound
    /// side forwards a connection for service port P to `appPorts[P]`.
    public var appPorts: [Int: Int] = [:]

    /// Outbound TCP: a local port per TCP service the workload calls (`port: host:servicePort`).
    public var outboundTCP: [Int: OutboundTCPService] = [:]

    // MARK: Telemetry

    /// The workload name this instance reports as (`source_workload` on a gateway's metrics,
    /// the access log's node). Default `istio-ingressgateway`, the name of Istio's ingress gateway.
    public var workloadName: String = "istio-ingressgateway"

    /// Prometheus port (`GET /stats/prometheus`). Default 15090, Envoy's Prometheus port in Istio.
    public var metricsPort: Int = 15090

    /// How often the byte counters of open TCP connections are flushed to the metrics. Default
    /// 15s: the interval Istio's stats plugin documents (the newer native filter uses 5s; 15s keeps
    /// scrapes of long-lived connections steady without churning per-connection timers). A
    /// `Telemetry` resource's `metrics[].reportingInterval` overrides it.
    public var tcpReportingDuration: Duration = .seconds(15)

    /// Where the access log goes: a file path, `/dev/stdout`, or empty for none (Istio's default).
    public var accessLogFile: String = ""

    /// `TEXT` (Istio's default format, byte for byte) or `JSON` (the same fields as an object).
    public var accessLogEncoding: AccessLogEncoding = .text

    /// Percent of requests traced when the client did not decide (`x-b3-sampled`, `traceparent`).
    /// Default 1.0 (1%), Istio's `meshConfig.defaultConfig.tracing.sampling`.
    public var tracingSampling: Double = 1.0

    /// Zipkin collector `host:port` (spans are POSTed to `/api/v2/spans`); nil = no span export.
    public var zipkinAddress: String? = nil

    /// How many proxies in front of this one are trusted to append to `x-forwarded-for` (Istio's
    /// `gatewayTopology.numTrustedProxies`). The client address AuthorizationPolicy's `remoteIpBlocks`
    /// and `remote.ip` read is the entry that many hops from the right of the header; with 0 (the
    /// default, as Istio) it is the connection's peer and a client's header is not believed.
    public var numTrustedProxies: Int = 0

    /// How often a RequestAuthentication `jwksUri` is fetched again (Istio's
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, 20 minutes). A failed fetch keeps the last keys.
    public var jwksRefreshInterval: Duration = .seconds(20 * 60)

    /// External authorizers CUSTOM AuthorizationPolicies name (Istio's MeshConfig `extensionProviders`).
    public var extensionProviders: [ExtensionProvider] = []

    /// The meshgate.yaml these settings came from (for diagnostics); nil for defaults.
    public var sourceFile: String? = nil

    public init() {}
}

/// One `outboundTCP` entry: the service (FQDN) and service port a local outbound port leads to.
public struct OutboundTCPService: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

public enum AccessLogEncoding: String, Sendable, Hashable {
    case text = "TEXT"
    case json = "JSON"
}
