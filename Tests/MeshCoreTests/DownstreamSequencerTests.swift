import NIOCore
import NIOHTTP1
import Testing

@testable import MeshCore

/// The downstream connection's sequencing decisions, as pure transitions.
@Suite struct DownstreamSequencerTests {
    private let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a"))
    private let end = HTTPServerRequestPart.end(nil)
    private let body = HTTPServerRequestPart.body(ByteBuffer(string: "x"))

    @Test func partsOfTheRequestBeingReadGoOnAndAPipelinedRequestWaits() {
        var sequencer = DownstreamSequencer()
        let handled = [
            sequencer.admit(self.head, during: .none), sequencer.admit(self.body, during: .readingRequest),
            sequencer.admit(self.end, during: .readingRequest),
            // The first request is complete: the next one waits, whole.
            sequencer.admit(self.head, during: .requestComplete), sequencer.admit(self.end, during: .requestComplete),
        ]
        #expect(handled == [true, true, true, false, false])
        #expect(sequencer.queued.count == 2)
        // While its response is going out, nothing is taken from the queue.
        let held = sequencer.nextQueued(during: .requestComplete)
        #expect(held == nil)
        // Then the queued request is served in order, up to its end.
        #expect(sequencer.afterExchange(keepAlive: true, closeAfterResponse: false, requestComplete: true) == .serve)
        guard case .head? = sequencer.nextQueued(during: .none) else { Issue.record("the queued head first"); return }
        guard case .end? = sequencer.nextQueued(during: .readingRequest) else { Issue.record("then its end"); return }
        let waiting = sequencer.nextQueued(during: .requestComplete)
        #expect(waiting == nil)
    }

    @Test func aQueuedRequestKeepsItsPlaceWhileAnExchangeIsReadingAnother() {
        var sequencer = DownstreamSequencer()
        let first = sequencer.admit(self.head, during: .requestComplete)
        // Once anything is queued, later parts queue behind it even while an exchange reads its request.
        let second = sequencer.admit(self.body, during: .readingRequest)
        #expect(!first && !second)
        #expect(sequencer.queued.count == 2)
    }

    @Test func aMalformedRequestBehindCompleteOnesIsRefusedAfterThem() {
        var sequencer = DownstreamSequencer()
        let now = sequencer.refuse(.badRequest("x"), during: .none)
        #expect(now, "nothing ahead: refused now")
        let current = sequencer.refuse(.badRequest("x"), during: .readingRequest)
        #expect(current, "the malformed request is the current one")
        _ = sequencer.admit(self.head, during: .requestComplete)
        _ = sequencer.admit(self.end, during: .requestComplete)
        _ = sequencer.admit(self.head, during: .requestComplete)  // the malformed request's head
        let later = sequencer.refuse(.badRequest("x"), during: .requestComplete)
        #expect(!later)
        // Its own parts are dropped; the complete request before it stays.
        #expect(sequencer.queued.count == 2)
        #expect(sequencer.holdsReads)
        let early = sequencer.takeRefusal(during: .none)
        #expect(early == nil, "the queued request goes first")
        _ = sequencer.nextQueued(during: .none)
        _ = sequencer.nextQueued(during: .readingRequest)
        let busy = sequencer.takeRefusal(during: .requestComplete)
        #expect(busy == nil, "its response is not done")
        let refusal = sequencer.takeRefusal(during: .none)
        #expect(refusal?.status == .badRequest)
        #expect(!sequencer.holdsReads)
    }

    @Test func drainingClosesAnIdleConnectionNowAndABusyOneAfterItsResponse() {
        var idle = DownstreamSequencer()
        let closesNow = idle.drain(during: .none)
        #expect(closesNow)
        var busy = DownstreamSequencer()
        let closesLater = busy.drain(during: .readingRequest)
        #expect(!closesLater)
        #expect(busy.afterExchange(keepAlive: true, closeAfterResponse: false, requestComplete: true) == .close)
        let fresh = DownstreamSequencer()
        #expect(fresh.afterExchange(keepAlive: false, closeAfterResponse: false, requestComplete: true) == .close)
        #expect(fresh.afterExchange(keepAlive: true, closeAfterResponse: true, requestComplete: true) == .close)
        #expect(fresh.afterExchange(keepAlive: true, closeAfterResponse: false, requestComplete: false) == .close)
    }

    @Test func aFullQueueHoldsReads() {
        var sequencer = DownstreamSequencer()
        for _ in 0..<DownstreamSequencer.maxQueuedParts { _ = sequencer.admit(self.body, during: .requestComplete) }
        #expect(sequencer.holdsReads)
        sequencer.closed()
        #expect(sequencer.queued.isEmpty && !sequencer.holdsReads)
    }
}
