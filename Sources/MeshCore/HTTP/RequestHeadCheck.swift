import NIOHTTP1

/// The checks a parsed request head must pass before it is routed: what the HTTP/1.1 parser lets
/// through but a strict upstream could read differently (RFC 9110/9112, and what Envoy refuses).
/// Pure: a head and the summary of its one header pass in, a target or a refusal out.
enum RequestHeadCheck {
    /// Envoy's defaults, the same on HTTP/2 as the HTTP/1.1 decoder enforces.
    static let maxHeaderCount = 100
    static let maxHeaderBytes = 60 * 1024

    /// Where the request goes: the origin-form path sent upstream and, for an absolute-form target,
    /// the authority that replaces `Host` (RFC 9112 §3.2.2).
    struct Target: Equatable {
        var path: String
        var authority: String?
    }

    static func check(_ head: HTTPRequestHead, summary: HopByHop.RequestSummary, isHTTP2: Bool) -> Result<Target, LocalReply> {
        if !isHTTP2 && !(head.version == .http1_1 || head.version == .http1_0) {
            return .failure(.refused("unsupported_version", details: "http1.codec_error{HPE_INVALID_VERSION}", "unsupported HTTP version \(head.version)"))
        }
        if summary.headerCount > Self.maxHeaderCount || summary.headerBytes > Self.maxHeaderBytes {
            return .failure(.headersTooLarge)
        }
        if isHTTP2 {
            // RFC 9113 §8.3.1: :method is a token; :path is origin-form, or `*` for OPTIONS.
            if !Self.isToken(head.method.rawValue) {
                return .failure(.refused("invalid_method", details: "http2.invalid_method", "invalid :method"))
            }
            if head.uri.utf8.first != UInt8(ascii: "/") && head.uri != "*" {
                return .failure(.refused("invalid_target", details: "http2.invalid_path", ":path must be origin-form"))
            }
            if summary.hostCount > 1 {
                // HTTP2RequestAuthority adds the :authority as a second host when they differ.
                return .failure(.refused("authority_mismatch", details: "http2.host_differs_from_authority", "host differs from :authority"))
            }
        }
        if summary.hostCount > 1 {
            return .failure(.refused("multiple_hosts", details: "http1.invalid_host{multiple}", "more than one host header"))
        }
        if let host = summary.host, !Self.isValidAuthority(host) {
            return .failure(.refused("invalid_host", details: "http1.invalid_host", "invalid characters in the host header"))
        }
        if summary.host == nil && head.version != .http1_0 {
            return .failure(.missingHost)
        }
        if head.method == .CONNECT {
            // Istio routes have no CONNECT matcher: Envoy refuses such an upgrade with 403.
            return .failure(.refused("connect", details: "upgrade_failed", "CONNECT is not routed here", status: .forbidden))
        }
        if let coding = summary.framing.transferEncoding {
            if head.version == .http1_0 {
                return .failure(.refused("transfer_encoding", details: "http1.invalid_transfer_encoding", "transfer-encoding on HTTP/1.0"))
            }
            if !Framing.isExactlyChunked(coding) {
                return .failure(
                    .refused(
                        "transfer_encoding", details: "http1.invalid_transfer_encoding", "transfer-encoding other than chunked",
                        status: .notImplemented
                    )
                )
            }
        }
        if let length = summary.framing.contentLength, !Framing.isDecimal(length) {
            // Past 2^63-1 a 63-bit parser on the next hop reads another length (or none).
            return .failure(.refused("content_length", details: "http1.content_length_not_allowed", "invalid content-length"))
        }
        if summary.upgrade != nil, summary.framing.transferEncoding != nil || (summary.framing.contentLength ?? "0") != "0" {
            return .failure(.refused("upgrade_with_body", details: "upgrade_failed", "an upgrade request may not carry a body"))
        }
        return Self.target(head)
    }

    /// Origin-form, `*` for OPTIONS only, or absolute-form (`http(s)://authority/path`); no fragment.
    static func target(_ head: HTTPRequestHead) -> Result<Target, LocalReply> {
        let uri = head.uri
        let invalid = LocalReply.refused("invalid_target", details: "http1.invalid_url", "invalid request target")
        if uri.utf8.contains(UInt8(ascii: "#")) {
            return .failure(.refused("invalid_target", details: "http.invalid_path{fragment}", "a request target may not carry a fragment"))
        }
        if uri.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { return .failure(invalid) }
        if uri.utf8.first == UInt8(ascii: "/") { return .success(Target(path: uri)) }
        if uri == "*" { return head.method == .OPTIONS ? .success(Target(path: uri)) : .failure(invalid) }
        let lower = uri.prefix(8).lowercased()
        let schemeLength = lower.hasPrefix("http://") ? 7 : lower.hasPrefix("https://") ? 8 : 0
        guard schemeLength > 0 else { return .failure(invalid) }
        let rest = uri.dropFirst(schemeLength)
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<end])
        guard !authority.isEmpty, Self.isValidAuthority(authority) else { return .failure(invalid) }
        let path = rest[end...]
        return .success(Target(path: path.first == "/" ? String(path) : "/" + path, authority: authority))
    }

    /// RFC 3986 `host [ ":" port ]`: unreserved and sub-delims characters, an IP-literal in brackets,
    /// and a port of digits only. No `@` (user info), `/`, `%` escapes, spaces or controls.
    static func isValidAuthority(_ value: String) -> Bool {
        guard !value.isEmpty, value.utf8.allSatisfy({ Self.authorityBytes[Int($0)] }) else { return false }
        let bytes = value.utf8
        guard let lastColon = bytes.lastIndex(of: UInt8(ascii: ":")) else { return true }  // the usual case: a host name
        // The port follows the last ':' outside an IP-literal's brackets.
        var hostEnd = bytes.startIndex
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return false }
            hostEnd = bytes.index(after: close)
            if hostEnd == bytes.endIndex { return true }
            guard bytes[hostEnd] == UInt8(ascii: ":"), lastColon == hostEnd else { return false }
        } else if bytes.firstIndex(of: UInt8(ascii: ":")) != lastColon || bytes.contains(UInt8(ascii: "[")) || bytes.contains(UInt8(ascii: "]")) {
            return false
        }
        return bytes[bytes.index(after: lastColon)...].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// RFC 9110 §5.6.2 `token`: one or more tchar.
    static func isToken(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    private static let authorityBytes: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "-._~!$&'()*+,;=:[]".utf8.contains(UInt8(byte))
        }
    }
}
