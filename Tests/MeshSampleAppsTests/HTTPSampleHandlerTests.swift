import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import MeshSampleApps

/// One HTTP/1.1 response as read back from the wire.
struct WireResponse {
    var status: Int
    /// Lower-cased names.
    var headers: [String: String]
    var body: String
}

/// The lines a handler logged. EmbeddedChannel runs everything on the test's thread.
final class LogRecorder: @unchecked Sendable {
    var lines: [String] = []
}

/// Drives one sample-app connection on an EmbeddedChannel with raw request bytes.
struct SampleConnection {
    let channel = EmbeddedChannel()
    let log = LogRecorder()

    init(service: String = "reviews", version: String = "v2") throws {
        try self.channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
        let log = self.log
        try self.channel.pipeline.syncOperations.addHandler(
            HTTPSampleHandler(identity: SampleIdentity(service: service, version: version)) { log.lines.append($0) }
        )
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func send(_ text: String) throws {
        try self.channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written so far.
    func written() throws -> String {
        var text = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    /// Splits written bytes into responses (content-length framing only, as the sample app writes).
    func responses() throws -> [WireResponse] {
        var rest = Substring(try self.written())
        var responses: [WireResponse] = []
        while let end = rest.firstRange(of: "\r\n\r\n") {
            let lines = rest[..<end.lowerBound].split(separator: "\r\n")
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                let colon = line.firstIndex(of: ":")!
                headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
            }
            let length = Int(headers["content-length"] ?? "0")!
            let bodyStart = end.upperBound
            let bodyEnd = rest.utf8.index(bodyStart, offsetBy: min(length, rest[bodyStart...].utf8.count))
            let status = Int(lines[0].split(separator: " ")[1])!
            responses.append(WireResponse(status: status, headers: headers, body: String(rest[bodyStart..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        #expect(rest.isEmpty, "unparsed bytes: \(rest.prefix(80))")
        return responses
    }

    func response() throws -> WireResponse {
        let all = try self.responses()
        try #require(all.count == 1)
        return all[0]
    }
}

@Suite struct HTTPSampleHandlerTests {
    @Test func helloNamesServiceVersionAndPath() throws {
        let connection = try SampleConnection()
        try connection.send("GET /reviews/1 HTTP/1.1\r\nHost: gw\r\n\r\n")
        let response = try connection.response()
        #expect(response.status == 200)
        #expect(response.body == "reviews v2: hello from /reviews/1\n")
        #expect(response.headers["x-service"] == "reviews")
        #expect(response.headers["x-version"] == "v2")
        #expect(connection.channel.isActive)
    }

    @Test func keepAliveServesPipelinedRequestsInOrder() throws {
        let connection = try SampleConnection()
        try connection.send("GET / HTTP/1.1\r\nHost: gw\r\n\r\nGET /status/503 HTTP/1.1\r\nHost: gw\r\n\r\nGET /x HTTP/1.1\r\nHost: gw\r\n\r\n")
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [200, 503, 200])
        #expect(responses.map(\.body) == ["reviews v2: hello\n", "", "reviews v2: hello from /x\n"])
        #expect(responses.allSatisfy { $0.headers["x-service"] == "reviews" && $0.headers["x-version"] == "v2" })
        #expect(connection.channel.isActive)
        #expect(connection.log.lines == ["GET /", "GET /status/503", "GET /x"])
    }

    @Test func connectionCloseClosesAfterTheResponse() throws {
        let connection = try SampleConnection()
        try connection.send("GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        connection.channel.embeddedEventLoop.run()
        let response = try connection.response()
        #expect(response.headers["connection"] == "close")
        #expect(!connection.channel.isActive)
    }

    @Test func headersEchoesTheRequestHeadersAsJSON() throws {
        let connection = try SampleConnection()
        try connection.send("GET /headers HTTP/1.1\r\nHost: gw\r\nEnd-User: jason\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
        let response = try connection.response()
        #expect(response.headers["content-type"] == "application/json")
        #expect(response.body.contains("\"End-User\": \"jason\""))
        #expect(response.body.contains("\"X-A\": \"1, 2\""))
        #expect(response.body.contains("\"Host\": \"gw\""))
    }

    @Test func delayAnswersOnlyWhenTheTimeHasCome() throws {
        let connection = try SampleConnection()
        try connection.send("GET /delay/1.5 HTTP/1.1\r\nHost: gw\r\n\r\n")
        #expect(connection.log.lines == ["GET /delay/1.5"], "logged as soon as the head arrives")
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1499))
        #expect(try connection.written().isEmpty)
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        let response = try connection.response()
        #expect(response.status == 200)
        #expect(response.body == "reviews v2: hello from /delay/1.5\n")
    }

    @Test func delayIsCancelledWhenTheClientGoes() throws {
        let connection = try SampleConnection()
        try connection.send("GET /delay/1 HTTP/1.1\r\nHost: gw\r\n\r\n")
        try connection.channel.close().wait()
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try connection.written().isEmpty)
    }

    @Test func bytesStreamsOnlyWhileWritable() throws {
        let connection = try SampleConnection()
        let count = 3 * HTTPSampleHandler.chunkSize + 5
        connection.channel.isWritable = false
        try connection.send("GET /bytes/\(count) HTTP/1.1\r\nHost: gw\r\n\r\n")
        let head = try connection.written()
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(head.hasSuffix("\r\n\r\n"), "only the head is written while the channel is not writable")
        #expect(head.lowercased().contains("content-length: \(count)\r\n"))

        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        var bodyBytes = 0
        var first: ByteBuffer?
        while let buffer = try connection.channel.readOutbound(as: ByteBuffer.self) {
            bodyBytes += buffer.readableBytes
            first = first ?? buffer
        }
        #expect(bodyBytes == count)
        #expect(first?.getBytes(at: first!.readerIndex, length: 3) == [0, 1, 2])
        #expect(connection.channel.isActive)

        // The connection is ready for the next request.
        try connection.send("GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
        #expect(try connection.response().status == 200)
    }

    @Test func headOfBytesSendsNoBody() throws {
        let connection = try SampleConnection()
        try connection.send("HEAD /bytes/1000 HTTP/1.1\r\nHost: gw\r\n\r\n")
        let written = try connection.written()
        #expect(written.lowercased().contains("content-length: 1000\r\n"))
        #expect(written.hasSuffix("\r\n\r\n"))
    }

    @Test func uploadCountsContentLengthAndChunkedBodies() throws {
        let connection = try SampleConnection()
        try connection.send("POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n0123")
        try connection.send("456789")
        try connection.send("PUT /upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        let responses = try connection.responses()
        #expect(responses.map(\.body) == ["{\"bytes\": 10}\n", "{\"bytes\": 7}\n"])
        #expect(responses.allSatisfy { $0.headers["content-type"] == "application/json" })
    }

    @Test func expectContinueGetsAnInterimResponseFirst() throws {
        let connection = try SampleConnection()
        try connection.send("PUT /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        #expect(try connection.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        try connection.send("abc")
        #expect(try connection.response().body == "{\"bytes\": 3}\n")
    }

    @Test func uploadWithGetIsNotAllowed() throws {
        let connection = try SampleConnection()
        try connection.send("GET /upload HTTP/1.1\r\nHost: gw\r\n\r\n")
        let response = try connection.response()
        #expect(response.status == 405)
        #expect(response.headers["allow"] == "POST, PUT")
    }

    @Test func malformedRequestGets400AndAClose() throws {
        let connection = try SampleConnection()
        try connection.send("NOT A REQUEST\r\n\r\n")
        connection.channel.embeddedEventLoop.run()
        let response = try connection.response()
        #expect(response.status == 400)
        #expect(response.headers["x-service"] == "reviews")
        #expect(!connection.channel.isActive)
        #expect(connection.log.lines.isEmpty)
    }
}
