import NIOCore
import NIOHTTP1
import Testing

@testable import MeshSampleApps

@Suite struct SampleRouteTests {
    @Test(arguments: [
        ("/", SampleRoute.hello(path: "/")),
        ("/productpage?u=normal", .hello(path: "/productpage")),
        ("/reviews/1", .hello(path: "/reviews/1")),
        ("/static/x#frag", .hello(path: "/static/x")),
        ("http://example.com/reviews/2?x", .hello(path: "/reviews/2")),
        ("http://example.com", .hello(path: "/")),
        ("/headers", .headers),
        ("/headers/x", .hello(path: "/headers/x")),
        ("/status/503", .status(.serviceUnavailable)),
        ("/status/418", .status(HTTPResponseStatus(statusCode: 418))),
        ("/delay/2", .delay(.seconds(2))),
        ("/delay/0.25", .delay(.milliseconds(250))),
        ("/bytes/104857600", .bytes(104_857_600)),
        ("/bytes/0", .bytes(0)),
    ])
    func getRoutes(uri: String, expected: SampleRoute) {
        #expect(SampleRoute(method: .GET, uri: uri) == expected)
    }

    @Test(arguments: ["/status/abc", "/status/99", "/status/600", "/status/", "/delay/-1", "/delay/nan", "/delay/301", "/bytes/-5", "/bytes/x"])
    func badArgumentsAreRejected(uri: String) {
        guard case .reject(.badRequest, _) = SampleRoute(method: .GET, uri: uri) else {
            Issue.record("\(uri) was not rejected")
            return
        }
    }

    @Test func uploadTakesPostAndPutOnly() {
        #expect(SampleRoute(method: .POST, uri: "/upload") == .upload)
        #expect(SampleRoute(method: .PUT, uri: "/upload?name=x") == .upload)
        guard case .reject(.methodNotAllowed, _) = SampleRoute(method: .GET, uri: "/upload") else {
            Issue.record("GET /upload was not rejected")
            return
        }
    }
}

@Suite struct SampleBodyTests {
    let identity = SampleIdentity(service: "reviews", version: "v2")

    @Test func helloNamesServiceVersionAndPath() {
        #expect(SampleBody.hello(self.identity, path: "/") == "reviews v2: hello\n")
        #expect(SampleBody.hello(self.identity, path: "/reviews/1") == "reviews v2: hello from /reviews/1\n")
    }

    @Test func headersKeepNamesAsSentAndJoinRepeats() {
        let headers = HTTPHeaders([("Host", "gw"), ("X-Multi", "a"), ("end-user", "jason"), ("x-multi", "b\"c")])
        #expect(
            SampleBody.headers(headers) == """
                {
                  "headers": {
                    "Host": "gw",
                    "X-Multi": "a, b\\"c",
                    "end-user": "jason"
                  }
                }

                """
        )
        #expect(SampleBody.headers(HTTPHeaders()) == "{\n  \"headers\": {}\n}\n")
    }

    @Test func jsonEscapesControlCharacters() {
        #expect(SampleBody.json("a\\b\n\t\u{01}é") == "\"a\\\\b\\n\\t\\u0001é\"")
    }
}
