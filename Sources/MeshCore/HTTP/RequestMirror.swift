import NIOCore
import NIOHTTP1

/// One mirrored copy of a request (Istio's `mirror`, Envoy's request mirroring): sent
/// fire-and-forget to the mirror cluster on the downstream's event loop, with `-shadow` appended to
/// its host. Nobody waits for it: its response is read and dropped, and its connection goes back to
/// the pool when the response ends (or closes if it cannot serve another request).
final class RequestMirror: UpstreamHTTPOwner {
    private let parts: [HTTPClientRequestPart]
    private var connection: UpstreamHTTPHandler?
    private var reusable = true
    private let pool: LoopPool
    private let idleTimeout: TimeAmount

    /// Sends `head` and `body` (the request's parts after its head, ending with `.end`) to an
    /// endpoint of `cluster`.
    static func send(
        head: HTTPRequestHead, body: [HTTPClientRequestPart], to cluster: Cluster, pools: HTTPConnectionPools, eventLoop: EventLoop
    ) {
        guard let index = cluster.chooseEndpoint() else { return }
        var head = head
        if let host = head.headers.first(name: "host") {
            head.headers.replaceOrAdd(name: "host", value: Self.shadowHost(host))
        }
        let mirror = RequestMirror(parts: [.head(head)] + body, pool: pools.pool(for: eventLoop), idleTimeout: cluster.upstreamIdleTimeout)
        mirror.start(cluster: cluster, index: index)
    }

    /// `httpbin:8000` → `httpbin-shadow:8000`: the suffix goes on the host name, before any port.
    static func shadowHost(_ authority: String) -> String {
        let value = Substring(authority)
        guard let colon = RouteRequest.portColon(value) else { return authority + "-shadow" }
        return "\(value[..<colon])-shadow\(value[colon...])"
    }

    private init(parts: [HTTPClientRequestPart], pool: LoopPool, idleTimeout: TimeAmount) {
        self.parts = parts
        self.pool = pool
        self.idleTimeout = idleTimeout
    }

    private func start(cluster: Cluster, index: Int) {
        let key = cluster.poolKeys[index]
        let endpoint = cluster.endpoints[index]
        let connecting: EventLoopFuture<UpstreamHTTPHandler>
        if cluster.http2 {
            connecting = self.pool.openStream(key: key, endpoint: endpoint, cluster: cluster, fresh: false)
        } else if let idle = self.pool.takeIdle(key: key) {
            self.attach(idle)
            return
        } else {
            connecting = self.pool.connect(key: key, endpoint: endpoint, options: cluster.connectOptions)
        }
        connecting.assumeIsolated().whenSuccess { connection in self.attach(connection) }
    }

    private func attach(_ connection: UpstreamHTTPHandler) {
        self.connection = connection
        connection.owner = self
        connection.requestsSent += 1
        for part in self.parts {
            connection.send(part, flush: false)
        }
        connection.flush()
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head): self.reusable = head.isKeepAlive
        case .body: break
        case .end:
            guard let connection = self.connection else { return }
            self.connection = nil
            if self.reusable || connection.isStream {
                self.pool.release(connection, idleTimeout: self.idleTimeout)
            } else {
                connection.close()
            }
        }
    }

    func upstreamReadComplete() {}
    func upstreamClosed() { self.connection = nil }
    func upstreamBecameWritable() {}
    func upstreamProtocolError(_ reason: String) { self.connection = nil }
    var downstreamWritable: Bool { true }
}
