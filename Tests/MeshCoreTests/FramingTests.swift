import NIOHPACK
import NIOHTTP1
import Testing

@testable import MeshCore

/// The pure framing and request-head decisions behind the proxy's smuggling defences.
struct FramingTests {
    private func summary(_ headers: [(String, String)]) -> (HTTPHeaders, HopByHop.RequestSummary) {
        var summary = HopByHop.RequestSummary()
        let out = HopByHop.upstreamRequestHeaders(HTTPHeaders(headers), clientIP: "c", scheme: "http", summary: &summary)
        return (out, summary)
    }

    private func check(version: HTTPVersion = .http1_1, _ headers: [(String, String)], http2: Bool = false) -> Result<RequestHeadCheck.Target, LocalReply> {
        self.check(.GET, "/", version: version, headers, http2: http2)
    }

    private func check(_ uri: String, _ headers: [(String, String)]) -> Result<RequestHeadCheck.Target, LocalReply> {
        self.check(.GET, uri, headers)
    }

    private func check(_ method: HTTPMethod, _ uri: String, version: HTTPVersion = .http1_1, _ headers: [(String, String)], http2: Bool = false)
        -> Result<RequestHeadCheck.Target, LocalReply>
    {
        let (_, summary) = self.summary(headers)
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        return RequestHeadCheck.check(head, summary: summary, isHTTP2: http2)
    }

    private func refusal(_ result: Result<RequestHeadCheck.Target, LocalReply>) -> (UInt, String?)? {
        if case .failure(let reply) = result { return (reply.status.code, reply.rejected) }
        return nil
    }

    @Test func connectionCannotRemoveFramingOrRoutingHeaders() {
        let (out, summary) = self.summary([
            ("Host", "gw"), ("Content-Length", "5"), ("Connection", "Content-Length, Host, Transfer-Encoding, X-Hop"), ("X-Hop", "1"),
        ])
        // The host stays; content-length is recorded for the proxy's own framing; X-Hop goes.
        #expect(out.first(name: "host") == "gw")
        #expect(!out.contains(name: "x-hop") && !out.contains(name: "content-length"))
        #expect(summary.framing.contentLength == "5")
        #expect(Framing.request(summary.framing, isHTTP2: false) == .contentLength("5"))
    }

    @Test func requestFramingIsCanonicalWhateverTheSpelling() throws {
        let (out, summary) = self.summary([("Host", "gw"), ("Transfer-Encoding", "CHUNKED")])
        #expect(!out.contains(name: "transfer-encoding"))
        let framing = Framing.request(summary.framing, isHTTP2: false)
        #expect(framing == .chunked)
        var headers = out
        framing.apply(to: &headers)
        #expect(headers[canonicalForm: "transfer-encoding"] == ["chunked"])
        #expect(Framing.request(HopByHop.FramingHeaders(), isHTTP2: true) == .decidedByFirstPart)
        #expect(Framing.request(HopByHop.FramingHeaders(), isHTTP2: false) == .none)
    }

    @Test func onlyExactlyChunkedIsATransferCoding() {
        for good in ["chunked", "CHUNKED", "Chunked", " chunked "] { #expect(Framing.isExactlyChunked(good), "\(good)") }
        for bad in ["identity", "identity, chunked", "gzip, chunked", "chunked, chunked", "chunked, gzip", "chunked,", "", "chunk"] {
            #expect(!Framing.isExactlyChunked(bad), "\(bad)")
        }
        #expect(self.refusal(self.check(.POST, "/", [("Host", "gw"), ("Transfer-Encoding", "gzip, chunked")]))! == (501, "transfer_encoding"))
        #expect(self.refusal(self.check(.POST, "/", version: .http1_0, [("Host", "gw"), ("Transfer-Encoding", "chunked")]))! == (400, "transfer_encoding"))
        #expect(self.refusal(self.check(.POST, "/", [("Host", "gw"), ("Transfer-Encoding", "Chunked")])) == nil)
    }

    @Test func hostsMustBeOneAndValid() {
        #expect(self.refusal(self.check([("Host", "a"), ("Host", "a")]))! == (400, "multiple_hosts"))
        for bad in ["a b", "a/b", "user@a", "a\\b", "<a>", "", "gw:abc", "gw%00", "a:1:2", "[::1]x", "[::1", "a]:80", "[::1]:8:0", "[a]b:1"] {
            #expect(self.refusal(self.check([("Host", bad)]))! == (400, "invalid_host"), "\(bad)")
        }
        for good in ["a.example.com:8080", "[::1]:80", "[::1]", "xn--bcher-kva.example", "10.0.0.1", "a:"] {
            #expect(self.refusal(self.check([("Host", good)])) == nil, "\(good)")
        }
        #expect(self.refusal(self.check([]))! == (400, "missing_host"))
        #expect(self.refusal(self.check(version: .http1_0, [])) == nil, "HTTP/1.0 may omit Host")
    }

    @Test func requestTargets() throws {
        let host = [("Host", "gw")]
        #expect(try self.check("/a?b", host).get() == RequestHeadCheck.Target(path: "/a?b"))
        #expect(self.refusal(self.check("*", host))! == (400, "invalid_target"))
        #expect(self.refusal(self.check(.OPTIONS, "*", host)) == nil)
        #expect(self.refusal(self.check("/a#frag", host))! == (400, "invalid_target"))
        #expect(self.refusal(self.check("a/b", host))! == (400, "invalid_target"))
        #expect(try self.check("http://Other.example:8080/x?y", host).get() == RequestHeadCheck.Target(path: "/x?y", authority: "Other.example:8080"))
        #expect(try self.check("HTTPS://other.example", host).get() == RequestHeadCheck.Target(path: "/", authority: "other.example"))
        #expect(try self.check("http://other.example?q", host).get() == RequestHeadCheck.Target(path: "/?q", authority: "other.example"))
        #expect(self.refusal(self.check("http://u@other.example/", host))! == (400, "invalid_target"))
        #expect(self.refusal(self.check(.CONNECT, "other.example:443", host))! == (403, "connect"))
        #expect(self.refusal(self.check(version: HTTPVersion(major: 1, minor: 2), host))! == (400, "unsupported_version"))
    }

    @Test func upgradesCarryNoBodyAndHTTP2HasHTTP1sHeaderLimits() {
        let upgrade = [("Host", "gw"), ("Connection", "upgrade"), ("Upgrade", "websocket")]
        #expect(self.refusal(self.check(upgrade)) == nil)
        #expect(self.refusal(self.check(upgrade + [("Content-Length", "3")]))! == (400, "upgrade_with_body"))
        let many = [("host", "gw")] + (0..<100).map { ("x-h\($0)", "v") }
        #expect(self.refusal(self.check(version: HTTPVersion(major: 2, minor: 0), many, http2: true))! == (431, "headers_too_large"))
        let big = [("host", "gw"), ("x-big", String(repeating: "a", count: 61 * 1024))]
        #expect(self.refusal(self.check(version: HTTPVersion(major: 2, minor: 0), big, http2: true))! == (431, "headers_too_large"))
    }

    @Test func contentLengthMustFitSixtyThreeBits() {
        let host = [("Host", "gw")]
        #expect(self.refusal(self.check(.POST, "/", host + [("Content-Length", "9223372036854775807")])) == nil)
        #expect(self.refusal(self.check(.POST, "/", host + [("Content-Length", "9223372036854775808")]))! == (400, "content_length"))
        #expect(self.refusal(self.check(.POST, "/", host + [("Content-Length", "99999999999999999999")]))! == (400, "content_length"))
    }

    @Test func http2RequestsHaveOriginFormPathsTokenMethodsAndOneAuthority() {
        let h2 = HTTPVersion(major: 2, minor: 0)
        let host = [("host", "gw")]
        #expect(self.refusal(self.check(.GET, "/x", version: h2, host, http2: true)) == nil)
        #expect(self.refusal(self.check(.GET, "http://other.example/x", version: h2, host, http2: true))! == (400, "invalid_target"))
        #expect(self.refusal(self.check(.RAW(value: ""), "/x", version: h2, host, http2: true))! == (400, "invalid_method"))
        #expect(self.refusal(self.check(.RAW(value: "GE T"), "/x", version: h2, host, http2: true))! == (400, "invalid_method"))
        #expect(self.refusal(self.check(.OPTIONS, "*", version: h2, host, http2: true)) == nil)
        #expect(self.refusal(self.check(.GET, "/x", version: h2, host + [("host", "other")], http2: true))! == (400, "authority_mismatch"))
    }

    @Test func http2AuthorityIsReconciledWithHost() {
        let request: HPACKHeaders = [":method": "GET", ":scheme": "http", ":path": "/x", "host": "gw"]
        let filled = HTTP2RequestAuthority.reconciled(request)
        #expect(filled?.first(name: ":authority") == "gw")
        #expect(filled.map { Array($0.map(\.name)) } == [":method", ":scheme", ":path", ":authority", "host"], "pseudo-headers first")
        let same: HPACKHeaders = [":method": "GET", ":scheme": "http", ":authority": "GW", ":path": "/x", "host": "gw"]
        #expect(HTTP2RequestAuthority.reconciled(same) == nil)
        let other: HPACKHeaders = [":method": "GET", ":scheme": "http", ":authority": "gw", ":path": "/x", "host": "evil"]
        #expect(HTTP2RequestAuthority.reconciled(other)?[canonicalForm: "host"] == ["evil", "gw"])
        let plain: HPACKHeaders = [":method": "GET", ":scheme": "http", ":authority": "gw", ":path": "/x"]
        #expect(HTTP2RequestAuthority.reconciled(plain) == nil)
    }

    @Test func ambiguousResponsesAreRefused() throws {
        func framing(_ cl: [String], _ te: String?, status: HTTPResponseStatus = .ok, head: Bool = false, version: HTTPVersion? = .http1_1)
            -> Result<Framing, Framing.ResponseError>
        {
            var headers = HopByHop.FramingHeaders()
            for value in cl { headers.record(contentLength: value) }
            if let te { headers.record(transferEncoding: te) }
            return Framing.response(headers, status: status, isHeadRequest: head, clientVersion: version)
        }
        #expect(try framing([], "Chunked").get() == .chunked)
        #expect(try framing(["12"], nil).get() == .contentLength("12"))
        #expect(try framing([], nil).get() == .chunked, "close-delimited upstream: chunked to an HTTP/1.1 client")
        #expect(try framing([], nil, version: .http1_0).get() == .closeDelimited)
        #expect(try framing([], "chunked", version: .http1_0).get() == .closeDelimited)
        #expect(try framing([], "chunked", version: nil).get() == Framing.none, "HTTP/2 frames its own body")
        #expect(try framing([], nil, status: .noContent).get() == Framing.none)
        #expect(try framing([], "chunked", head: true).get() == .chunked, "a HEAD response may announce chunking")
        #expect(try framing([], "chunked", status: .noContent).get() == Framing.none, "a 204 has no body, so no last chunk")
        #expect(try framing([], "chunked", status: .notModified, head: true).get() == Framing.none)
        #expect(try framing([" 5\t"], nil).get() == .contentLength("5"), "a field value's whitespace is not part of it")
        var chunked10 = HopByHop.FramingHeaders()
        chunked10.record(transferEncoding: "chunked")
        #expect(throws: Framing.ResponseError.self) {
            try Framing.response(chunked10, status: .ok, isHeadRequest: false, clientVersion: .http1_1, upstreamVersion: .http1_0).get()
        }
        for (cl, te) in [
            (["5"], "chunked"), (["5", "5"], nil), (["5", "6"], nil), ([], "chunked, gzip"), ([], "gzip"), (["0x5"], nil), (["-1"], nil),
            (["9223372036854775808"], nil),
        ] {
            guard case .failure = framing(cl, te) else {
                Issue.record("\(cl) \(te ?? "-") accepted")
                continue
            }
        }
    }
}
