import NIOCore
import NIOTLS

/// Holds a new connection while what comes next is decided and installed, then leaves the
/// pipeline, handing over every byte it read. While the decision's future is pending (an upstream
/// connect, say), reads are held too, so nothing is read that nobody can take.
///
/// It decides on the first bytes (plain text or TLS? an HTTP/2 preface?) or on the end of a TLS
/// handshake (which ALPN, which peer), whichever `decide` looks at; `decide` returns nil to wait
/// for more.
final class HandOverHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer

    enum Event {
        /// Everything read so far.
        case bytes(ByteBufferView)
        /// A TLS handshake below finished with this ALPN.
        case handshake(String?)
    }

    typealias Decide = (ChannelHandlerContext, Event) -> EventLoopFuture<Void>?

    /// How a connection ended without a decision.
    enum Abandoned {
        /// Nothing decidable within the timeout.
        case timedOut(TimeAmount)
        /// The peer closed after sending this many bytes (0: before sending any).
        case closed(bytes: Int)
    }

    private let decide: Decide
    private let onError: ((Error) -> Void)?
    private let timeout: TimeAmount?
    private let onAbandoned: ((Abandoned) -> Void)?
    private var buffered: ByteBuffer?
    private var decided = false
    private var pendingRead = false
    /// The peer half-closed before the next handlers were in place: told to them after the bytes.
    private var heldInputClosed = false
    private var timer: Scheduled<Void>?

    /// `onError`: an error before the decision (a failed TLS handshake) is reported here and the
    /// connection closed. `timeout`: without a decision by then, `onAbandoned` is told and the
    /// connection closed; `onAbandoned` also hears of a peer that closes before a decision.
    init(
        timeout: TimeAmount? = nil, onAbandoned: ((Abandoned) -> Void)? = nil, onError: ((Error) -> Void)? = nil,
        decide: @escaping Decide
    ) {
        self.decide = decide
        self.onError = onError
        self.timeout = timeout
        self.onAbandoned = onAbandoned
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let timeout = self.timeout else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard !self.decided else { return }
            self.decided = true
            self.onAbandoned?(.timedOut(timeout))
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.decided {
            self.decided = true
            self.timer?.cancel()
            self.onAbandoned?(.closed(bytes: self.buffered?.readableBytes ?? 0))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !self.decided else {
            context.fireErrorCaught(error)
            return
        }
        self.decided = true
        self.onError?(error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if self.buffered == nil { self.buffered = incoming } else { self.buffered!.writeBuffer(&incoming) }
        guard !self.decided, let buffered = self.buffered else { return }
        self.consider(context, .bytes(buffered.readableBytesView))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !self.decided, case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            self.consider(context, .handshake(negotiated))
        }
        if case ChannelEvent.inputClosed = event {
            self.heldInputClosed = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func consider(_ context: ChannelHandlerContext, _ event: Event) {
        guard let installed = self.decide(context, event) else { return }
        self.decided = true
        self.timer?.cancel()
        installed.assumeIsolated().whenComplete { result in
            switch result {
            case .success: context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .failure: context.close(promise: nil)
            }
        }
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
        if readWasHeld { channel.read() }
    }

    func read(context: ChannelHandlerContext) {
        if self.decided {
            self.pendingRead = true
        } else {
            context.read()
        }
    }
}
