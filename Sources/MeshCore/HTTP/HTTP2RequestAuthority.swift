import NIOCore
import NIOHPACK
import NIOHTTP2

/// On a downstream HTTP/2 stream, above the HTTP/2-to-HTTP/1 codec: reconciles a request's
/// `:authority` with a `host` header as RFC 9113 §8.3.1 reads them, which the codec does not.
///
/// - `host` without `:authority` (allowed: a client translating HTTP/1.1 may send it): the host
///   becomes the `:authority`, where the codec would reset the stream.
/// - `host` naming another entity than `:authority`: malformed. The codec would keep the `host`
///   and drop the `:authority`, so routing and the upstream would read one authority while the
///   client meant the other. The `:authority` is added as a second `host`, which
///   ``RequestHeadCheck`` refuses with 400 (`authority_mismatch`).
final class HTTP2RequestAuthority: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    private var sawHead = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.sawHead, case .headers(var frame) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        self.sawHead = true
        if let headers = Self.reconciled(frame.headers) {
            frame.headers = headers
            context.fireChannelRead(self.wrapInboundOut(.headers(frame)))
        } else {
            context.fireChannelRead(data)
        }
    }

    /// The request head's headers to pass on instead, or nil to pass it as it came.
    static func reconciled(_ headers: HPACKHeaders) -> HPACKHeaders? {
        // The usual request has no `host`: a lookup, nothing allocated.
        guard headers.contains(name: "host") else { return nil }
        let hosts = headers[canonicalForm: "host"]
        guard let authority = headers.first(name: ":authority") else {
            guard hosts.count == 1 else { return nil }  // two hosts: RequestHeadCheck refuses them
            // Pseudo-headers stay in front of the regular ones.
            var result = HPACKHeaders()
            var inserted = false
            for (name, value, indexing) in headers {
                if !inserted && !name.hasPrefix(":") {
                    result.add(name: ":authority", value: String(hosts[0]))
                    inserted = true
                }
                result.add(name: name, value: value, indexing: indexing)
            }
            if !inserted { result.add(name: ":authority", value: String(hosts[0])) }
            return result
        }
        guard hosts.contains(where: { !$0.utf8.elementsEqual(authority.utf8, by: Self.equalIgnoringASCIICase) }) else { return nil }
        var result = headers
        result.add(name: "host", value: authority)
        return result
    }

    private static func equalIgnoringASCIICase(_ a: UInt8, _ b: UInt8) -> Bool {
        a == b || ((a | 0x20) == (b | 0x20) && (a | 0x20) >= UInt8(ascii: "a") && (a | 0x20) <= UInt8(ascii: "z"))
    }
}
