import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a byte stream into its echo: `PREFIX ` before every line. Pure: no channel, no I/O.
///
/// Streams: the bytes of a line are passed on as they arrive, so nothing is buffered however long
/// a line is. A line's bytes are kept as sent (with any `\r`); a last line without `\n` gets one at the end.
struct LineEchoer {
    /// `PREFIX ` (with the space).
    private let prefix: [UInt8]
    private var atLineStart = true

    init(prefix: String) {
        self.prefix = Array(prefix.utf8) + [UInt8(ascii: " ")]
    }

    /// Appends the echo of `input` to `output`.
    mutating func echo(_ input: ByteBuffer, into output: inout ByteBuffer) {
        input.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var start = 0
            while start < bytes.count {
                if self.atLineStart {
                    output.writeBytes(self.prefix)
                    self.atLineStart = false
                }
                var end = bytes.count
                if let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) {
                    end = base.distance(to: UnsafeRawPointer(newline)) + 1
                    self.atLineStart = true
                }
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                start = end
            }
        }
    }

    /// The end of the stream: ends an unterminated last line.
    mutating func finish(into output: inout ByteBuffer) {
        if !self.atLineStart {
            output.writeInteger(UInt8(ascii: "\n"))
            self.atLineStart = true
        }
    }
}

/// Istio's tcp-echo-server: answers every line with `PREFIX LINE\n`.
///
/// Backpressure: a `read` is held back while the channel is not writable, so a client that sends but
/// never reads stalls itself instead of filling our memory. Half-close: on the client's EOF an
/// unterminated last line is ended, every answer is flushed, and then the connection closes.
final class LineEchoHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var echoer: LineEchoer
    private var readPending = false

    init(prefix: String) {
        self.echoer = LineEchoer(prefix: prefix)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let input = Self.unwrapInboundIn(data)
        var output = context.channel.allocator.buffer(capacity: input.readableBytes + 64)
        self.echoer.echo(input, into: &output)
        context.writeAndFlush(Self.wrapOutboundOut(output), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        var last = context.channel.allocator.buffer(capacity: 1)
        self.echoer.finish(into: &last)
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
}
