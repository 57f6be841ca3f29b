import NIOCore

/// The first handler of a TLS listener's connections: reads the ClientHello without consuming it,
/// asks `decide` to install what comes next (termination or passthrough), then leaves the
/// pipeline, handing everything it read to the handlers it installed.
///
/// - Garbage, plain text, a malformed or oversized ClientHello: counted, logged, connection closed.
/// - A client that sends no complete ClientHello within ``timeout``: closed.
/// - While `decide` works (an upstream connect, say), reads are held and bytes kept.
final class TLSInspector: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer

    /// Envoy's TLS inspector gives up after 15s without a ClientHello.
    static let timeout: TimeAmount = .seconds(15)

    enum Rejection: String, Sendable {
        case notTLS = "not_tls"
        case malformed = "malformed_client_hello"
        case timeout = "client_hello_timeout"
    }

    typealias Decide = (ChannelHandlerContext, ClientHelloParser.ClientHello) -> EventLoopFuture<Void>
    typealias Reject = (Rejection, String) -> Void

    private let decide: Decide
    private let reject: Reject
    private var buffered: ByteBuffer?
    private var decided = false
    private var pendingRead = false
    /// A half-close before hand-over waits for the installed handlers (a TCP pump, say).
    private var heldInputClosed = false
    private var timer: Scheduled<Void>?

    init(decide: @escaping Decide, reject: @escaping Reject) {
        self.decide = decide
        self.reject = reject
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) {
            guard !self.decided else { return }
            self.reject(.timeout, "no ClientHello within \(Self.timeout)")
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = incoming
        } else {
            self.buffered!.writeBuffer(&incoming)
        }
        guard !self.decided, let buffered = self.buffered else { return }
        switch ClientHelloParser.parse(buffered.readableBytesView) {
        case .needMoreData:
            return
        case .notTLS:
            self.fail(context, .notTLS, "not a TLS handshake (first bytes \(buffered.readableBytesView.prefix(4).map { String($0, radix: 16) }))")
        case .malformed(let reason):
            self.fail(context, .malformed, reason)
        case .clientHello(let hello):
            self.decided = true
            self.timer?.cancel()
            self.decide(context, hello).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                case .failure:
                    context.close(promise: nil)
                }
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.heldInputClosed = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.decided, let buffered = self.buffered, buffered.readableBytes > 0 {
            self.decided = true
            self.reject(.malformed, "connection closed after \(buffered.readableBytes) bytes of an incomplete ClientHello")
        }
        context.fireChannelInactive()
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let buffered = self.buffered, buffered.readableBytes > 0 {
            self.buffered = nil
            context.fireChannelRead(self.wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        if self.heldInputClosed {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        let readWasHeld = self.pendingRead
        let channel = context.channel
        context.leavePipeline(removalToken: removalToken)
        // The read this handler held back now goes through the installed handlers' own gating.
        if readWasHeld { channel.read() }
    }

    func read(context: ChannelHandlerContext) {
        if self.decided {
            // The next handlers are being installed: bytes wait in the socket.
            self.pendingRead = true
        } else {
            context.read()
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ rejection: Rejection, _ detail: String) {
        self.decided = true
        self.buffered = nil
        self.reject(rejection, detail)
        context.close(promise: nil)
    }

    /// A fatal TLS alert record (RFC 8446 §6): what a client sees instead of a reset.
    static func alert(_ description: UInt8, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 7)
        buffer.writeBytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description])
        return buffer
    }

    /// `unrecognized_name` (112): no server or route for the SNI received.
    static let unrecognizedName: UInt8 = 112
}
