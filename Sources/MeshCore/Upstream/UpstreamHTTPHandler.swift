import NIOCore
import NIOHTTP1
import NIOHTTP2

/// What an upstream HTTP/1.1 connection reports to the downstream exchange that leases it.
///
/// Both sides live on the same event loop, so these are plain calls with no locks.
protocol UpstreamHTTPOwner: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamClosed()
    func upstreamBecameWritable()
    /// The response could not be parsed (the connection closes next; `upstreamClosed` is not called).
    func upstreamProtocolError(_ reason: String)
    /// Whether the downstream can take more response bytes; when false, upstream reads wait.
    var downstreamWritable: Bool { get }
}

/// The last handler of a pooled upstream HTTP/1.1 connection. While leased it hands every response
/// part to its owner and holds `read()` back while the owner's downstream is not writable; while
/// idle in the pool any data or EOF from the server closes it.
final class UpstreamHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// Pool key: `cluster|ip:port`.
    let key: String
    /// The exchange leasing this connection. Strong, and always cleared when the lease ends (release,
    /// close, or either channel going inactive), which is cheaper than a weak reference per event.
    var owner: (any UpstreamHTTPOwner)?
    private(set) var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Requests sent on this connection so far (for `maxRequestsPerConnection`).
    var requestsSent = 0
    /// While pooled: when it has been idle for its cluster's `idleTimeout`.
    var idleDeadline = NIODeadline.distantFuture
    /// One HTTP/2 stream (one request) rather than a keep-alive HTTP/1.1 connection.
    let isStream: Bool
    /// The server refused the stream (RST_STREAM or GOAWAY with REFUSED_STREAM): it did not
    /// process the request, which may be sent again (RFC 9113 §8.7).
    private(set) var refused = false
    /// Between a read and its read-complete: the decoder may still hold bytes of this read.
    private var reading = false
    /// Released to the pool during a read: pooled at read-complete, unless the rest of the read
    /// held more than the response (then it closes: leftover bytes never reach the next request).
    var pendingRelease: (pool: LoopPool, idleTimeout: TimeAmount)?
    var isReading: Bool { self.reading }

    init(key: String, isStream: Bool = false) {
        self.key = key
        self.isStream = isStream
    }

    var isActive: Bool { self.context?.channel.isActive ?? false }

    /// `ip:port` of this end of the connection (`%UPSTREAM_LOCAL_ADDRESS%`), formatted once.
    private(set) lazy var localAddressText: String? = self.context?.channel.localAddress.flatMap(HTTPProxyHandler.hostPort)
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Used by the owner

    func send(_ part: HTTPClientRequestPart, flush: Bool) {
        guard let context = self.context else { return }
        context.write(self.wrapOutboundOut(part), promise: nil)
        if flush { context.flush() }
    }

    func flush() {
        self.context?.flush()
    }

    func close() {
        self.owner = nil
        self.context?.close(promise: nil)
    }

    /// The owner's downstream became writable: release a held read.
    func resumeReading() {
        if self.pendingRead, let context = self.context {
            self.pendingRead = false
            context.read()
        }
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.reading = true
        let part = self.unwrapInboundIn(data)
        if let owner = self.owner {
            owner.upstreamReceived(part)
        } else {
            // A response nobody asked for (or bytes on an idle connection): it cannot be reused.
            self.pendingRelease = nil
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.reading = false
        if let (pool, idleTimeout) = self.pendingRelease {
            self.pendingRelease = nil
            pool.release(self, idleTimeout: idleTimeout)
        }
        self.owner?.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let owner = self.owner
        self.owner = nil
        owner?.upstreamClosed()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.owner?.upstreamBecameWritable()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.pendingRelease = nil
        if error is HTTPParserError, let owner = self.owner {
            self.owner = nil
            owner.upstreamProtocolError("\(error)")
        }
        if let closed = error as? NIOHTTP2Errors.StreamClosed, closed.errorCode == .refusedStream {
            self.refused = true
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let owner = self.owner, !owner.downstreamWritable {
            self.pendingRead = true
        } else {
            context.read()
        }
    }
}
