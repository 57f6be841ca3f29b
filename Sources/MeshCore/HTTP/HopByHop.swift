import NIOHTTP1

/// Rewrites headers between the two hops in one pass over the list: hop-by-hop headers
/// (RFC 9110 §7.6.1, and any header the `Connection` header names) are dropped; the proxy's own
/// headers are added. Framing headers (`content-length`, `transfer-encoding`) are never copied:
/// the pass records what they said, and the proxy frames each message itself (``Framing``), so no
/// spelling a peer sends can make the two hops disagree on where a message ends.
enum HopByHop {
    /// What a message head says about its framing, learned while copying it.
    struct FramingHeaders: Equatable {
        /// The `content-length` value (the parsers already refuse two that differ); nil: none.
        var contentLength: String?
        var contentLengthCount = 0
        /// Every `transfer-encoding` field, joined with ", "; nil: none.
        var transferEncoding: String?

        mutating func record(contentLength value: String) {
            self.contentLengthCount += 1
            // A field value excludes its surrounding whitespace (RFC 9110 §5.5).
            self.contentLength = String(Substring(value).trimmingASCIISpaces())
        }

        mutating func record(transferEncoding value: String) {
            self.transferEncoding = self.transferEncoding.map { "\($0), \(value)" } ?? value
        }
    }

    /// Headers a `Connection` header may not remove: the message's framing and routing, and what the
    /// proxy writes itself. Naming one is ignored (as Envoy does), never obeyed: removing the
    /// `content-length` a body was read with is how a body becomes a smuggled request.
    private static let protectedFromConnection: Set<String> = [
        "content-length", "transfer-encoding", "host", "te", "x-forwarded-for", "x-forwarded-proto", "x-request-id",
        "x-forwarded-client-cert", "x-envoy-peer-metadata", "x-envoy-peer-metadata-id",
    ]

    /// What the one pass over a request's headers learns for routing and the access log.
    struct RequestSummary {
        var host: String?
        var userAgent: String?
        /// How many `host` fields the request had (exactly one is valid).
        var hostCount = 0
        var framing = FramingHeaders()
        /// The number of header fields and their size (names and values), for HTTP/2's limits.
        var headerCount = 0
        var headerBytes = 0
        /// `x-request-id` as sent upstream (the client's, or one made here).
        var requestID = ""
        /// `x-forwarded-for` as sent upstream (the client's chain plus the client).
        var forwardedFor = ""
        var expectsContinue = false
        /// The `upgrade` header of a request whose `connection` names it (WebSocket, h2c).
        var upgrade: String?
        /// Istio's HTTP metadata exchange headers, when consumed (a sidecar's inbound side).
        var peerMetadata: String?
        var peerMetadataID: String?
    }

    /// The request as it goes upstream: hop-by-hop and `expect` removed, `x-forwarded-for` extended
    /// with the client, `x-forwarded-proto` set, `x-request-id` added when absent, and a client's
    /// `x-forwarded-client-cert` removed (Envoy's default SANITIZE: only a proxy that verified a
    /// certificate may speak for it; a sidecar's inbound side sets its own). One pass over the
    /// headers, which also fills `summary`. From a `trustedPeer` (a mesh proxy proven by mTLS) an
    /// `x-forwarded-proto` is kept: it names the original client's scheme, not this hop's (as Istio's
    /// inbound sidecar keeps it).
    ///
    /// With `consumePeerMetadata` (a sidecar's inbound side, the receiver of Istio's exchange) the
    /// `x-envoy-peer-metadata(-id)` headers are taken into `summary` and not forwarded.
    static func upstreamRequestHeaders(
        _ headers: HTTPHeaders, clientIP: String, scheme: String, trustedPeer: Bool = false, consumePeerMetadata: Bool = false,
        summary: inout RequestSummary
    ) -> HTTPHeaders {
        var named: [String] = []
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 3)
        var forwardedFor: String?
        var requestID: String?
        var forwardedProto = false
        for (name, value) in headers {
            summary.headerCount += 1
            summary.headerBytes += name.utf8.count + value.utf8.count
            switch name.utf8.count {
            case 4 where name.asciiCaseInsensitiveEquals("host"):
                summary.hostCount += 1
                if summary.host == nil { summary.host = value }
            case 14 where name.asciiCaseInsensitiveEquals("content-length"):
                summary.framing.record(contentLength: value)
                continue
            case 17 where name.asciiCaseInsensitiveEquals("transfer-encoding"):
                summary.framing.record(transferEncoding: value)
                continue
            case 7 where name.asciiCaseInsensitiveEquals("upgrade"):
                summary.upgrade = value
                continue
            case 6 where name.asciiCaseInsensitiveEquals("expect"):
                summary.expectsContinue = value.asciiCaseInsensitiveEquals("100-continue")
                continue
            case 10 where name.asciiCaseInsensitiveEquals("user-agent"):
                summary.userAgent = value
            case 12 where name.asciiCaseInsensitiveEquals("x-request-id"):
                requestID = value
            case 15 where name.asciiCaseInsensitiveEquals("x-forwarded-for"):
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                continue
            case 23 where name.asciiCaseInsensitiveEquals("x-forwarded-client-cert"):
                continue
            case 21 where consumePeerMetadata && name.asciiCaseInsensitiveEquals(PeerMetadataExchange.metadataKey):
                summary.peerMetadata = value
                continue
            case 24 where consumePeerMetadata && name.asciiCaseInsensitiveEquals(PeerMetadataExchange.metadataIDKey):
                summary.peerMetadataID = value
                continue
            case 17 where name.asciiCaseInsensitiveEquals("x-forwarded-proto"):
                guard trustedPeer, !forwardedProto else { continue }
                forwardedProto = true
            default:
                if Self.isHopByHop(name, value: value, named: &named) { continue }
            }
            out.add(name: name, value: value)
        }
        Self.remove(named, from: &out)
        if summary.upgrade != nil, !named.contains("upgrade") { summary.upgrade = nil }
        summary.forwardedFor = forwardedFor.map { "\($0), \(clientIP)" } ?? clientIP
        out.add(name: "x-forwarded-for", value: summary.forwardedFor)
        if !forwardedProto { out.add(name: "x-forwarded-proto", value: scheme) }
        if let requestID {
            summary.requestID = requestID
        } else {
            summary.requestID = RequestID.make()
            out.add(name: "x-request-id", value: summary.requestID)
        }
        return out
    }

    /// The response as it goes downstream: hop-by-hop and framing headers removed; what the framing
    /// headers said reported in `framing`.
    static func downstreamResponseHeaders(_ headers: HTTPHeaders, framing: inout FramingHeaders) -> HTTPHeaders {
        var named: [String] = []
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 2)
        for (name, value) in headers {
            switch name.utf8.count {
            case 14 where name.asciiCaseInsensitiveEquals("content-length"):
                framing.record(contentLength: value)
                continue
            case 17 where name.asciiCaseInsensitiveEquals("transfer-encoding"):
                framing.record(transferEncoding: value)
                continue
            default:
                if Self.isHopByHop(name, value: value, named: &named) { continue }
            }
            out.add(name: name, value: value)
        }
        Self.remove(named, from: &out)
        return out
    }

    /// Whether `name` is hop-by-hop. A `Connection` header's tokens (other than `close` and
    /// `keep-alive`) are added to `named`: those headers are hop-by-hop too, removed after the pass.
    private static func isHopByHop(_ name: String, value: String, named: inout [String]) -> Bool {
        switch name.utf8.count {
        // `te: trailers` goes on (gRPC needs it; RFC 9113 §8.2.2 allows exactly that value in HTTP/2).
        case 2: return name.asciiCaseInsensitiveEquals("te") && !value.asciiCaseInsensitiveEquals("trailers")
        case 7: return name.asciiCaseInsensitiveEquals("trailer") || name.asciiCaseInsensitiveEquals("upgrade")
        case 10:
            if name.asciiCaseInsensitiveEquals("connection") {
                for token in value.split(separator: ",") {
                    let token = token.trimmingASCIISpaces().lowercased()
                    if token != "close" && token != "keep-alive" && !token.isEmpty && !Self.protectedFromConnection.contains(token) {
                        named.append(token)
                    }
                }
                return true
            }
            return name.asciiCaseInsensitiveEquals("keep-alive")
        case 16: return name.asciiCaseInsensitiveEquals("proxy-connection")
        case 18: return name.asciiCaseInsensitiveEquals("proxy-authenticate")
        default: return false
        }
    }

    /// Removes the headers a `Connection` header named (rare: almost no client names any).
    private static func remove(_ named: [String], from headers: inout HTTPHeaders) {
        for name in named { headers.remove(name: name) }
    }
}

extension String {
    /// ASCII case-insensitive equality with a lower-case literal, without allocating.
    func asciiCaseInsensitiveEquals(_ lowercase: String) -> Bool {
        let lhs = self.utf8
        let rhs = lowercase.utf8
        guard lhs.count == rhs.count else { return false }
        for (a, b) in zip(lhs, rhs) {
            let folded = (a >= UInt8(ascii: "A") && a <= UInt8(ascii: "Z")) ? a | 0x20 : a
            if folded != b { return false }
        }
        return true
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
