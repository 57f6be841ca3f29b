import NIOCore

/// Cuts a byte stream into lines. Pure: no channel, no I/O.
///
/// A line is returned without its `\n` (a `\r` before it is kept, so it is echoed as sent). A line longer
/// than `maxLineLength` is returned in pieces of that length, so a client that never sends `\n` cannot
/// make the buffer grow without bound.
struct LineSplitter {
    let maxLineLength: Int
    private var pending: ByteBuffer?

    init(maxLineLength: Int = 64 * 1024) {
        precondition(maxLineLength > 0)
        self.maxLineLength = maxLineLength
    }

    /// Adds received bytes; returns every line now complete, in order.
    mutating func append(_ bytes: ByteBuffer) -> [ByteBuffer] {
        var buffer: ByteBuffer
        if var pending = self.pending.take() {
            var bytes = bytes
            pending.writeBuffer(&bytes)
            buffer = pending
        } else {
            buffer = bytes
        }
        var lines: [ByteBuffer] = []
        while true {
            let newline = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
            if let newline, newline <= self.maxLineLength {
                lines.append(buffer.readSlice(length: newline)!)
                buffer.moveReaderIndex(forwardBy: 1)
            } else if buffer.readableBytes > self.maxLineLength {
                lines.append(buffer.readSlice(length: self.maxLineLength)!)
            } else {
                break
            }
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            self.pending = buffer
        }
        return lines
    }

    /// The end of the stream: the last line if it had no `\n`.
    mutating func finish() -> ByteBuffer? {
        self.pending.take()
    }
}

extension Optional {
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}

/// Istio's tcp-echo-server: answers every line with `PREFIX LINE\n`.
///
/// Backpressure: a `read` is held back while the channel is not writable, so a client that sends but
/// never reads stalls itself instead of filling our memory. Half-close: on the client's EOF the last
/// unterminated line is answered too, every answer is flushed, and then the connection closes.
final class LineEchoHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let prefix: String
    private var splitter = LineSplitter()
    private var readPending = false

    init(prefix: String) {
        self.prefix = prefix
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let lines = self.splitter.append(Self.unwrapInboundIn(data))
        for line in lines {
            context.write(Self.wrapOutboundOut(self.answer(line, allocator: context.channel.allocator)), promise: nil)
        }
        if !lines.isEmpty {
            context.flush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        var last = context.channel.allocator.buffer(capacity: 0)
        if let line = self.splitter.finish() {
            last = self.answer(line, allocator: context.channel.allocator)
        }
        // Writes complete in order, so this one completes once every earlier answer is out.
        context.writeAndFlush(Self.wrapOutboundOut(last)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.readPending {
            self.readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func answer(_ line: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: self.prefix.utf8.count + line.readableBytes + 2)
        out.writeString(self.prefix)
        out.writeInteger(UInt8(ascii: " "))
        out.writeImmutableBuffer(line)
        out.writeInteger(UInt8(ascii: "\n"))
        return out
    }
}
