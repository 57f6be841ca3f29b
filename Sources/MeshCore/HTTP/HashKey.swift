import MeshConfig
import NIOHTTP1

/// A request's consistent-hash key (`loadBalancer.consistentHash`), hashed, and the cookie to set
/// when an `httpCookie` key with a `ttl` was missing (Envoy generates one, so the client sticks
/// from its next request on).
struct RequestHashKey {
    var hash: UInt64?
    /// `set-cookie` for the response.
    var setCookie: String?

    init(_ key: ConsistentHashPolicy.Key, headers: HTTPHeaders, routing: RouteRequest, clientIP: String) {
        switch key {
        case .header(let name):
            self.hash = headers.first(name: name).map(StableHash.hash)
        case .queryParameter(let name):
            self.hash = routing.queryValue(name).map { StableHash.hash(String($0)) }
        case .sourceIP:
            self.hash = StableHash.hash(clientIP)
        case .cookie(let name, let path, let ttl):
            if let value = Self.cookie(name, in: headers) {
                self.hash = StableHash.hash(value)
            } else if let ttl {
                let value = String(FastRandom.shared.next(), radix: 16)
                self.hash = StableHash.hash(value)
                self.setCookie = Self.setCookie(name: name, value: value, path: path, ttl: ttl)
            }
        }
    }

    /// The value of cookie `name` in the request's `cookie` headers (quotes removed), if present.
    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["cookie"] {
            for pair in header.split(separator: ";") {
                let pair = pair.drop { $0 == " " }
                guard let equals = pair.firstIndex(of: "="), pair[..<equals] == name[...] else { continue }
                var value = pair[pair.index(after: equals)...]
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                return String(value)
            }
        }
        return nil
    }

    /// As Envoy writes it: `name="value"; Max-Age=SECONDS; Path=PATH; HttpOnly` (no Max-Age for
    /// a ttl of 0: a session cookie).
    static func setCookie(name: String, value: String, path: String?, ttl: Duration) -> String {
        var cookie = "\(name)=\"\(value)\""
        let seconds = ttl.components.seconds
        if seconds > 0 { cookie += "; Max-Age=\(seconds)" }
        if let path, !path.isEmpty { cookie += "; Path=\(path)" }
        return cookie + "; HttpOnly"
    }
}
