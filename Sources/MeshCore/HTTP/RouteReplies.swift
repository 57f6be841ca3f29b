import MeshConfig
import NIOHTTP1

/// The answers a route gives itself, with no upstream: `redirect` and `directResponse` (Envoy's
/// direct-response route entries, as Istio programs them; details `direct_response`). Pure.
extension LocalReply {
    /// `directResponse`: its status and body, compiled once per snapshot.
    static func directResponse(_ response: HTTPDirectResponse) -> LocalReply {
        LocalReply(
            status: HTTPResponseStatus(statusCode: response.status), flags: "-", details: "direct_response", bytes: response.body
        )
    }

    /// `redirect`: `redirectCode` with a `location` made from the request and the rule.
    static func redirect(_ redirect: HTTPRedirect, request: RedirectRequest) -> LocalReply {
        LocalReply(
            status: HTTPResponseStatus(statusCode: redirect.redirectCode), flags: "-", details: "direct_response", body: "",
            location: Self.location(redirect, request: request)
        )
    }

    /// What of the request a redirect keeps: its scheme, `Host`, origin-form target and listener port.
    struct RedirectRequest {
        var scheme: String
        var host: String
        var target: String
        var listenerPort: Int
    }

    /// Envoy's `RedirectAction`: the scheme, host and path are the request's unless the rule names
    /// them; `uri` replaces the path and keeps the request's query unless it carries its own.
    /// `port` (or `derivePort: FROM_REQUEST_PORT`, the listener's port, as Istio compiles it)
    /// replaces the port. The request's own port is dropped when the scheme changes and it was the
    /// old scheme's default; a port that is the new scheme's default is never written.
    static func location(_ redirect: HTTPRedirect, request: RedirectRequest) -> String {
        let scheme = redirect.scheme ?? request.scheme
        var (host, port) = Self.splitPort(redirect.authority ?? request.host)
        if let explicit = redirect.port {
            port = explicit
        } else if redirect.derivePort == .fromRequestPort {
            port = request.listenerPort
        } else if redirect.authority == nil, scheme != request.scheme, port == Self.defaultPort(request.scheme) {
            port = nil
        }
        if port == Self.defaultPort(scheme) { port = nil }
        var target = request.target
        if let uri = redirect.uri {
            if uri.contains("?") {
                target = uri
            } else if let query = request.target.firstIndex(of: "?") {
                target = uri + request.target[query...]
            } else {
                target = uri
            }
        }
        return "\(scheme)://\(host)\(port.map { ":\($0)" } ?? "")\(target)"
    }

    /// `host[:port]` (an IP-literal in brackets keeps its colons).
    private static func splitPort(_ authority: String) -> (host: String, port: Int?) {
        guard let colon = RouteRequest.portColon(authority[...]), let port = Int(authority[authority.index(after: colon)...]) else {
            return (authority, nil)
        }
        return (String(authority[..<colon]), port)
    }

    private static func defaultPort(_ scheme: String) -> Int? {
        switch scheme {
        case "http": 80
        case "https": 443
        default: nil
        }
    }
}
