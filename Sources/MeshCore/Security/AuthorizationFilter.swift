import MeshConfig
import NIOCore
import NIOHTTP1

/// AuthorizationPolicy on HTTP requests (Envoy's RBAC filter): at a gateway on every request, at a
/// sidecar on its inbound side. A denial is 403 `RBAC: access denied` with the policy named in the
/// response-code details; nothing reaches the upstream.
struct AuthorizationFilter: HTTPFilter {
    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict {
        guard let engine = request.snapshot.authorization, let connection = request.connection,
              environment.enforcesAuthorization(request.snapshot)
        else { return .continue }
        let facts = Self.facts(request, connection, auth: exchange.jwt?.auth)
        let routing = request.routing
        let audit = AuthorizationAudit(log: environment.log, metrics: environment.metrics, kind: "http", port: environment.port) {
            "\(routing.method) \(routing.authority)\(routing.path)"
        }
        if let client = request.snapshot.extAuthz, let match = engine.customMatch(facts) {
            // CUSTOM first: the external authorizer, while the request waits; then DENY and ALLOW.
            let check = client.checkRequest(method: request.head.method, target: request.target, headers: request.head.headers)
            return .suspend { eventLoop, resume in
                client.check(check, on: eventLoop).assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(.allow(let upstream)):
                        exchange.extAuthzHeaders = upstream
                        resume(Self.decide(engine, facts, audit))
                    case .success(.deny(let reply)):
                        audit.denied(policy: match, action: "CUSTOM", details: reply.details)
                        resume(.reply(reply))
                    case .failure:
                        resume(.reply(ExtAuthzClient.errorReply(client.config)))
                    }
                }
            }
        }
        return Self.decide(engine, facts, audit)
    }

    /// DENY, then ALLOW (AUDIT and dry-run reported on the way).
    static func decide(_ engine: AuthorizationEngine, _ facts: AuthorizationFacts, _ audit: AuthorizationAudit) -> FilterVerdict {
        audit.report(engine, facts)
        let verdict = engine.evaluate(facts)
        guard !verdict.isAllowed else { return .continue }
        audit.denied(verdict)
        return .reply(.accessDenied(details: verdict.details))
    }

    /// What an external authorizer allowing the request asked to add to it.
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        for (name, value) in exchange.extAuthzHeaders ?? [] { upstream.headers.replaceOrAdd(name: name, value: value) }
    }

    static func facts(_ request: FilterRequest, _ connection: ConnectionFacts, auth: RequestAuth?) -> AuthorizationFacts {
        let routing = request.routing
        let trusted = request.snapshot.settings.numTrustedProxies
        let remote = trusted == 0
            ? connection.sourceIP
            : RemoteAddress.resolve(peer: connection.sourceIP, forwardedFor: request.head.headers["x-forwarded-for"], trusted: trusted)
        return AuthorizationFacts(
            principal: connection.principal, sourceIP: connection.sourceIP, remoteIP: remote, destinationIP: connection.destinationIP,
            destinationPort: connection.port, serverName: connection.serverName,
            request: AuthorizationFacts.Request(
                host: routing.host, authority: routing.authority, method: routing.method, path: routing.path, headers: routing.headers
            ),
            auth: auth
        )
    }
}

/// Who is on the other end of a connection, as policies read it: formatted once per connection.
struct ConnectionFacts: Sendable {
    var principal: String?
    var sourceIP: [UInt8]?
    var destinationIP: [UInt8]?
    /// The workload port policies match: the listener's at a gateway, the app's at a sidecar.
    var port: Int
    var serverName: String?

    init(principal: String? = nil, sourceIP: [UInt8]?, destinationIP: [UInt8]?, port: Int, serverName: String? = nil) {
        self.principal = principal
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.port = port
        self.serverName = serverName
    }

    /// A connection's addresses read from its channel.
    init(_ channel: Channel, principal: String? = nil, port: Int, serverName: String? = nil) {
        self.init(
            principal: principal, sourceIP: channel.remoteAddress?.ipAddress.flatMap(IPAddressParser.bytes),
            destinationIP: channel.localAddress?.ipAddress.flatMap(IPAddressParser.bytes), port: port, serverName: serverName
        )
    }
}

/// The side effects of evaluating policies: AUDIT matches and dry-run verdicts logged and counted,
/// denials logged and counted (`meshgate_authz_denied_total{policy,action}`). Its text (where, what)
/// is made only when something is logged.
struct AuthorizationAudit {
    let log: MeshLog
    let metrics: MeshMetrics
    /// `http` or `tcp`, and the listener port.
    let kind: StaticString
    let port: Int
    /// The request or connection, for the log line.
    let subject: () -> String

    private var place: String { "\(self.kind) :\(self.port)" }

    func report(_ engine: AuthorizationEngine, _ facts: AuthorizationFacts) {
        if !engine.audit.isEmpty {
            for match in engine.audited(facts) {
                self.log.info("\(self.place): AUDIT \(self.subject()) matched \(match.policy.namespace)/\(match.policy.name) rule \(match.rule)")
                self.metrics.addControl("meshgate_authz_audited_total{policy=\"\(match.policy.namespace)/\(match.policy.name)\"}")
            }
        }
        if let shadow = engine.evaluateDryRun(facts) {
            let result = shadow.isAllowed ? "allowed" : "denied"
            self.log.info("\(self.place): dry-run \(self.subject()) would be \(result) (\(shadow.details))")
            self.metrics.addControl("meshgate_authz_dry_run_total{policy=\"\(shadow.policyLabel)\",result=\"\(result)\"}")
        }
    }

    func denied(_ verdict: AuthorizationVerdict) {
        let match: PolicyMatch?
        if case .denied(let found) = verdict { match = found } else { match = nil }
        self.denied(policy: match, action: match?.policy.action.rawValue ?? "ALLOW", details: verdict.details)
    }

    func denied(policy match: PolicyMatch?, action: String, details: String) {
        let label = match.map { "\($0.policy.namespace)/\($0.policy.name)" } ?? "none"
        self.log.info("\(self.place): \(self.subject()) denied by \(label) (\(details))")
        self.metrics.addControl("meshgate_authz_denied_total{policy=\"\(label)\",action=\"\(action)\"}")
    }
}
