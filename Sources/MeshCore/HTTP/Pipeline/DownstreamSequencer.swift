import NIOHTTP1

/// The downstream connection's request sequencing (HTTP/1.1): which request part is handled now and
/// which waits behind the exchange in progress (pipelining), whether the connection serves another
/// request after an exchange, when a malformed request's refusal goes out (after the complete
/// requests ahead of it), and draining. Pure: the connection manager tells it what happened and
/// does what it answers; its transitions are unit tested without a socket.
struct DownstreamSequencer {
    /// Pipelined request parts held before reads stop.
    static let maxQueuedParts = 128

    /// Where the exchange in progress is, as far as sequencing cares.
    enum Exchange: Equatable {
        case none
        /// Its request is still being read: its parts are handled as they come.
        case readingRequest
        /// Its request is complete: whatever follows is the next request, and waits.
        case requestComplete
    }

    /// After an exchange's response.
    enum Next: Equatable {
        /// Serve the next request (queued parts first).
        case serve
        case close
    }

    private(set) var queued: [HTTPServerRequestPart] = []
    /// The parser refused what followed the requests still being served: answered after them.
    private(set) var pendingRefusal: LocalReply?
    private(set) var draining = false

    /// A part read from the client: true when it is handled now, false when it was queued.
    mutating func admit(_ part: HTTPServerRequestPart, during exchange: Exchange) -> Bool {
        if exchange == .requestComplete || (exchange != .none && !self.queued.isEmpty) {
            self.queued.append(part)
            return false
        }
        return true
    }

    /// The parser refused the bytes that followed: true when the refusal goes out now; false when
    /// complete requests are ahead of it, which are served first (the malformed request's own
    /// queued parts are dropped, never dispatched).
    mutating func refuse(_ reply: LocalReply, during exchange: Exchange) -> Bool {
        guard exchange == .requestComplete || (exchange != .none && !self.queued.isEmpty) else { return true }
        let lastEnd = self.queued.lastIndex { if case .end = $0 { true } else { false } }
        self.queued.removeSubrange((lastEnd.map { $0 + 1 } ?? 0)...)
        self.pendingRefusal = reply
        return false
    }

    /// An exchange finished with this framing: whether the connection goes on.
    func afterExchange(keepAlive: Bool, closeAfterResponse: Bool, requestComplete: Bool) -> Next {
        keepAlive && !closeAfterResponse && !self.draining && requestComplete ? .serve : .close
    }

    /// The next queued part to handle, unless an exchange's request is complete (it waits for that
    /// exchange's end).
    mutating func nextQueued(during exchange: Exchange) -> HTTPServerRequestPart? {
        guard exchange != .requestComplete, !self.queued.isEmpty else { return nil }
        return self.queued.removeFirst()
    }

    /// The refusal held behind the pipeline, once nothing is ahead of it.
    mutating func takeRefusal(during exchange: Exchange) -> LocalReply? {
        guard let refusal = self.pendingRefusal, exchange == .none, self.queued.isEmpty else { return nil }
        self.pendingRefusal = nil
        return refusal
    }

    /// The process is draining: true when the connection closes now (no exchange in progress);
    /// otherwise it closes after the current response.
    mutating func drain(during exchange: Exchange) -> Bool {
        self.draining = true
        return exchange == .none
    }

    /// Reads wait while the queue is full or a refusal is pending.
    var holdsReads: Bool { self.queued.count >= Self.maxQueuedParts || self.pendingRefusal != nil }

    mutating func closed() {
        self.queued.removeAll()
    }
}
