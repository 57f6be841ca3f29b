/// The caller on one inbound connection of a sidecar, for Istio's destination-side telemetry
/// (`reporter="destination"`): the principal its certificate proved, and its workload once Istio's
/// metadata exchange has told it (in `x-envoy-peer-metadata` on each HTTP request, or in the first
/// frame of a TCP connection). Confined to the connection's event loop.
final class InboundPeer: @unchecked Sendable {
    /// The peer's SPIFFE URI; nil on a plain-text connection.
    let principal: String?
    /// The labels as known now; without metadata, only the principal is known.
    private(set) var source: SourceIdentity
    /// Whether the peer's metadata has arrived.
    private(set) var knowsWorkload = false
    /// The last `x-envoy-peer-metadata` decoded: requests of one connection repeat it, so it is decoded once.
    private var lastHeader: String?
    /// Called once when the metadata arrives (the TCP reporter waits for it to count the connection).
    var onLearned: (() -> Void)?

    init(principal: String?) {
        self.principal = principal
        self.source = SourceIdentity(peer: nil, principal: principal)
    }

    /// The source of a request carrying these metadata headers (nil: not sent).
    func source(metadataHeader: String?, id: String?) -> SourceIdentity {
        guard let metadataHeader, metadataHeader != self.lastHeader else { return self.source }
        self.lastHeader = metadataHeader
        if let peer = try? PeerMetadataExchange.decodeHeaders(metadata: metadataHeader, id: id) {
            self.learned(peer)
        }
        return self.source
    }

    /// The peer's metadata arrived (the TCP exchange frame, or a request's headers).
    func learned(_ peer: PeerMetadata) {
        self.source = SourceIdentity(peer: peer, principal: self.principal)
        self.knowsWorkload = true
        let onLearned = self.onLearned
        self.onLearned = nil
        onLearned?()
    }
}
