import NIOCore
import NIOHTTP2

/// Graceful drain of an HTTP/2 connection: on ``DrainEvent`` it sends GOAWAY (no new streams; the
/// client opens its next requests elsewhere) and closes the connection once its last stream ends.
/// Sits after the HTTP/2 handler; every stream channel reports its start and end here. Confined to
/// the connection's event loop.
final class HTTP2ConnectionDrainer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var openStreams = 0
    private var draining = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Called by the stream initializer for each new stream (on the connection's loop).
    func track(_ stream: Channel) {
        self.openStreams += 1
        stream.closeFuture.assumeIsolated().whenComplete { _ in
            self.openStreams -= 1
            if self.draining && self.openStreams == 0 {
                self.context?.close(promise: nil)
            }
        }
    }

    /// A connection error (a protocol violation, or one of swift-nio-http2's flood limits: rapid
    /// resets, CONTINUATION floods, control-frame floods) has already been answered with GOAWAY by
    /// the HTTP/2 handler; the connection is closed here.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent, !self.draining {
            self.draining = true
            let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
            context.writeAndFlush(self.wrapOutboundOut(goAway), promise: nil)
            if self.openStreams == 0 {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
