import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import MeshCore

/// The proxy with in-memory upstreams: the real downstream and upstream pipelines (codecs and
/// handlers) on one EmbeddedEventLoop, bytes in and out on both sides.
@Suite struct HTTPProxyUpstreamTests {
    /// Records each upstream connection the proxy opens.
    final class Upstreams: @unchecked Sendable {
        let loop: EmbeddedEventLoop
        private(set) var channels: [EmbeddedChannel] = []

        init(loop: EmbeddedEventLoop) {
            self.loop = loop
        }

        func connect(key: String) -> EventLoopFuture<UpstreamHTTPHandler> {
            let channel = EmbeddedChannel(loop: self.loop)
            do {
                try LoopPool.configureUpstream(channel, key: key)
                try channel.connect(to: SocketAddress(ipAddress: "127.0.9.1", port: 9080)).wait()
                self.channels.append(channel)
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHTTPHandler.self)
                let promise = self.loop.makePromise(of: UpstreamHTTPHandler.self)
                promise.assumeIsolated().succeed(handler)
                return promise.futureResult
            } catch {
                return self.loop.makeFailedFuture(error)
            }
        }

        /// Everything the proxy wrote to upstream connection `index`, as text.
        func received(_ index: Int) throws -> String {
            var text = ""
            while let data = try self.channels[index].readOutbound(as: IOData.self) {
                if case .byteBuffer(let bytes) = data { text += String(buffer: bytes) }
            }
            return text
        }

        func respond(_ index: Int, _ text: String) throws {
            try self.channels[index].writeInbound(ByteBuffer(string: text))
        }
    }

    private func setUp(http: [HTTPRoute] = [HTTPRoute(match: [], route: [Fixtures.to("productpage")])]) throws -> (EmbeddedChannel, Upstreams) {
        let snapshot = try SnapshotCompiler.compileGateway(Fixtures.configuration(http: http), generation: 1)
        let loop = EmbeddedEventLoop()
        let upstreams = Upstreams(loop: loop)
        let downstream = EmbeddedChannel(loop: loop)
        let environment = HTTPProxyEnvironment(
            holder: SnapshotHolder(snapshot),
            pools: HTTPConnectionPools(group: loop) { _, key, _, _ in upstreams.connect(key: key) },
            metrics: MeshMetrics(group: loop, sourceLabels: ""),
            log: MeshLog(minimumLevel: .error),
            port: 8080
        )
        try ConnectionSetup.configureHTTP1(channel: downstream, environment: environment, idleTimeout: .hours(1))
        try downstream.connect(to: SocketAddress(ipAddress: "10.1.2.3", port: 5555)).wait()
        return (downstream, upstreams)
    }

    private func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = data { text += String(buffer: bytes) }
        }
        return text
    }

    @Test func proxiesARequestAddsForwardingHeadersAndReusesTheConnection() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /productpage HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\r\n"))
        let sent = try upstreams.received(0)
        #expect(sent.hasPrefix("GET /productpage HTTP/1.1\r\n"))
        #expect(sent.contains("x-forwarded-for: 10.1.2.3\r\n"))
        #expect(sent.contains("x-forwarded-proto: http\r\n"))
        #expect(sent.contains("x-request-id: "))
        #expect(!sent.lowercased().contains("x-secret"), "headers named by Connection are hop-by-hop")
        #expect(!sent.lowercased().contains("connection:"))

        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: app\r\n\r\nhello")
        let response = try self.output(downstream)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("x-envoy-upstream-service-time: "))
        #expect(response.hasSuffix("\r\n\r\nhello"))

        try downstream.writeInbound(ByteBuffer(string: "GET /productpage HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: mine\r\n\r\n"))
        #expect(upstreams.channels.count == 1, "the keep-alive upstream connection is reused")
        #expect(try upstreams.received(0).contains("X-Request-Id: mine\r\n"))
    }

    @Test func pipelinedRequestsWaitForTheCurrentResponse() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        let first = try upstreams.received(0)
        #expect(first.hasPrefix("GET /a "))
        #expect(!first.contains("GET /b "))
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        // The first connection is pooled only once its read is done (nothing may follow the response
        // in it), so the pipelined request, sent within that read, goes out on a second connection.
        #expect(try upstreams.received(1).hasPrefix("GET /b "))
        try upstreams.respond(1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
        let responses = try self.output(downstream)
        #expect(responses.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(responses.hasSuffix("b"))
        try downstream.writeInbound(ByteBuffer(string: "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(upstreams.channels.count == 2, "both connections were pooled")
    }

    @Test func bytesAfterAResponseNeverReachTheNextRequest() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"))
        _ = try upstreams.received(0)
        // A response followed, in the same read, by what looks like a second one (response splitting).
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
        let first = try self.output(downstream)
        #expect(first.components(separatedBy: "HTTP/1.1 200 OK").count == 2 && first.hasSuffix("\r\n\r\na"))
        #expect(!upstreams.channels[0].isActive, "the connection with leftover bytes is closed, not pooled")
        try downstream.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(try upstreams.received(1).hasPrefix("GET /b "))
        #expect(try !self.output(downstream).contains("smuggled"))
    }

    @Test func chunkedAnyCaseIsReframedCanonicallyAndAmbiguousResponsesAre502UPE() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        let sent = try upstreams.received(0)
        #expect(sent.contains("transfer-encoding: chunked\r\n") && !sent.contains("CHUNKED"))
        #expect(sent.hasSuffix("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        let response = try self.output(downstream)
        #expect(response.contains("transfer-encoding: chunked\r\n") && !response.contains("Chunked"))
        #expect(response.hasSuffix("\r\n\r\n2\r\nok\r\n0\r\n\r\n"))

        try downstream.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        let index = upstreams.channels.count - 1
        _ = try upstreams.received(index)
        try upstreams.respond(index, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz")
        let refused = try self.output(downstream)
        #expect(refused.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n") && refused.contains("x-meshgate-response-flags: UPE\r\n"))
        #expect(!upstreams.channels[index].isActive)
    }

    @Test func anUnexpected101Is502UPE() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"))
        _ = try upstreams.received(0)
        try upstreams.respond(0, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        let response = try self.output(downstream)
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n") && response.contains("x-meshgate-response-flags: UPE\r\n"))
    }

    @Test func anEarlyResponseDropsTheRestOfTheBodyAndClosesBothSides() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"))
        #expect(try upstreams.received(0).hasSuffix("\r\n\r\nabc"))
        try upstreams.respond(0, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        let response = try self.output(downstream)
        #expect(response.hasPrefix("HTTP/1.1 413 "))
        #expect(response.contains("connection: close\r\n"))
        #expect(!upstreams.channels[0].isActive, "a half-sent request's connection is never reused")
        #expect(!downstream.isActive)
    }

    @Test func anUpstreamClosingBeforeHeadersGets503UC() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz"))
        _ = try upstreams.received(0)
        try upstreams.channels[0].close().wait()
        let response = try self.output(downstream)
        #expect(response.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(response.contains("x-meshgate-response-flags: UC\r\n"))
        #expect(response.hasSuffix("reset reason: connection termination"))
    }

    @Test func aPooledConnectionFoundClosedIsRetriedOnceOnANewOne() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"))
        _ = try upstreams.received(0)
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        _ = try self.output(downstream)
        // Second request leases the pooled connection, which the server then closes unanswered.
        try downstream.writeInbound(ByteBuffer(string: "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(try upstreams.received(0).hasPrefix("GET /2 "))
        try upstreams.channels[0].close().wait()
        #expect(upstreams.channels.count == 2)
        #expect(try upstreams.received(1).hasPrefix("GET /2 "))
        try upstreams.respond(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(try self.output(downstream).hasSuffix("\r\n\r\nok"))
    }

    @Test func anUpstreamSayingCloseIsNotPooled() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"))
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(!upstreams.channels[0].isActive)
        try downstream.writeInbound(ByteBuffer(string: "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(upstreams.channels.count == 2)
    }

    @Test func requestBodyReadsWaitWhileTheUpstreamIsNotWritable() throws {
        let (downstream, upstreams) = try self.setUp()
        let reads = ReadCounter()
        try downstream.pipeline.syncOperations.addHandler(reads, position: .first)
        try downstream.writeInbound(ByteBuffer(string: "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc"))
        upstreams.channels[0].isWritable = false
        downstream.read()
        #expect(reads.reads == 0, "no read while the upstream cannot take more")
        upstreams.channels[0].isWritable = true
        upstreams.channels[0].pipeline.fireChannelWritabilityChanged()
        #expect(reads.reads == 1)
    }

    @Test func anIdleKeepAliveConnectionClosesAfterTheIdleTimeoutButNotDuringAnExchange() throws {
        let (downstream, upstreams) = try self.setUp()
        try downstream.writeInbound(ByteBuffer(string: "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"))
        // An exchange in progress for longer than the timeout keeps the connection.
        downstream.embeddedEventLoop.advanceTime(by: .hours(2))
        #expect(downstream.isActive)
        try upstreams.respond(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        downstream.embeddedEventLoop.advanceTime(by: .minutes(59))
        #expect(downstream.isActive)
        downstream.embeddedEventLoop.advanceTime(by: .minutes(62))
        #expect(!downstream.isActive, "idle for over an hour with no exchange: closed")
    }
}
