import Foundation
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The JWKS of every `jwksUri` in use, fetched in the background (control plane: a task per URI),
/// refreshed every `refresh`, shared across reloads. A failed fetch keeps the last good keys and
/// shows in `/status`; until a first fetch succeeds, tokens of that issuer get 401
/// `Jwks remote fetch is failed`.
public final class JWKSRegistry: Sendable {
    public static let shared = JWKSRegistry()
    /// The most a JWKS document may be (a larger answer is refused, not read on).
    static let maxDocumentBytes = 1 << 20

    private struct Entry {
        let source: JWKSSource
        var status: JWKSStatus
        var refresh: Duration
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    /// The key source for `uri`, fetching it from now on when it is new.
    func source(uri: String, timeout: Duration, refresh: Duration, log: MeshLog?) -> JWKSSource {
        let (source, isNew) = self.entries.withLockedValue { entries -> (JWKSSource, Bool) in
            if var entry = entries[uri] {
                entry.refresh = refresh
                entries[uri] = entry
                return (entry.source, false)
            }
            let source = JWKSSource()
            entries[uri] = Entry(source: source, status: JWKSStatus(uri: uri), refresh: refresh)
            return (source, true)
        }
        if isNew {
            Task.detached { await self.fetchLoop(uri: uri, timeout: timeout, log: log) }
        }
        return source
    }

    /// Every URI's fetch state, for `/status`.
    public func status() -> [JWKSStatus] {
        self.entries.withLockedValue { $0.values.map(\.status) }.sorted { $0.uri < $1.uri }
    }

    private func fetchLoop(uri: String, timeout: Duration, log: MeshLog?) async {
        while true {
            var wait: Duration
            do {
                let text = try await Self.fetch(uri, timeout: timeout)
                let jwks = try JWKSSource.parse(text)
                let refresh = self.entries.withLockedValue { entries -> Duration in
                    guard var entry = entries[uri] else { return .seconds(60) }
                    entry.source.update(jwks)
                    entry.status.keys = jwks.keys.count
                    entry.status.lastFetch = Int(Date().timeIntervalSince1970)
                    entry.status.lastError = nil
                    entries[uri] = entry
                    return entry.refresh
                }
                wait = refresh
            } catch {
                log?.warning("jwks \(uri): fetch failed (\(error)); keeping the last keys")
                let hasKeys = self.entries.withLockedValue { entries -> Bool in
                    entries[uri]?.status.lastError = "\(error)"
                    entries[uri]?.status.failures += 1
                    return entries[uri]?.source.current != nil
                }
                // Without any keys yet, try again soon; with keys, at the usual pace.
                wait = hasKeys ? self.entries.withLockedValue { $0[uri]?.refresh ?? .seconds(60) } : .seconds(2)
            }
            try? await Task.sleep(for: wait)
        }
    }

    /// GET `uri` (`file://`, `http://`, `https://`), bounded in time and size.
    static func fetch(_ uri: String, timeout: Duration) async throws -> String {
        if uri.hasPrefix("file://") {
            let path = String(uri.dropFirst("file://".count))
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            let data = try handle.read(upToCount: Self.maxDocumentBytes + 1) ?? Data()
            guard data.count <= Self.maxDocumentBytes else { throw JWKSError("the document is over \(Self.maxDocumentBytes) bytes") }
            return String(decoding: data, as: UTF8.self)
        }
        guard let url = URL(string: uri), let host = url.host, let scheme = url.scheme else { throw JWKSError("not a URI: \(uri)") }
        let tls = scheme == "https"
        let port = url.port ?? (tls ? 443 : 80)
        var target = url.path.isEmpty ? "/" : url.path
        if let query = url.query { target += "?\(query)" }
        let group = MultiThreadedEventLoopGroup.singleton
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: String.self)
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { promise.fail(JWKSError("no answer within \(timeout)")) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        let sslContext = tls ? try NIOSSLContext(configuration: .makeClientConfiguration()) : nil
        let connected = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: host))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(JWKSResponseHandler(promise: promise, limit: Self.maxDocumentBytes))
                }
            }
            .connect(host: host, port: port)
        connected.whenFailure { promise.fail($0) }
        connected.whenSuccess { channel in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: url.port.map { "\(host):\($0)" } ?? host)
            headers.add(name: "accept", value: "application/json")
            headers.add(name: "connection", value: "close")
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        return try await promise.futureResult.get()
    }
}

/// One JWKS URI's fetch state.
public struct JWKSStatus: Encodable, Sendable {
    public let uri: String
    public var keys = 0
    /// Unix seconds of the last good fetch; nil: none yet.
    public var lastFetch: Int?
    public var lastError: String?
    public var failures = 0

    init(uri: String) { self.uri = uri }
}

/// Collects one response body (200 only), refusing one over `limit` bytes.
private final class JWKSResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<String>
    let limit: Int
    var status: HTTPResponseStatus = .ok
    var body: [UInt8] = []

    init(promise: EventLoopPromise<String>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.status = head.status
        case .body(let buffer):
            self.body += buffer.readableBytesView
            if self.body.count > self.limit {
                self.promise.fail(JWKSError("the document is over \(self.limit) bytes"))
                context.close(promise: nil)
            }
        case .end:
            if self.status == .ok {
                self.promise.succeed(String(decoding: self.body, as: UTF8.self))
            } else {
                self.promise.fail(JWKSError("answered \(self.status.code)"))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(JWKSError("the connection closed before the document was complete"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }
}
