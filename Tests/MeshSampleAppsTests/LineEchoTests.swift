import NIOCore
import NIOEmbedded
import Testing

@testable import MeshSampleApps

@Suite struct LineEchoerTests {
    private func echo(_ pieces: [String], prefix: String = "one") -> [String] {
        var echoer = LineEchoer(prefix: prefix)
        var outputs: [String] = []
        for piece in pieces {
            var output = ByteBuffer()
            echoer.echo(ByteBuffer(string: piece), into: &output)
            outputs.append(String(buffer: output))
        }
        var last = ByteBuffer()
        echoer.finish(into: &last)
        return outputs + [String(buffer: last)]
    }

    @Test func prefixesEveryLineAsItStreams() {
        #expect(self.echo(["hello\nwor", "ld\r\n\nlast"]) == ["one hello\none wor", "ld\r\none \none last", "\n"])
    }

    @Test func endsWithoutAnExtraNewlineAfterACompleteLine() {
        #expect(self.echo(["a\n", "b\n"], prefix: "two") == ["two a\n", "two b\n", ""])
        #expect(self.echo([""]) == ["", ""])
    }

    @Test func aLongLineIsNeverBuffered() {
        let long = String(repeating: "x", count: 100_000)
        #expect(self.echo([long, long + "\n"]) == ["one " + long, long + "\n", ""])
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
        try channel.writeInbound(ByteBuffer(string: "hello\n"))
        #expect(try self.written(channel) == "one hello\n")
        try channel.writeInbound(ByteBuffer(string: "wor"))
        try channel.writeInbound(ByteBuffer(string: "ld\nagain\n"))
        #expect(try self.written(channel) == "one world\none again\n")
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test(arguments: [("a\nno newline", "one a\none no newline\n"), ("a\n", "one a\n")])
    func halfCloseFlushesEveryAnswerThenCloses(sent: String, answered: String) throws {
        let channel = try self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: sent))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        channel.embeddedEventLoop.run()
        #expect(try self.written(channel) == answered)
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
