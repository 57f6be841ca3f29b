import NIOCore

/// Istio's TCP metadata exchange on an mTLS connection that negotiated ALPN `istio-peer-exchange`:
/// writes this side's frame first, then reads the peer's frame from the front of the stream and
/// drains it, so the application never sees it. Afterwards it only passes bytes through.
///
/// A wrong magic, a malformed frame, or a connection that ends mid-frame is refused: the
/// connection is closed and `reject` is told why (the caller logs and counts).
final class PeerExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Rejection: String {
        case wrongMagic = "wrong_magic"
        case malformed
        case truncated
    }

    private let frame: [UInt8]
    private let onPeer: (PeerMetadata) -> Void
    private let reject: (Rejection, String) -> Void
    private var pending: ByteBuffer?
    private var done = false
    private var sent = false

    init(local: PeerMetadata, onPeer: @escaping (PeerMetadata) -> Void, reject: @escaping (Rejection, String) -> Void) {
        self.frame = PeerMetadataExchange.encodeFrame(local)
        self.onPeer = onPeer
        self.reject = reject
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.sendFrame(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendFrame(context: context)
        context.fireChannelActive()
    }

    private func sendFrame(context: ChannelHandlerContext) {
        guard !self.sent else { return }
        self.sent = true
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: self.frame)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.done else {
            context.fireChannelRead(data)
            return
        }
        var incoming = self.unwrapInboundIn(data)
        if self.pending == nil { self.pending = incoming } else { self.pending!.writeBuffer(&incoming) }
        guard var buffered = self.pending else { return }
        switch PeerMetadataExchange.decodeFrame(buffered.readableBytesView) {
        case .needMoreData:
            return
        case .frame(let peer, let consumed):
            self.done = true
            self.pending = nil
            buffered.moveReaderIndex(forwardBy: consumed)
            self.onPeer(peer)
            if buffered.readableBytes > 0 {
                context.fireChannelRead(self.wrapInboundOut(buffered))
            }
        case .wrongMagic:
            self.refuse(context, .wrongMagic, "Incorrect istio-peer-exchange ALPN magic. Peer missing TCP MetadataExchange filter.")
        case .malformed(let reason):
            self.refuse(context, .malformed, "Alpn protocol matched. Magic matched. Metadata Not found: \(reason)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done, let pending = self.pending, pending.readableBytes > 0 {
            self.done = true
            self.reject(.truncated, "the connection ended inside the metadata exchange frame (\(pending.readableBytes) bytes)")
        }
        context.fireChannelInactive()
    }

    private func refuse(_ context: ChannelHandlerContext, _ rejection: Rejection, _ detail: String) {
        self.done = true
        self.pending = nil
        self.reject(rejection, detail)
        context.close(promise: nil)
    }
}
