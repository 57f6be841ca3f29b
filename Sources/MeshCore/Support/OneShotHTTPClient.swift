import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP/1.1 request on a connection of its own, bounded in time and in the answer's size: the
/// control plane's JWKS fetches and the external authorizer's checks. Answers on `eventLoop`.
enum OneShotHTTPClient {
    struct Response: Sendable {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func send(
        _ head: HTTPRequestHead, body: [UInt8] = [], host: String, port: Int, tls: Bool = false, timeout: TimeAmount, limit: Int,
        on eventLoop: EventLoop
    ) -> EventLoopFuture<Response> {
        let promise = eventLoop.makePromise(of: Response.self)
        let timer = eventLoop.scheduleTask(in: timeout) { promise.fail(Failure("no answer within \(timeout.nanoseconds / 1_000_000) ms")) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        let sslContext: NIOSSLContext?
        do {
            sslContext = tls ? try NIOSSLContext(configuration: .makeClientConfiguration()) : nil
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        let connected = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: host))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, limit: limit))
                }
            }
            .connect(host: host, port: port)
        connected.whenFailure { promise.fail($0) }
        connected.whenSuccess { channel in
            var head = head
            head.headers.replaceOrAdd(name: "connection", value: "close")
            if !body.isEmpty || head.method == .POST { head.headers.replaceOrAdd(name: "content-length", value: String(body.count)) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        return promise.futureResult
    }
}

/// Collects one response, refusing a body over `limit` bytes.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<OneShotHTTPClient.Response>
    let limit: Int
    var head: HTTPResponseHead?
    var body: [UInt8] = []

    init(promise: EventLoopPromise<OneShotHTTPClient.Response>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body(let buffer):
            self.body += buffer.readableBytesView
            if self.body.count > self.limit {
                self.promise.fail(OneShotHTTPClient.Failure("the answer is over \(self.limit) bytes"))
                context.close(promise: nil)
            }
        case .end:
            guard let head = self.head else { return }
            self.promise.succeed(OneShotHTTPClient.Response(status: head.status, headers: head.headers, body: self.body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(OneShotHTTPClient.Failure("the connection closed before the answer was complete"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }
}
