import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// A CUSTOM policy's external authorizer (Envoy's HTTP ext_authz, as Istio's `envoyExtAuthzHttp`):
/// the checked request's method, path (after `pathPrefix`) and chosen headers go to the authorizer;
/// its 200 allows the request (with `headersToUpstreamOnAllow` copied upstream), any other answer
/// is what the client gets (flag `UAEX`); an authorizer that cannot answer in `timeout` refuses
/// with `statusOnError`, or lets the request through with `failOpen`.
public final class ExtAuthzClient: Sendable {
    /// The most of an authorizer's answer that is read.
    static let maxAnswerBytes = 64 * 1024
    /// Headers Envoy always sends to an HTTP authorizer.
    static let alwaysSent: Set = ["host", "authorization", "content-length", "method", "path"]

    let name: String
    let config: ExtAuthzHTTP
    private let targets: [(host: String, port: Int)]
    private let next = NIOLockedValueBox(0)

    /// The authorizer this instance's CUSTOM policies name (validation made sure there is one, declared).
    static func forInstance(_ config: MeshConfiguration) -> ExtAuthzClient? {
        guard let name = config.localAuthorizationPolicies.first(where: { $0.action == .custom })?.provider,
              let provider = config.settings.extensionProviders.first(where: { $0.name == name })
        else { return nil }
        return ExtAuthzClient(provider, services: config.services)
    }

    init(_ provider: ExtensionProvider, services: [Service]) {
        self.name = provider.name
        self.config = provider.extAuthzHTTP
        let wanted = provider.extAuthzHTTP.service
        if let service = services.first(where: { $0.fqdn == wanted || $0.fqdn.hasPrefix(wanted + ".") }),
           let port = service.ports.first(where: { $0.number == provider.extAuthzHTTP.port }), !service.endpoints.isEmpty {
            self.targets = service.endpoints.map { ($0.address, $0.ports[port.name] ?? port.targetPort) }
        } else {
            self.targets = [(wanted, provider.extAuthzHTTP.port)]
        }
    }

    enum Decision: Sendable {
        /// Allowed: headers for the upstream request.
        case allow(upstream: [(String, String)])
        case deny(LocalReply)
    }

    /// The check request Envoy would send for `request`.
    func checkRequest(method: HTTPMethod, target: String, headers: HTTPHeaders) -> HTTPRequestHead {
        var out = HTTPHeaders()
        for (name, value) in headers {
            let lower = name.lowercased()
            if Self.alwaysSent.contains(lower) || self.config.includeRequestHeadersInCheck.contains(lower) { out.add(name: name, value: value) }
        }
        for (name, value) in self.config.includeAdditionalHeadersInCheck.sorted(by: { $0.key < $1.key }) { out.replaceOrAdd(name: name, value: value) }
        return HTTPRequestHead(version: .http1_1, method: method, uri: self.config.pathPrefix + target, headers: out)
    }

    /// Asks the authorizer; answers on `eventLoop`.
    func check(_ head: HTTPRequestHead, on eventLoop: EventLoop) -> EventLoopFuture<Decision> {
        let index = self.next.withLockedValue { value -> Int in
            value &+= 1
            return value
        }
        let target = self.targets[index % self.targets.count]
        let config = self.config
        return OneShotHTTPClient.send(
            head, host: target.host, port: target.port, timeout: TimeAmount(config.timeout), limit: Self.maxAnswerBytes, on: eventLoop
        ).map { response in
            Self.decide(response, config)
        }.flatMapErrorThrowing { _ in
            config.failOpen ? .allow(upstream: []) : .deny(Self.errorReply(config))
        }
    }

    /// An answer → a decision (pure).
    static func decide(_ response: OneShotHTTPClient.Response, _ config: ExtAuthzHTTP) -> Decision {
        if response.status == .ok {
            return .allow(upstream: config.headersToUpstreamOnAllow.flatMap { name in response.headers[name].map { (name, $0) } })
        }
        var reply = LocalReply(status: response.status, flags: "UAEX", details: "ext_authz_denied", bytes: response.body)
        let passed = config.headersToDownstreamOnDeny
        for (name, value) in response.headers {
            let lower = name.lowercased()
            guard !["content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"].contains(lower) else { continue }
            if passed.isEmpty || passed.contains(lower) { reply.extraHeaders.add(name: name, value: value) }
        }
        return .deny(reply)
    }

    static func errorReply(_ config: ExtAuthzHTTP) -> LocalReply {
        LocalReply(status: HTTPResponseStatus(statusCode: config.statusOnError), flags: "UAEX", details: "ext_authz_error", body: "")
    }
}
