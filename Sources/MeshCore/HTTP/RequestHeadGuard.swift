import NIOCore
import NIOHTTP1

/// Sits in front of the HTTP/1.1 decoder and watches raw bytes for what the decoder cannot see:
///
/// - `requestHeadersTimeout` (Envoy's `request_headers_timeout`): from the first byte of a request
///   head to its last. A client trickling a head (slowloris) is answered 408 and closed, so it
///   cannot hold a connection and its buffered partial head forever.
/// - An HTTP/0.9 request line (`GET /x` without a version) as a connection's first line: the
///   decoder would wait for more; it gets a 400 and a close at once.
///
/// The proxy handler tells it when the decoder has produced a head and when a request ended; it
/// never parses beyond a connection's first line.
final class RequestHeadGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Fired down the pipeline when a head took too long; the proxy answers 408.
    struct HeadersTimeout: Error {}

    private let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    /// At most one timer per connection, re-armed lazily: a request's head only records when it
    /// started, so keep-alive traffic schedules and cancels nothing per request.
    private var timer: Scheduled<Void>?
    /// When the head being read started; nil between heads' ends and the next read.
    private var headStarted: NIODeadline?
    /// The decoder is between requests: the next byte starts a head.
    private var awaitingHead = true
    private var firstRead = true

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.disarm()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.firstRead {
            self.firstRead = false
            if Self.isHTTP09RequestLine(self.unwrapInboundIn(data)) {
                context.fireErrorCaught(HTTPParserError.invalidVersion)
                return
            }
        }
        if self.awaitingHead && self.headStarted == nil {
            self.headStarted = context.eventLoop.now
            if self.timer == nil { self.arm(context, in: self.timeout) }
        }
        context.fireChannelRead(data)
    }

    /// When the timer fires, the head being read (if any) either is late, or gets the rest of its time.
    private func arm(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.timer = nil
            guard let started = self.headStarted, let context = self.context else { return }
            let remaining = started + self.timeout - context.eventLoop.now
            if remaining > .zero {
                self.arm(context, in: remaining)
            } else {
                context.fireErrorCaught(HeadersTimeout())
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.disarm()
        context.fireChannelInactive()
    }

    /// The decoder produced a request head: its deadline is met.
    func headReceived() {
        self.awaitingHead = false
        self.headStarted = nil
    }

    /// A request ended: the next byte read starts the next head's deadline.
    func requestEnded() {
        self.awaitingHead = true
    }

    private func disarm() {
        self.timer?.cancel()
        self.timer = nil
    }

    /// A first line ended by LF whose last word is not `HTTP/…` (RFC 1945's simple request).
    static func isHTTP09RequestLine(_ buffer: ByteBuffer) -> Bool {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return false }
        var line = view[view.startIndex..<newline]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        guard let space = line.lastIndex(of: UInt8(ascii: " ")) else { return !line.isEmpty }
        return !line[line.index(after: space)...].starts(with: "HTTP/".utf8)
    }
}
