#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOSSL

/// A sidecar's inbound port:
///
/// ```
/// first byte 0x16? ─ yes → ClientHello (SNI → service port → app port)
///                  │        → PeerAuthentication DISABLE? refused
///                  │        → mTLS handshake with the mesh certificate (a client certificate
///                  │          chaining to the mesh root is required) → peer in our trust domain?
///                  │        → ALPN: istio-peer-exchange → metadata exchange → TCP to the app
///                  │                istio-http/1.x, http/1.1 → HTTP to the app (+ XFCC)
///                  │                istio-h2, h2 → HTTP/2 streams to the app (+ XFCC)
///                  │                istio / none → by the port's protocol
///                  └ no  → PeerAuthentication STRICT? closed (curl sees a reset: exit 56)
///                          → plain HTTP or TCP to the app
/// ```
extension ConnectionSetup {
    func inboundSniffer(plan: ListenerPlan, inbound: InboundPlan, snapshot: Snapshot) -> HandOverHandler {
        HandOverHandler { context, event in
            guard case .bytes(let bytes) = event, let first = bytes.first else { return nil }
            let channel = context.channel
            let peer = channel.remoteAddress?.description ?? "-"
            if first == 0x16 {  // a TLS handshake record
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(self.inboundInspector(plan: plan, inbound: inbound, snapshot: snapshot, peer: peer))
                }
            }
            guard let app = inbound.defaultPort else { return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port)) }
            if app.mode == .strict {
                self.refuseInbound("plaintext_strict", "plain text from \(peer) refused: PeerAuthentication is STRICT for port \(app.appPort)")
                // A reset, as Istio's sidecar gives (curl: exit 56), not a quiet close.
                guard let provider = channel as? SocketOptionProvider else {
                    return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port))
                }
                return provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).flatMapThrowing { throw TCPProxy.NoRoute(port: plan.port) }
            }
            return self.toApp(
                channel, app: app, plan: plan, snapshot: snapshot, forwardedClientCert: nil, peer: InboundPeer(principal: nil), scheme: "http"
            )
        }
    }

    private func refuseInbound(_ reason: String, _ detail: String) {
        self.metrics.addControl("meshgate_inbound_rejected_total{reason=\"\(reason)\"}")
        self.log.info("inbound: \(detail)")
    }

    private func inboundInspector(plan: ListenerPlan, inbound: InboundPlan, snapshot: Snapshot, peer: String) -> HandOverHandler {
        TLSInspector.handler(
            decide: { context, hello in
                let channel = context.channel
                guard let material = self.identity?.load() else {
                    self.refuseInbound("no_certificate", "mTLS from \(peer) refused: this sidecar has no mesh certificate yet")
                    return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port))
                }
                guard let app = inbound.appPort(serverName: hello.serverName) else {
                    return Self.refuseWithAlert(context)
                }
                if app.mode == .disable {
                    self.refuseInbound("tls_disabled", "mTLS from \(peer) refused: PeerAuthentication is DISABLE for port \(app.appPort)")
                    return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port))
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: material.server))
                    try sync.addHandler(
                        HandOverHandler(
                            onError: { error in
                                self.refuseInbound("handshake", "mTLS handshake with \(peer) failed: \(error)")
                            },
                            decide: { context, event in
                                guard case .handshake(let alpn) = event else { return nil }
                                return self.inboundSecured(context.channel, alpn: alpn, app: app, plan: plan, snapshot: snapshot, material: material, peer: peer)
                            }
                        )
                    )
                }
            },
            reject: { rejection, detail in
                self.refuseInbound(rejection.rawValue, "\(peer): \(detail)")
            }
        )
    }

    private func inboundSecured(
        _ channel: Channel, alpn: String?, app: InboundPlan.AppPort, plan: ListenerPlan, snapshot: Snapshot,
        material: MeshIdentity.Material, peer: String
    ) -> EventLoopFuture<Void> {
        let certificate = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
        guard let certificate else {
            self.refuseInbound("no_peer_certificate", "mTLS from \(peer) refused: no client certificate")
            return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port))
        }
        let identity = PeerIdentity(certificate: certificate)
        guard let uri = identity.uri, MeshIdentity.trustDomain(of: uri) == snapshot.settings.trustDomain else {
            self.refuseInbound(
                "foreign_identity",
                "mTLS from \(peer) refused: its certificate names \(identity.uri ?? "no SPIFFE identity"), not one in trust domain \(snapshot.settings.trustDomain)"
            )
            return channel.eventLoop.makeFailedFuture(TCPProxy.NoRoute(port: plan.port))
        }
        let xfcc = identity.forwardedClientCert(by: material.uri)
        let inboundPeer = InboundPeer(principal: uri)
        func toApp(forceTCP: Bool = false, forceHTTP: Bool = false, http2: Bool = false) -> EventLoopFuture<Void> {
            self.toApp(
                channel, app: app, plan: plan, snapshot: snapshot, forwardedClientCert: xfcc, peer: inboundPeer, scheme: "https",
                forceTCP: forceTCP, forceHTTP: forceHTTP, http2: http2
            )
        }
        switch alpn {
        case PeerMetadataExchange.alpn?:
            do {
                try channel.pipeline.syncOperations.addHandler(
                    PeerMetadataExchange.handler(
                        local: snapshot.localPeer, side: "downstream", metrics: self.metrics, log: self.log, onPeer: inboundPeer.learned
                    )
                )
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
            return toApp(forceTCP: true)
        case "istio-http/1.1"?, "istio-http/1.0"?, "http/1.1"?:
            return toApp(forceHTTP: true)
        case let alpn? where MeshIdentity.http2ALPN.contains(alpn):
            return toApp(forceHTTP: true, http2: true)
        default:
            return toApp()
        }
    }

    /// Installs the stack that carries the connection to the app: HTTP (with h2c detection on
    /// plain text) or a TCP pump.
    private func toApp(
        _ channel: Channel, app: InboundPlan.AppPort, plan: ListenerPlan, snapshot: Snapshot, forwardedClientCert: String?,
        peer: InboundPeer, scheme: String, forceTCP: Bool = false, forceHTTP: Bool = false, http2: Bool = false
    ) -> EventLoopFuture<Void> {
        if forceHTTP || (app.isHTTP && !forceTCP) {
            var environment = self.environment(
                port: plan.port, scheme: scheme, tlsServer: nil, isHTTP2: http2, inbound: InboundHTTP(routes: app.routes, appPort: app.appPort, peer: peer)
            )
            environment.forwardedClientCert = forwardedClientCert
            environment.peerPrincipal = peer.principal.map { String($0.dropFirst("spiffe://".count)) }
            let idleTimeout = TimeAmount(snapshot.settings.httpIdleTimeout)
            return channel.eventLoop.makeCompletedFuture {
                if http2 {
                    try self.configureHTTP2(channel: channel, environment: environment)
                } else if forwardedClientCert == nil {
                    try channel.pipeline.syncOperations.addHandler(self.plainHTTP(environment: environment, idleTimeout: idleTimeout))
                } else {
                    try Self.configureHTTP1(channel: channel, environment: environment, idleTimeout: idleTimeout)
                }
            }
        }
        return TCPProxy.proxy(
            downstream: channel, port: plan.port, routeName: app.routeName, destinations: app.destinations, serverName: nil,
            snapshot: snapshot, identity: self.identity, metrics: self.metrics, log: self.log, inboundPeer: peer,
            authorization: ConnectionFacts(
                channel, principal: peer.principal.map { String($0.dropFirst("spiffe://".count)) }, port: app.appPort
            )
        )
    }
}
