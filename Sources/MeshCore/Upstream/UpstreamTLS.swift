import NIOCore
import NIOSSL
import NIOTLS

/// How a proxy secures its connection to one endpoint (a DestinationRule's `tls`, or auto-mTLS).
public enum UpstreamTLS: Sendable {
    /// Mesh mTLS (ISTIO_MUTUAL) with this instance's certificate; the server must present one of
    /// `identities` (SPIFFE URIs). `sni` is Istio's `outbound_.PORT_.SUBSET_.HOST`, which also
    /// tells the receiving sidecar the service port.
    case istioMutual(sni: String, identities: [String])
    /// TLS with files from the DestinationRule (SIMPLE, MUTUAL). With `subjectAltNames` the server
    /// must present one of them; without, its certificate must name `sni`.
    case files(context: NIOSSLContext, sni: String?, subjectAltNames: [String])

    var isMesh: Bool {
        if case .istioMutual = self { return true }
        return false
    }

    /// Istio's SNI for mesh mTLS: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`.
    public static func meshSNI(port: Int, subset: String?, host: String) -> String {
        "outbound_.\(port)_.\(subset ?? "")_.\(host)"
    }

    /// The service port named by a mesh SNI; nil for any other name.
    public static func servicePort(fromMeshSNI name: String) -> Int? {
        guard name.hasPrefix("outbound_.") else { return nil }
        let rest = name.dropFirst("outbound_.".count)
        guard let end = rest.firstIndex(of: "_") else { return nil }
        return Int(rest[..<end])
    }
}

/// Why an upstream TLS connection was refused; `details` goes to `x-meshgate-details`.
public struct UpstreamTLSError: Error, CustomStringConvertible {
    public let details: String
    public let description: String

    static let noMeshCertificate = UpstreamTLSError(
        details: "upstream_tls_error{no_mesh_certificate}",
        description: "ISTIO_MUTUAL needs this instance's mesh certificate (caDir or certDir), and it has none"
    )

    static func identityMismatch(expected: [String], got: [String]) -> UpstreamTLSError {
        let gotText = got.isEmpty ? "none" : got.joined(separator: ",")
        return UpstreamTLSError(
            details: "upstream_tls_error{SAN_mismatch:expected \(expected.joined(separator: ",")); got \(gotText)}",
            description: "the server's certificate names \(gotText), expected \(expected.joined(separator: " or "))"
        )
    }

    static func noHTTP2(negotiated: String?) -> UpstreamTLSError {
        let got = negotiated ?? "none"
        return UpstreamTLSError(
            details: "upstream_tls_error{ALPN:expected h2; got \(got)}",
            description: "the cluster speaks HTTP/2 but the server agreed to ALPN \(got), not h2"
        )
    }

    static func handshake(_ error: Error) -> UpstreamTLSError {
        UpstreamTLSError(details: "upstream_tls_error{handshake:\(error)}", description: "TLS handshake failed: \(error)")
    }
}

extension UpstreamTLS {
    /// What the connection carries: it picks the ALPN offered for mesh mTLS.
    enum Application {
        case http1, http2, tcp
    }

    /// Adds TLS and an ``UpstreamTLSGate`` to a fresh upstream channel (inside its initializer).
    /// The gate's `verified` succeeds once the handshake is done and the server's identity checked;
    /// the gate holds any bytes read meanwhile until the caller removes it.
    func secure(_ channel: Channel, identity: MeshIdentity?, carrying application: Application) throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let sync = channel.pipeline.syncOperations
        let expected: [String]
        switch self {
        case .istioMutual(let sni, let identities):
            guard let material = identity?.load() else { throw UpstreamTLSError.noMeshCertificate }
            let context: NIOSSLContext
            switch application {
            case .http1: context = material.clientHTTP
            case .http2: context = material.clientHTTP2
            case .tcp: context = material.clientTCP
            }
            // Verification is by SPIFFE URI (the gate), so the host name only travels as SNI.
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: sni))
            expected = identities
        case .files(let context, let sni, let subjectAltNames):
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: subjectAltNames.isEmpty ? sni : nil))
            expected = subjectAltNames
        }
        try sync.addHandler(UpstreamTLSGate(expected: expected, promise: promise))
    }

    /// Succeeds once a connected upstream is verified (at once for a plain one); then, on the
    /// channel's loop, the caller finishes its pipeline and removes the gate if there is one.
    static func verified(_ channel: Channel) -> EventLoopFuture<Void> {
        (try? channel.pipeline.syncOperations.handler(type: UpstreamTLSGate.self))?.verified
            ?? channel.eventLoop.makeSucceededFuture(())
    }
}

/// Waits for the upstream TLS handshake, checks the server's names against the expected ones,
/// and holds inbound bytes until it is removed (so nothing read with the handshake is lost before
/// the proxy's own handlers are in place).
final class UpstreamTLSGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let expected: [String]
    private var promise: EventLoopPromise<Void>?
    /// Succeeds when the handshake is done and the server's names checked.
    let verified: EventLoopFuture<Void>
    private var held: [ByteBuffer] = []
    private(set) var negotiatedProtocol: String?
    private(set) var peer: PeerIdentity?

    init(expected: [String], promise: EventLoopPromise<Void>) {
        self.expected = expected
        self.promise = promise
        self.verified = promise.futureResult
    }

    func channelActive(context: ChannelHandlerContext) {
        // TCP upstreams start with autoRead off: the handshake still needs reads.
        context.read()
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            self.negotiatedProtocol = negotiated
            self.verify(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func verify(context: ChannelHandlerContext) {
        guard let promise = self.promise else { return }
        self.promise = nil
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
        if let certificate { self.peer = PeerIdentity(certificate: certificate) }
        guard !self.expected.isEmpty else {
            promise.succeed(())
            return
        }
        let names = certificate.map(Self.names(of:)) ?? []
        if names.contains(where: self.expected.contains) {
            promise.succeed(())
        } else {
            let uris = names.filter { $0.hasPrefix("spiffe://") }
            promise.fail(UpstreamTLSError.identityMismatch(expected: self.expected, got: uris.isEmpty ? names : uris))
            context.close(promise: nil)
        }
    }

    /// URI and DNS SANs.
    static func names(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            switch name.nameType {
            case .uri, .dnsName: return String(decoding: name.contents, as: UTF8.self)
            default: return nil
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.held.append(self.unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let promise = self.promise {
            self.promise = nil
            promise.fail(UpstreamTLSError.handshake(error))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let promise = self.promise {
            self.promise = nil
            promise.fail(UpstreamTLSError.handshake(ChannelError.eof))
        }
        context.fireChannelInactive()
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        let held = self.held
        self.held = []
        for buffer in held {
            context.fireChannelRead(self.wrapInboundOut(buffer))
        }
        if !held.isEmpty { context.fireChannelReadComplete() }
        context.leavePipeline(removalToken: removalToken)
    }
}
