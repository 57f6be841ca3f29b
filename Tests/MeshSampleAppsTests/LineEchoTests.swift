import NIOCore
import NIOEmbedded
import Testing

@testable import MeshSampleApps

@Suite struct LineSplitterTests {
    @Test func cutsLinesAndKeepsThePartialOne() {
        var splitter = LineSplitter()
        #expect(splitter.append(ByteBuffer(string: "hello\nwor")).map { String(buffer: $0) } == ["hello"])
        #expect(splitter.append(ByteBuffer(string: "ld\r\n\nlast")).map { String(buffer: $0) } == ["world\r", ""])
        #expect(splitter.finish().map { String(buffer: $0) } == "last")
        #expect(splitter.finish() == nil)
    }

    @Test func cutsAnOverlongLineIntoPieces() {
        var splitter = LineSplitter(maxLineLength: 4)
        #expect(splitter.append(ByteBuffer(string: "abcdefghij\n")).map { String(buffer: $0) } == ["abcd", "efgh", "ij"])
        #expect(splitter.append(ByteBuffer(string: "abcd\n")).map { String(buffer: $0) } == ["abcd"])
        #expect(splitter.finish() == nil)
    }
}

/// Counts the `read()` calls that pass a handler placed after it.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}

@Suite struct LineEchoHandlerTests {
    private func makeChannel(counter: ReadCounter? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        if let counter {
            try channel.pipeline.syncOperations.addHandler(counter)
        }
        try channel.pipeline.syncOperations.addHandler(LineEchoHandler(prefix: "one"))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    @Test func answersEveryLineWithThePrefix() throws {
        let channel = try self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "hello\nwor"))
        #expect(try self.written(channel) == "one hello\n")
        try channel.writeInbound(ByteBuffer(string: "ld\nagain\n"))
        #expect(try self.written(channel) == "one world\none again\n")
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func halfCloseFlushesTheLastLineThenCloses() throws {
        let channel = try self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "a\nno newline"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        channel.embeddedEventLoop.run()
        #expect(try self.written(channel) == "one a\none no newline\n")
        #expect(!channel.isActive)
    }

    @Test func halfCloseWithNothingPendingJustCloses() throws {
        let channel = try self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "a\n"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        channel.embeddedEventLoop.run()
        #expect(try self.written(channel) == "one a\n")
        #expect(!channel.isActive)
    }

    @Test func holdsReadsWhileNotWritable() throws {
        let counter = ReadCounter()
        let channel = try self.makeChannel(counter: counter)
        let before = counter.reads
        channel.isWritable = false
        channel.read()
        #expect(counter.reads == before)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == before + 1)
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == before + 1)
        _ = try channel.finish()
    }
}
