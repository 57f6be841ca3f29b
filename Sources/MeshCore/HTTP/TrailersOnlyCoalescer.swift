import NIOCore
import NIOHPACK
import NIOHTTP2

/// On a downstream HTTP/2 stream, below the HTTP/1-to-HTTP/2 codec: gives a gRPC Trailers-Only
/// response back its shape.
///
/// An upstream's trailers-only answer (one HEADERS frame with END_STREAM carrying `grpc-status`, as
/// gRPC sends an error before any message) reaches the proxy as a head and an end. The codec would
/// write those as HEADERS without END_STREAM and an empty DATA frame with it, which gRPC clients
/// read as a broken stream (`UNKNOWN "Stream removed"`). This handler holds a first HEADERS frame
/// that carries `grpc-status` until the next write: an empty END_STREAM DATA frame folds into it
/// (one HEADERS frame with END_STREAM, as it came); anything else lets it go unchanged.
final class TrailersOnlyCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var held: (headers: HTTP2Frame.FramePayload.Headers, promise: EventLoopPromise<Void>?)?
    private var sawHeaders = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = self.unwrapOutboundIn(data)
        if let held = self.held {
            self.held = nil
            if case .data(let frame) = payload, frame.endStream, frame.data.readableBytes == 0 {
                var headers = held.headers
                headers.headers.remove(name: "content-length")
                headers.endStream = true
                if let promise { held.promise?.futureResult.cascade(to: promise) }
                context.write(self.wrapOutboundOut(.headers(headers)), promise: held.promise ?? promise)
                return
            }
            context.write(self.wrapOutboundOut(.headers(held.headers)), promise: held.promise)
        } else if !self.sawHeaders, case .headers(let headers) = payload {
            self.sawHeaders = true
            if !headers.endStream && headers.headers.contains(name: "grpc-status") {
                self.held = (headers, promise)
                return
            }
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if let held = self.held {
            self.held = nil
            context.write(self.wrapOutboundOut(.headers(held.headers)), promise: held.promise)
        }
        context.flush()
    }
}
