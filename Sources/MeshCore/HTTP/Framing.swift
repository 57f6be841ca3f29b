import NIOHTTP1

/// How the proxy frames a message body on the next hop: decided from what the previous hop's
/// framing headers said (``HopByHop/FramingHeaders``), written as exactly one canonical header.
/// Never copied: NIO's encoders frame chunks only for the exact value `chunked`, so a forwarded
/// `Chunked` would announce chunks and send raw bytes (request smuggling, response splitting).
enum Framing: Equatable {
    /// No body (and no framing header).
    case none
    case contentLength(String)
    case chunked
    /// An HTTP/2 request without `content-length`: chunked if a DATA frame follows the head, none
    /// if the stream ends with it. Decided at the request's first part.
    case decidedByFirstPart
    /// A response body delimited by the end of the connection (an HTTP/1.0 client).
    case closeDelimited

    /// Whether a transfer-coding list is exactly `chunked` (case-insensitive, as RFC 9112 §7 reads
    /// coding names). Anything else (`identity`, `gzip, chunked`, `chunked, chunked`) is refused:
    /// the proxy implements no other coding, and a list the two hops read differently is a desync.
    static func isExactlyChunked(_ transferEncoding: String) -> Bool {
        transferEncoding.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).count == 1
            && Substring(transferEncoding).trimmingASCIISpaces().lowercased() == "chunked"
    }

    /// A request's framing upstream (its framing headers were checked by ``RequestHeadCheck``).
    static func request(_ headers: HopByHop.FramingHeaders, isHTTP2: Bool) -> Framing {
        if headers.transferEncoding != nil { return .chunked }
        if let length = headers.contentLength { return .contentLength(length) }
        return isHTTP2 ? .decidedByFirstPart : .none
    }

    /// Why an upstream response's framing is refused: 502 `UPE`, and the connection is not reused.
    struct ResponseError: Error, Equatable {
        var reason: String
    }

    /// A response's framing towards the client. `clientVersion` nil: an HTTP/2 stream (which frames
    /// bodies itself; `content-length` may still be sent). A response the two hops could read
    /// differently is refused: both framing headers, a transfer coding other than `chunked`, a
    /// `content-length` that is not one decimal number.
    static func response(
        _ headers: HopByHop.FramingHeaders, status: HTTPResponseStatus, isHeadRequest: Bool, clientVersion: HTTPVersion?,
        upstreamVersion: HTTPVersion = .http1_1
    ) -> Result<Framing, ResponseError> {
        if headers.transferEncoding != nil && upstreamVersion == .http1_0 {
            // RFC 9112 §6.1: a 1.0 recipient cannot read chunks; faulty framing, not a body.
            return .failure(ResponseError(reason: "transfer-encoding in an HTTP/1.0 response"))
        }
        if headers.transferEncoding != nil && headers.contentLength != nil {
            return .failure(ResponseError(reason: "content-length and transfer-encoding"))
        }
        if headers.contentLengthCount > 1 {
            return .failure(ResponseError(reason: "more than one content-length"))
        }
        if let coding = headers.transferEncoding, !Self.isExactlyChunked(coding) {
            return .failure(ResponseError(reason: "transfer-encoding \(coding)"))
        }
        if let length = headers.contentLength, !Self.isDecimal(length) {
            return .failure(ResponseError(reason: "content-length \(length)"))
        }
        let hasBody = status.mayHaveResponseBody && !isHeadRequest
        guard let version = clientVersion else {
            return .success(headers.contentLength.map(Framing.contentLength) ?? .none)
        }
        if let length = headers.contentLength { return .success(.contentLength(length)) }
        if !hasBody {
            // A HEAD response may say how the GET's body would be framed (RFC 9112 §6.1); no body
            // follows. A 1xx, 204 or 304 has no body and, framed chunked, would get a last chunk.
            let announcesChunks = isHeadRequest && status.mayHaveResponseBody && headers.transferEncoding != nil
            return .success(announcesChunks && version == .http1_1 ? .chunked : .none)
        }
        return .success(version == .http1_1 ? .chunked : .closeDelimited)
    }

    /// The one framing header, added to a head whose framing headers were removed.
    func apply(to headers: inout HTTPHeaders) {
        switch self {
        case .contentLength(let length): headers.add(name: "content-length", value: length)
        case .chunked: headers.add(name: "transfer-encoding", value: "chunked")
        case .none, .decidedByFirstPart, .closeDelimited: break
        }
    }

    /// One decimal number that fits a signed 64-bit length (what every next hop can read alike).
    static func isDecimal(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } && Int64(value) != nil
    }
}
