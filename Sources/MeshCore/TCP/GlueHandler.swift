import NIOCore

/// One half of a matched pair of handlers that pump bytes between two channels on the same event
/// loop (SwiftNIO's GlueHandler pattern).
///
/// - Backpressure: a `read()` is held back while the partner channel is not writable, and released
///   when it becomes writable again.
/// - Half-close: EOF from one side becomes `close(mode: .output)` on the other; the pair closes
///   fully once both directions are done.
/// - Shutdown: closing either channel closes the other.
/// - Counting: bytes read by this side are added to `bytesRead`, for metrics and the access log.
public final class GlueHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    public private(set) var bytesRead: Int = 0

    private init() {}

    /// Two handlers glued to each other; add one to each channel's pipeline.
    public static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    // MARK: Partner interface

    private func partnerWrite(_ data: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(data), promise: nil)
    }

    private func partnerFlush() {
        self.context?.flush()
    }

    private func partnerCloseOutput() {
        guard let context = self.context, !self.outputClosed else { return }
        self.outputClosed = true
        context.close(mode: .output, promise: nil)
        self.closeIfDone()
    }

    private func partnerClose() {
        self.context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if self.pendingRead {
            self.pendingRead = false
            self.context?.read()
        }
    }

    private var partnerWritable: Bool {
        self.context?.channel.isWritable ?? false
    }

    private func closeIfDone() {
        if self.inputClosed && self.outputClosed {
            self.context?.close(promise: nil)
        }
    }

    // MARK: Channel events

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.bytesRead += buffer.readableBytes
        self.partner?.partnerWrite(buffer)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.partnerFlush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.partner?.partnerClose()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.inputClosed = true
            self.partner?.partnerCloseOutput()
            self.closeIfDone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerWritable {
            context.read()
        } else {
            self.pendingRead = true
        }
    }
}
