import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import MeshCore

/// A gRPC Trailers-Only answer leaves as one HEADERS frame with END_STREAM, as it came.
struct TrailersOnlyCoalescerTests {
    private func frames(_ writes: [HTTP2Frame.FramePayload], flushBetween: Bool = false) throws -> [HTTP2Frame.FramePayload] {
        let channel = EmbeddedChannel(handler: TrailersOnlyCoalescer())
        for payload in writes {
            channel.write(payload, promise: nil)
            if flushBetween { channel.flush() }
        }
        channel.flush()
        var out: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { out.append(frame) }
        return out
    }

    private let status: HPACKHeaders = [":status": "200", "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "nope", "content-length": "0"]
    private var endOfStream: HTTP2Frame.FramePayload { .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)) }

    @Test func aHeadAndAnEmptyEndBecomeOneHeadersFrameWithEndStream() throws {
        let out = try self.frames([.headers(.init(headers: self.status)), self.endOfStream])
        #expect(out.count == 1)
        guard case .headers(let headers) = out.first else { Issue.record("not HEADERS: \(out)"); return }
        #expect(headers.endStream)
        #expect(headers.headers.first(name: "grpc-status") == "5" && !headers.headers.contains(name: "content-length"))
    }

    @Test func otherResponsesPassUnchanged() throws {
        let plain: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        let body = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "x")), endStream: false))
        #expect(try self.frames([.headers(.init(headers: plain)), body, self.endOfStream]).count == 3)
        // A grpc-status head followed by a message, or flushed on its own, is not folded.
        #expect(try self.frames([.headers(.init(headers: self.status)), body, self.endOfStream]).count == 3)
        #expect(try self.frames([.headers(.init(headers: self.status)), self.endOfStream], flushBetween: true).count == 2)
    }
}
