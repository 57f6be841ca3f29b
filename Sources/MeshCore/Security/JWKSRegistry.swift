import Foundation
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

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
        var target = url.path.isEmpty ? "/" : url.path
        if let query = url.query { target += "?\(query)" }
        var headers = HTTPHeaders()
        headers.add(name: "host", value: url.port.map { "\(host):\($0)" } ?? host)
        headers.add(name: "accept", value: "application/json")
        let response = try await OneShotHTTPClient.send(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers), host: host, port: url.port ?? (tls ? 443 : 80),
            tls: tls, timeout: TimeAmount(timeout), limit: Self.maxDocumentBytes, on: MultiThreadedEventLoopGroup.singleton.next()
        ).get()
        guard response.status == .ok else { throw JWKSError("answered \(response.status.code)") }
        return String(decoding: response.body, as: UTF8.self)
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
