import Foundation
import MeshConfig
import MeshCore
import NIOHTTP1

/// The control endpoints: readiness (`:readinessPort/healthz/ready`), Prometheus
/// (`:metricsPort/stats/prometheus`) and admin (`127.0.0.1:adminPort`: `/status`, `/config_dump`,
/// `/clusters`, `/stats`, `/healthcheck/fail`, `/healthcheck/ok`).
extension GatewayRuntime {
    static func sourceLabels(_ settings: MeshSettings) -> String {
        MeshMetrics.gatewaySourceLabels(workload: settings.workloadName, namespace: settings.namespace, labels: settings.labels)
    }

    func readinessResponse(path: String) -> SimpleHTTPServer.Response {
        guard path == "/healthz/ready" else { return .init(status: .notFound, body: "not found\n") }
        let state = self.state.withLockedValue { $0 }
        if state.ready && !state.draining && !state.healthcheckFailed { return .init(status: .ok, body: "ready\n") }
        let reason = state.draining ? "draining" : state.healthcheckFailed ? "failed by /healthcheck/fail" : "not ready"
        return .init(status: .serviceUnavailable, body: reason + "\n")
    }

    func metricsResponse(path: String) async -> SimpleHTTPServer.Response {
        guard path == "/stats/prometheus" else { return .init(status: .notFound, body: "not found; try /stats/prometheus\n") }
        let text = await self.metrics.prometheusText(extra: self.processGauges(), overrides: self.metricOverrides())
        return .init(status: .ok, contentType: "text/plain; version=0.0.4", body: text)
    }

    /// The live snapshot's Telemetry `metrics.overrides`, by Prometheus name.
    private func metricOverrides() -> [String: MetricCustomization] {
        guard let effective = self.holder.load().telemetry.effective else { return [:] }
        var overrides: [String: MetricCustomization] = [:]
        for (metric, custom) in effective.metrics { overrides[metric.prometheusName] = custom }
        return overrides
    }

    /// Gauges read at scrape time: open connections, telemetry drops.
    private func processGauges() -> [String: Double] {
        var gauges: [String: Double] = ["meshgate_downstream_connections_active": Double(self.tracker.count)]
        let snapshot = self.holder.load()
        for listener in self.listeners.listeners {
            gauges["meshgate_listener_info{address=\"\(listener.address)\",port=\"\(listener.port)\",protocol=\"\(snapshot.listeners[listener.port]?.protocol.rawValue ?? "closing")\"}"] = 1
        }
        for cluster in snapshot.clusters.values {
            gauges.merge(cluster.clusterSeries) { _, new in new }
        }
        gauges["meshgate_access_log_dropped_total"] = Double(self.telemetry.accessLogDropped)
        gauges["meshgate_tracing_spans_dropped_total"] = Double(self.telemetry.spansDropped)
        return gauges
    }

    func adminResponse(method: HTTPMethod, path: String) async -> SimpleHTTPServer.Response {
        switch path {
        case "/", "/status":
            return .json(self.statusDocument())
        case "/config_dump":
            return .json(ConfigDump(snapshot: self.holder.load()))
        case "/clusters":
            return .json(ClustersDocument(snapshot: self.holder.load()))
        case "/stats":
            return .init(status: .ok, body: await self.metrics.prometheusText(extra: self.processGauges(), overrides: self.metricOverrides()))
        case "/healthcheck/fail":
            self.state.withLockedValue { $0.healthcheckFailed = true }
            self.log.warning("admin: /healthcheck/fail: readiness now answers 503")
            return .init(status: .ok, body: "OK\n")
        case "/healthcheck/ok":
            self.state.withLockedValue { $0.healthcheckFailed = false }
            self.log.info("admin: /healthcheck/ok: readiness restored")
            return .init(status: .ok, body: "OK\n")
        default:
            return .init(status: .notFound, body: "not found; try /status, /config_dump, /clusters, /stats, /healthcheck/fail, /healthcheck/ok\n")
        }
    }

    // MARK: - Documents

    struct StatusDocument: Encodable {
        struct Listener: Encodable {
            var address: String
            var port: Int
            var `protocol`: String
        }
        struct LastReload: Encodable {
            var ok: Bool
            var generation: Int
            var time: String
            var diagnostics: [String]
        }
        var generation: Int
        var ready: Bool
        var draining: Bool
        var configDirectory: String
        var lastReload: LastReload
        var reloadsApplied: Int
        var reloadFailures: Int
        var listeners: [Listener]
        var connections: Int
        /// Every certificate the gateway serves, with its subject, SANs and expiry.
        var certificates: [CertificateInfo]
        /// The mesh certificate (SPIFFE identity), when the instance has one.
        var meshCertificate: MeshCertificate?
        struct MeshCertificate: Encodable {
            var identity: String
            var origin: String
            var notValidBefore: Int
            var notValidAfter: Int
            var renewAt: Int?
        }
        var role: String
        /// Every RequestAuthentication `jwksUri`: keys held, last good fetch, last error.
        var jwks: [JWKSStatus]
    }

    func statusDocument() -> StatusDocument {
        let snapshot = self.holder.load()
        let state = self.state.withLockedValue { $0 }
        return StatusDocument(
            generation: snapshot.generation,
            ready: state.ready && !state.draining && !state.healthcheckFailed,
            draining: state.draining,
            configDirectory: self.configDirectory,
            lastReload: .init(
                ok: state.lastReload.ok,
                generation: state.lastReload.generation,
                time: state.lastReload.time,
                diagnostics: state.lastReload.diagnostics
            ),
            reloadsApplied: state.reloadsApplied,
            reloadFailures: state.reloadFailures,
            listeners: self.listeners.listeners.map {
                .init(address: $0.address, port: $0.port, protocol: snapshot.listeners[$0.port]?.protocol.rawValue ?? "closing")
            },
            connections: self.tracker.count,
            certificates: snapshot.listeners.values.sorted { $0.port < $1.port }.flatMap { plan in
                plan.tls?.servers.compactMap(\.certificate) ?? []
            },
            meshCertificate: self.identity.load().map { material in
                .init(
                    identity: material.uri, origin: material.origin, notValidBefore: material.notValidBefore,
                    notValidAfter: material.notValidAfter, renewAt: state.renewAt.map { Int($0.timeIntervalSince1970) }
                )
            },
            role: self.role.rawValue,
            jwks: JWKSRegistry.shared.status()
        )
    }

    /// The compiled listeners, routes and clusters of the live snapshot.
    struct ConfigDump: Encodable {
        struct Listener: Encodable {
            var port: Int
            var `protocol`: String
            var gateways: [String]
            var virtualHosts: [VirtualHost]
            var tcpRoutes: [Route]
        }
        struct VirtualHost: Encodable {
            var domain: String
            var routes: [Route]
        }
        struct Route: Encodable {
            var name: String
            var clusters: [String]
        }
        var generation: Int
        var listeners: [Listener]
        var clusters: [String]
        /// AuthorizationPolicies, compiled: every listener's at a gateway, the inbound one's at a sidecar.
        var authorizationPolicies: [AuthorizationPolicySummary]

        init(snapshot: Snapshot) {
            self.generation = snapshot.generation
            self.authorizationPolicies = snapshot.authorizationSummary
            self.clusters = snapshot.clusters.keys.sorted()
            self.listeners = snapshot.listeners.values.sorted { $0.port < $1.port }.map { plan in
                let table = plan.http
                var hosts: [VirtualHost] = table.exactHosts.keys.sorted().map { domain in
                    VirtualHost(domain: domain, routes: table.exactHosts[domain]!.map { Route(name: $0.name, clusters: $0.destinations.clusters.map(\.name)) })
                }
                hosts += table.wildcardHosts.map { entry in
                    VirtualHost(domain: "*" + entry.suffix, routes: entry.routes.map { Route(name: $0.name, clusters: $0.destinations.clusters.map(\.name)) })
                }
                if let catchAll = table.catchAll {
                    hosts.append(VirtualHost(domain: "*", routes: catchAll.map { Route(name: $0.name, clusters: $0.destinations.clusters.map(\.name)) }))
                }
                return Listener(
                    port: plan.port,
                    protocol: plan.protocol.rawValue,
                    gateways: plan.gatewayNames,
                    virtualHosts: hosts,
                    tcpRoutes: plan.tcp.map { Route(name: $0.name, clusters: $0.destinations.clusters.map(\.name)) }
                )
            }
        }
    }

    /// Every cluster with its endpoints.
    struct ClustersDocument: Encodable {
        struct ClusterEntry: Encodable {
            var name: String
            var service: String
            var connectTimeoutMs: Int64
            var loadBalancer: String
            var endpoints: [EndpointEntry]
        }
        struct EndpointEntry: Encodable {
            var address: String
            var workload: String
            var labels: [String: String]
            /// `HEALTHY`, or `EJECTED` by outlier detection.
            var health: String
            /// Seconds until an ejected endpoint returns to balancing.
            var ejectedForSeconds: Double?
            /// Requests (TCP: connections) in flight, counted for LEAST_REQUEST.
            var activeRequests: Int
        }
        var generation: Int
        var clusters: [ClusterEntry]

        init(snapshot: Snapshot) {
            self.generation = snapshot.generation
            self.clusters = snapshot.clusters.values.sorted { $0.name < $1.name }.map { cluster in
                ClusterEntry(
                    name: cluster.name,
                    service: cluster.serviceFQDN,
                    connectTimeoutMs: cluster.connectTimeout.nanoseconds / 1_000_000,
                    loadBalancer: cluster.loadBalancerName,
                    endpoints: cluster.endpoints.enumerated().map { index, endpoint in
                        let health = cluster.health(index)
                        return EndpointEntry(
                            address: endpoint.hostPort, workload: endpoint.workloadName, labels: endpoint.labels, health: health.state,
                            ejectedForSeconds: health.ejectedForSeconds, activeRequests: cluster.activeRequests(index)
                        )
                    }
                )
            }
        }
    }
}

extension SimpleHTTPServer.Response {
    static func json<Document: Encodable>(_ document: Document) -> Self {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(document)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return .init(status: .ok, contentType: "application/json", body: body + "\n")
    }
}
