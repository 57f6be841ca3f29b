import NIOHTTP1

/// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded.
/// `transfer-encoding` stays: the codecs re-frame the body with it.
enum HopByHop {
    static let names = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate"]

    static func strip(_ headers: inout HTTPHeaders) {
        // Headers named by `Connection` are hop-by-hop too.
        for value in headers[canonicalForm: "connection"] {
            let name = value.lowercased()
            if name != "close" && name != "keep-alive" {
                headers.remove(name: String(name))
            }
        }
        for name in Self.names where headers.contains(name: name) {
            headers.remove(name: name)
        }
    }
}
