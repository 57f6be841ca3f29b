import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// The external authorizer's request and the decision from its answer, without sockets.
@Suite struct ExtAuthzTests {
    static let provider = ExtensionProvider(
        name: "ext", extAuthzHTTP: ExtAuthzHTTP(
            service: "127.0.0.1", port: 9000, pathPrefix: "/check", includeRequestHeadersInCheck: ["x-ext-authz"],
            includeAdditionalHeadersInCheck: ["x-from": "meshgate"], headersToUpstreamOnAllow: ["x-result"],
            headersToDownstreamOnDeny: ["x-result"]
        )
    )

    @Test func theCheckCarriesMethodPathAndChosenHeadersOnly() {
        let client = ExtAuthzClient(Self.provider, services: [])
        let head = client.checkRequest(
            method: .DELETE, target: "/items/1?x=y",
            headers: HTTPHeaders([("Host", "shop"), ("Authorization", "Bearer t"), ("X-Ext-Authz", "allow"), ("Cookie", "secret")])
        )
        #expect(head.method == .DELETE && head.uri == "/check/items/1?x=y")
        #expect(head.headers["host"] == ["shop"] && head.headers["authorization"] == ["Bearer t"])
        #expect(head.headers["x-ext-authz"] == ["allow"] && head.headers["x-from"] == ["meshgate"])
        #expect(head.headers["cookie"].isEmpty)
    }

    @Test func aTwoHundredAllowsAndAnythingElseIsTheClientsAnswer() {
        let config = Self.provider.extAuthzHTTP
        let allowed = ExtAuthzClient.decide(.init(status: .ok, headers: HTTPHeaders([("x-result", "ok"), ("x-other", "1")]), body: []), config)
        guard case .allow(let upstream) = allowed else {
            Issue.record("expected allow")
            return
        }
        #expect(upstream.map(\.0) == ["x-result"])
        let denied = ExtAuthzClient.decide(
            .init(status: .unauthorized, headers: HTTPHeaders([("x-result", "no"), ("x-other", "1"), ("content-length", "2")]), body: Array("no".utf8)),
            config
        )
        guard case .deny(let reply) = denied else {
            Issue.record("expected deny")
            return
        }
        #expect(reply.status == .unauthorized && reply.flags == "UAEX" && reply.body == Array("no".utf8))
        #expect(reply.extraHeaders["x-result"] == ["no"] && reply.extraHeaders["x-other"].isEmpty)
        #expect(ExtAuthzClient.errorReply(config).status == .forbidden)
        #expect(ExtAuthzClient.errorReply(config).details == "ext_authz_error")
    }
}
