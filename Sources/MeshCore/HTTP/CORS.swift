import MeshConfig
import NIOHTTP1

/// A route's `corsPolicy`, compiled once: origin matchers and the header values it writes. Its
/// decision per request is pure (Envoy's CORS filter): a preflight from an allowed origin is
/// answered here; any other request from an allowed origin gets the `access-control-*` response
/// headers; a request from another origin gets none.
public final class CompiledCORS: Sendable {
    enum Action: Equatable {
        /// Not a CORS request, or its origin is not allowed: nothing to add.
        case none
        /// Answer the preflight here: 200 with these headers (none for an ignored unmatched one).
        case answerPreflight(HTTPHeaders)
        /// Pass the request on; its response gets ``responseHeaders(origin:to:)``.
        case addToResponse(origin: String)
    }

    private let origins: [StringMatcher]
    private let allowMethods: String?
    private let allowHeaders: String?
    private let exposeHeaders: String?
    private let maxAge: String?
    private let allowCredentials: Bool
    private let unmatchedPreflights: CORSPolicy.UnmatchedPreflights

    public init(_ policy: CORSPolicy) throws {
        self.origins = try policy.allowOrigins.map { try StringMatcher($0) }
        func joined(_ values: [String]) -> String? { values.isEmpty ? nil : values.joined(separator: ",") }
        self.allowMethods = joined(policy.allowMethods)
        self.allowHeaders = joined(policy.allowHeaders)
        self.exposeHeaders = joined(policy.exposeHeaders)
        self.maxAge = policy.maxAge.map { String($0.components.seconds) }
        self.allowCredentials = policy.allowCredentials
        self.unmatchedPreflights = policy.unmatchedPreflights
    }

    /// `origin` and `requestMethod`: the request's `origin` and `access-control-request-method`.
    func decide(method: HTTPMethod, origin: String?, requestMethod: String?) -> Action {
        guard let origin, !origin.isEmpty else { return .none }
        let preflight = method == .OPTIONS && !(requestMethod ?? "").isEmpty
        // An allowed origin of exactly `*` allows every origin (Envoy); the reply names the origin.
        guard self.origins.contains(where: { $0.matches("*") || $0.matches(origin) }) else {
            return preflight && self.unmatchedPreflights == .ignore ? .answerPreflight(HTTPHeaders()) : .none
        }
        if preflight {
            var headers = HTTPHeaders()
            headers.add(name: "access-control-allow-origin", value: origin)
            if self.allowCredentials { headers.add(name: "access-control-allow-credentials", value: "true") }
            if let methods = self.allowMethods { headers.add(name: "access-control-allow-methods", value: methods) }
            if let names = self.allowHeaders { headers.add(name: "access-control-allow-headers", value: names) }
            if let maxAge = self.maxAge { headers.add(name: "access-control-max-age", value: maxAge) }
            return .answerPreflight(headers)
        }
        return .addToResponse(origin: origin)
    }

    /// The headers an allowed origin's (non-preflight) response gets; they replace any the upstream
    /// wrote, as Envoy's CORS filter sets them.
    func responseHeaders(origin: String, to headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: "access-control-allow-origin", value: origin)
        if self.allowCredentials { headers.replaceOrAdd(name: "access-control-allow-credentials", value: "true") }
        if let names = self.exposeHeaders { headers.replaceOrAdd(name: "access-control-expose-headers", value: names) }
    }
}

extension LocalReply {
    /// A CORS preflight answered by the gateway (Envoy's details `cors_response`).
    static let corsPreflight = LocalReply(status: .ok, flags: "-", details: "cors_response", body: "")
}
