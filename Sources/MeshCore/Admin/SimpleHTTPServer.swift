import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server for the control-plane endpoints (readiness, admin): each request is
/// answered by a Sendable closure on the event loop. Not for the data path.
public enum SimpleHTTPServer {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: String

        public init(status: HTTPResponseStatus, contentType: String = "text/plain", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public typealias Responder = @Sendable (_ method: HTTPMethod, _ path: String) async -> Response

    public static func bind(group: EventLoopGroup, host: String, port: Int, responder: @escaping Responder) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(responder: responder))
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let responder: Responder
        private var head: HTTPRequestHead?

        init(responder: @escaping Responder) {
            self.responder = responder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body:
                break
            case .end:
                guard let head = self.head else { return }
                self.head = nil
                let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
                let responder = self.responder
                let promise = context.eventLoop.makePromise(of: Response.self)
                promise.completeWithTask { await responder(head.method, path) }
                promise.futureResult.assumeIsolated().whenSuccess { response in
                    self.write(response, for: head, context: context)
                }
            }
        }

        private func write(_ response: Response, for head: HTTPRequestHead, context: ChannelHandlerContext) {
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: response.contentType)
                headers.add(name: "content-length", value: String(response.body.utf8.count))
                if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
                if head.method != .HEAD {
                    var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
                    buffer.writeString(response.body)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                }
                let keepAlive = head.isKeepAlive
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if !keepAlive { context.close(promise: nil) }
                }
        }
    }
}
