import MeshConfig
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import MeshCore

/// The HTTP connection manager's local replies, driven through the real downstream pipeline
/// (decoder, encoder, proxy handler) on an EmbeddedChannel: bytes in, bytes out.
@Suite struct HTTPProxyHandlerTests {
    private func channel(http: [HTTPRoute]) throws -> EmbeddedChannel {
        let snapshot = try SnapshotCompiler.compileGateway(Fixtures.configuration(http: http), generation: 1)
        let channel = EmbeddedChannel()
        let environment = HTTPProxyEnvironment(
            holder: SnapshotHolder(snapshot),
            pools: HTTPConnectionPools(group: channel.embeddedEventLoop),
            metrics: MeshMetrics(group: channel.embeddedEventLoop, sourceLabels: ""),
            log: MeshLog(minimumLevel: .error),
            port: 8080
        )
        try ConnectionSetup.configureHTTP1(channel: channel, environment: environment, idleTimeout: .hours(1))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    private func send(_ channel: EmbeddedChannel, _ text: String) throws -> String {
        try channel.writeInbound(ByteBuffer(string: text))
        var output = ""
        while let buffer = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = buffer { output += String(buffer: bytes) }
        }
        return output
    }

    @Test func unmatchedPathGets404WithFlagNRAndKeepsTheConnection() throws {
        let channel = try self.channel(http: [HTTPRoute(match: [HTTPMatchRequest(uri: .exact("/productpage"))], route: [Fixtures.to("productpage")])])
        let response = try self.send(channel, "GET /nope HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(response.contains("x-meshgate-response-flags: NR\r\n"))
        #expect(response.contains("x-meshgate-details: route_not_found\r\n"))
        #expect(channel.isActive)
        // The connection still serves the next request.
        let second = try self.send(channel, "GET /other HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(second.hasPrefix("HTTP/1.1 404"))
    }

    @Test func anHTTP09RequestLineIsAnswered400AtOnce() throws {
        let channel = try self.channel(http: [])
        let response = try self.send(channel, "GET /x\r\n")
        #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && response.contains("connection: close\r\n"))
        #expect(RequestHeadGuard.isHTTP09RequestLine(ByteBuffer(string: "GET /x HTTP/1.1\r\n")) == false)
        #expect(RequestHeadGuard.isHTTP09RequestLine(ByteBuffer(string: "\r\nGET /x HTTP/1.1\r\n")) == false)
        #expect(RequestHeadGuard.isHTTP09RequestLine(ByteBuffer(string: "GET /x HTTP/1.1")) == false, "no line yet")
        #expect(RequestHeadGuard.isHTTP09RequestLine(ByteBuffer(string: "GET /x\n")))
    }

    @Test func aHeadTricklingPastTheRequestHeadersTimeoutGets408() throws {
        let channel = try self.channel(http: [HTTPRoute(match: [HTTPMatchRequest(uri: .exact("/x"))], route: [Fixtures.to("productpage")])])
        // An idle keep-alive connection has no head deadline; a started head has.
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        #expect(try self.send(channel, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        #expect(try self.send(channel, "GET /b HTTP/1.1\r\nHo").isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(try self.send(channel, "st: a\r\n").isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        var output = ""
        while let buffer = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = buffer { output += String(buffer: bytes) }
        }
        #expect(output.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(!channel.isActive)
    }

    @Test func clusterWithoutEndpointsGets503NoHealthyUpstream() throws {
        let channel = try self.channel(http: [HTTPRoute(match: [], route: [Fixtures.to("empty")])])
        let response = try self.send(channel, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(response.contains("x-meshgate-response-flags: UH\r\n"))
        #expect(response.hasSuffix("\r\n\r\nno healthy upstream"))
    }

    @Test(arguments: [
        ("bad request line", "GARBAGE\r\n\r\n", "400"),
        ("conflicting content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"),
        ("content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "400"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", "400"),
        ("missing host", "GET / HTTP/1.1\r\n\r\n", "400"),
        ("too many headers", "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<101).map { "X-H\($0): v\r\n" }.joined() + "\r\n", "431"),
        ("headers over 60 KiB", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 61 * 1024) + "\r\n\r\n", "431"),
    ])
    func malformedRequestsGetA4xxAndAClosedConnection(name: String, request: String, status: String) throws {
        let channel = try self.channel(http: [HTTPRoute(match: [], route: [Fixtures.to("productpage")])])
        let response = try self.send(channel, request)
        #expect(response.hasPrefix("HTTP/1.1 \(status) "), "\(name): \(response.prefix(80))")
        #expect(response.contains("connection: close\r\n"), "\(name)")
        #expect(!channel.isActive, "\(name): connection must be closed")
    }
}
