import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// `redirect` and `directResponse`: the location Envoy's RedirectAction builds, and the reply.
struct RouteRepliesTests {
    private func location(_ redirect: HTTPRedirect, scheme: String = "http", host: String = "gw.example:8080", target: String = "/a/b?q=1", port: Int = 8080) -> String {
        LocalReply.location(redirect, request: .init(scheme: scheme, host: host, target: target, listenerPort: port))
    }

    @Test func uriReplacesThePathAndKeepsTheQueryUnlessItHasItsOwn() {
        #expect(self.location(HTTPRedirect(uri: "/v1/bookRatings")) == "http://gw.example:8080/v1/bookRatings?q=1")
        #expect(self.location(HTTPRedirect(uri: "/x?y=2")) == "http://gw.example:8080/x?y=2")
        #expect(self.location(HTTPRedirect(uri: "/x"), target: "/a") == "http://gw.example:8080/x")
    }

    @Test func authoritySchemeAndPort() {
        #expect(self.location(HTTPRedirect(authority: "other.example")) == "http://other.example/a/b?q=1")
        #expect(self.location(HTTPRedirect(authority: "other.example:9000")) == "http://other.example:9000/a/b?q=1")
        #expect(self.location(HTTPRedirect(scheme: "https")) == "https://gw.example:8080/a/b?q=1", "a non-default port stays")
        #expect(self.location(HTTPRedirect(scheme: "https"), host: "gw.example:80") == "https://gw.example/a/b?q=1", "the old scheme's default goes")
        #expect(self.location(HTTPRedirect(port: 8443, scheme: "https")) == "https://gw.example:8443/a/b?q=1")
        #expect(self.location(HTTPRedirect(port: 80)) == "http://gw.example/a/b?q=1", "the scheme's default port is not written")
        #expect(self.location(HTTPRedirect(derivePort: .fromRequestPort), host: "gw.example") == "http://gw.example:8080/a/b?q=1")
        #expect(self.location(HTTPRedirect(uri: "/x"), host: "[::1]:8080") == "http://[::1]:8080/x?q=1")
        #expect(self.location(HTTPRedirect(port: 9), host: "[::1]") == "http://[::1]:9/a/b?q=1")
    }

    @Test func replies() {
        let redirect = LocalReply.redirect(HTTPRedirect(uri: "/x", redirectCode: 308), request: .init(scheme: "http", host: "h", target: "/", listenerPort: 80))
        #expect(redirect.status == .permanentRedirect && redirect.location == "http://h/x" && redirect.body.isEmpty)
        #expect(redirect.details == "direct_response")
        let direct = LocalReply.directResponse(HTTPDirectResponse(status: 418, body: Array("teapot".utf8)))
        #expect(direct.status.code == 418 && direct.body == Array("teapot".utf8) && direct.location == nil)
        let head = direct.head(version: .http1_1, close: false)
        #expect(head.headers["content-length"] == ["6"])
    }
}
