import NIOCore
import NIOEmbedded
import Testing

@testable import MeshCore

@Suite struct GlueHandlerTests {
    private func gluedPair() throws -> (EmbeddedChannel, EmbeddedChannel) {
        let loop = EmbeddedEventLoop()
        let (left, right) = GlueHandler.matchedPair()
        let a = EmbeddedChannel(handler: left, loop: loop)
        let b = EmbeddedChannel(handler: right, loop: loop)
        return (a, b)
    }

    @Test func bytesReadOnOneSideAreWrittenOnTheOther() throws {
        let (a, b) = try self.gluedPair()
        try a.writeInbound(ByteBuffer(string: "hello"))
        a.pipeline.fireChannelReadComplete()
        let written = try b.readOutbound(as: ByteBuffer.self)
        #expect(written == ByteBuffer(string: "hello"))
        try b.writeInbound(ByteBuffer(string: "back"))
        b.pipeline.fireChannelReadComplete()
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "back"))
    }

    @Test func readsWaitWhileThePartnerIsNotWritable() throws {
        let (a, b) = try self.gluedPair()
        let readCounter = ReadCounter()
        try a.pipeline.syncOperations.addHandler(readCounter, position: .first)
        // Make b unwritable by buffering more than its high watermark without flushing.
        b.isWritable = false
        a.read()
        #expect(readCounter.reads == 0)
        b.isWritable = true
        b.pipeline.fireChannelWritabilityChanged()
        #expect(readCounter.reads == 1)
    }

    @Test func halfCloseIsPropagatedAsOutputCloseAndBothHalvesCloseTheChannel() throws {
        let (a, b) = try self.gluedPair()
        let aCloses = CloseRecorder()
        let bCloses = CloseRecorder()
        try a.pipeline.syncOperations.addHandler(aCloses, position: .first)
        try b.pipeline.syncOperations.addHandler(bCloses, position: .first)
        a.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(bCloses.modes == [.output])
        #expect(aCloses.modes == [])
        b.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        // Now both directions are done: each side closes fully.
        #expect(aCloses.modes == [.output, .all])
        #expect(bCloses.modes == [.output, .all])
    }

    @Test func closingOneSideClosesTheOther() throws {
        let (a, b) = try self.gluedPair()
        try a.close().wait()
        #expect(b.isActive == false)
    }
}

/// Counts the `read()` calls that reach the head of the pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private(set) var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}

/// Records every close that reaches the head of the pipeline, by mode, and completes it.
final class CloseRecorder: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private(set) var modes: [CloseMode] = []

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        self.modes.append(mode)
        promise?.succeed()
    }
}
