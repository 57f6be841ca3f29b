import NIOCore
import NIOHTTP1

/// The httpbin-like sample service, one instance per connection, behind NIO's HTTP/1.1 server pipeline
/// (with pipelining assistance, so it sees one request at a time).
///
/// Answers once the whole request has arrived (`Expect: 100-continue` gets its `100 Continue` at once);
/// request bodies are counted, never stored. `/delay` waits
/// on a scheduled task, never blocking the loop. `/bytes/N` writes the next chunk only while the channel
/// is writable, so a slow reader holds memory flat. A malformed request gets a 400 and a close.
/// Every response carries `x-service` and `x-version`. Each request head is logged as `METHOD TARGET`
/// when it arrives, so a test can tell what reached the app (and when).
final class HTTPSampleHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The size of one `/bytes` body write.
    static let chunkSize = 64 * 1024

    private struct Request {
        var head: HTTPRequestHead
        var route: SampleRoute
        var bodyBytes = 0
        /// A gRPC call (`content-type: application/grpc…`): its messages, echoed back.
        var grpcMessages: ByteBuffer?

        /// HTTP/2 streams end with their response; HTTP/1.x follows its keep-alive rules.
        var keepAlive: Bool { self.head.version.major == 2 || self.head.isKeepAlive }
    }

    /// The largest gRPC request echoed; a larger one gets grpc-status 8 (RESOURCE_EXHAUSTED).
    static let maxGRPCBytes = 4 << 20

    private enum State {
        /// Between requests.
        case idle
        /// The request head arrived; its body is being counted.
        case receiving(Request)
        /// `/delay`: the answer is scheduled.
        case delaying(Scheduled<Void>)
        /// `/bytes`: the head is written; `remaining` body bytes are still to write.
        case streaming(remaining: Int, keepAlive: Bool)
        /// The connection is closing; nothing more is written.
        case closed
    }

    private let identity: SampleIdentity
    private let log: @Sendable (String) -> Void
    private var state = State.idle
    /// One chunk of `/bytes` body, written again and again (copy-on-write: no copy is made).
    private var chunk: ByteBuffer?

    /// Plain answers wait this long (a slow instance); zero = at once.
    private let hold: TimeAmount

    init(identity: SampleIdentity, hold: TimeAmount = .zero, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.identity = identity
        self.hold = hold
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (Self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .idle):
            self.log("\(head.method.rawValue) \(head.uri)")
            var request = Request(head: head, route: SampleRoute(method: head.method, uri: head.uri))
            if head.headers.first(name: "content-type")?.hasPrefix("application/grpc") == true {
                request.grpcMessages = context.channel.allocator.buffer(capacity: 0)
            }
            self.state = .receiving(request)
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(Self.wrapOutboundOut(.head(interim)), promise: nil)
            }
        case (.body(let body), .receiving(var request)):
            request.bodyBytes += body.readableBytes
            if request.bodyBytes <= Self.maxGRPCBytes {
                var body = body
                request.grpcMessages?.writeBuffer(&body)
            }
            self.state = .receiving(request)
        case (.end, .receiving(let request)):
            self.state = .idle
            self.respond(context: context, to: request)
        default:
            // Only after a close; the pipelining handler delivers nothing else out of order.
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .streaming = self.state {
            self.pump(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .delaying(let task) = self.state {
            task.cancel()
        }
        self.state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A malformed request: answer 400 if no response is under way, then close.
        switch self.state {
        case .idle, .receiving:
            if error is HTTPParserError {
                var head = self.responseHead(.badRequest, version: .http1_1, keepAlive: false)
                let body = "bad request: \(error)\n"
                head.headers.add(name: "content-type", value: "text/plain; charset=utf-8")
                head.headers.add(name: "content-length", value: String(body.utf8.count))
                context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                self.finish(context: context, keepAlive: false)
                return
            }
        case .delaying(let task):
            task.cancel()
        case .streaming, .closed:
            break
        }
        self.state = .closed
        context.close(promise: nil)
    }

    // MARK: - Responses

    private func respond(context: ChannelHandlerContext, to request: Request) {
        let keepAlive = request.keepAlive
        let identity = self.identity
        if let messages = request.grpcMessages {
            self.answerGRPC(context: context, request: request, messages: messages)
            return
        }
        var route = request.route
        if case .hello = route, self.hold > .zero {
            route = .delay(self.hold)
        }
        switch route {
        case .hello(let path):
            self.send(context: context, request: request, status: .ok, text: SampleBody.hello(identity, path: path))
        case .headers:
            self.send(
                context: context,
                request: request,
                status: .ok,
                text: SampleBody.headers(request.head.headers),
                contentType: "application/json"
            )
        case .status(let status):
            self.send(context: context, request: request, status: status, text: "")
        case .upload:
            self.send(
                context: context,
                request: request,
                status: .ok,
                text: SampleBody.upload(bytes: request.bodyBytes),
                contentType: "application/json"
            )
        case .reject(let status, let reason):
            self.send(context: context, request: request, status: status, text: "\(reason)\n", extraHeaders: status == .methodNotAllowed ? [("allow", "POST, PUT")] : [])
        case .delay(let delay):
            let task = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                guard case .delaying = self.state else { return }
                self.state = .idle
                self.send(context: context, request: request, status: .ok, text: SampleBody.hello(identity, path: SampleRoute.path(of: request.head.uri)))
            }
            self.state = .delaying(task)
        case .bytes(let count):
            var head = self.responseHead(.ok, version: request.head.version, keepAlive: keepAlive)
            head.headers.add(name: "content-type", value: "application/octet-stream")
            head.headers.add(name: "content-length", value: String(count))
            context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
            self.state = .streaming(remaining: request.head.method == .HEAD ? 0 : count, keepAlive: keepAlive)
            self.pump(context: context)
        }
    }

    /// A gRPC echo: the request's length-prefixed messages back as they came, then the status in
    /// trailers, as every gRPC server ends a call.
    private func answerGRPC(context: ChannelHandlerContext, request: Request, messages: ByteBuffer) {
        var head = self.responseHead(.ok, version: request.head.version, keepAlive: request.keepAlive)
        head.headers.add(name: "content-type", value: "application/grpc")
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        var trailers = HTTPHeaders()
        if request.bodyBytes > Self.maxGRPCBytes {
            trailers.add(name: "grpc-status", value: "8")
            trailers.add(name: "grpc-message", value: "request larger than \(Self.maxGRPCBytes) bytes")
        } else {
            if messages.readableBytes > 0 {
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(messages))), promise: nil)
            }
            trailers.add(name: "grpc-status", value: "0")
        }
        context.writeAndFlush(Self.wrapOutboundOut(.end(trailers)), promise: nil)
        if !request.keepAlive {
            self.state = .closed
            context.close(promise: nil)
        }
    }

    /// Writes `/bytes` chunks while the channel takes them; ends the response when all are written.
    private func pump(context: ChannelHandlerContext) {
        guard case .streaming(var remaining, let keepAlive) = self.state else { return }
        let chunk = self.chunk ?? Self.makeChunk(allocator: context.channel.allocator)
        self.chunk = chunk
        while remaining > 0, context.channel.isWritable {
            let length = min(remaining, chunk.readableBytes)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: chunk.readerIndex, length: length)!))), promise: nil)
            remaining -= length
        }
        if remaining > 0 {
            self.state = .streaming(remaining: remaining, keepAlive: keepAlive)
            context.flush()
        } else {
            self.state = .idle
            self.finish(context: context, keepAlive: keepAlive)
        }
    }

    private static func makeChunk(allocator: ByteBufferAllocator) -> ByteBuffer {
        var chunk = allocator.buffer(capacity: Self.chunkSize)
        for index in 0..<Self.chunkSize {
            chunk.writeInteger(UInt8(truncatingIfNeeded: index))
        }
        return chunk
    }

    private func send(
        context: ChannelHandlerContext,
        request: Request,
        status: HTTPResponseStatus,
        text: String,
        contentType: String = "text/plain; charset=utf-8",
        extraHeaders: [(String, String)] = []
    ) {
        let keepAlive = request.keepAlive
        var head = self.responseHead(status, version: request.head.version, keepAlive: keepAlive)
        head.headers.add(name: "content-type", value: contentType)
        head.headers.add(name: "content-length", value: String(text.utf8.count))
        head.headers.add(contentsOf: extraHeaders)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        if request.head.method != .HEAD, !text.isEmpty {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        }
        self.finish(context: context, keepAlive: keepAlive)
    }

    private func responseHead(_ status: HTTPResponseStatus, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "x-service", value: self.identity.service)
        headers.add(name: "x-version", value: self.identity.version)
        // The protocol the request arrived in, so a test can tell what a proxy sent upstream.
        headers.add(name: "x-request-protocol", value: version.major == 2 ? "HTTP/2" : "HTTP/\(version.major).\(version.minor)")
        if version.major == 2 {
            // Connection headers do not exist in HTTP/2.
        } else if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if version.major == 1, version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version.major == 1 ? version : .http1_1, status: status, headers: headers)
    }

    /// Ends the response; closes the connection once it is out unless the client keeps it alive.
    private func finish(context: ChannelHandlerContext, keepAlive: Bool) {
        let written = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            self.state = .closed
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
