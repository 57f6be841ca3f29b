import NIOHTTP1

/// A response the gateway makes itself, always naming its cause: the Envoy response flag in
/// `x-meshgate-response-flags` and the response-code details in `x-meshgate-details`, so nobody
/// has to guess why a 404 or a 503 happened.
public struct LocalReply: Sendable, Equatable {
    public var status: HTTPResponseStatus
    /// Envoy's short response flag (`NR`, `UH`, `UF`, …), or `-` for none.
    public var flags: String
    /// Envoy's `%RESPONSE_CODE_DETAILS%` (`route_not_found`, …).
    public var details: String
    public var body: [UInt8]
    /// A `location` header (redirects).
    public var location: String? = nil
    /// For a request refused as bad input: the `reason` label of `meshgate_downstream_rejected_total`.
    public var rejected: String? = nil
    /// A gRPC answer (injected aborts): HTTP 200, `content-type: application/grpc` and this
    /// `grpc-status` in the head, with no body (a trailers-only response).
    public var grpcStatus: Int? = nil
    public var grpcMessage: String? = nil
    /// `x-envoy-overloaded: true` (a circuit breaker's refusal).
    public var overloaded = false
    /// `www-authenticate` (a refused token).
    public var authenticate: String? = nil
    /// More headers (an external authorizer's on its refusal).
    var extraHeaders = HTTPHeaders()

    public init(status: HTTPResponseStatus, flags: String, details: String, bytes: [UInt8], location: String? = nil, rejected: String? = nil) {
        self.status = status
        self.flags = flags
        self.details = details
        self.body = bytes
        self.location = location
        self.rejected = rejected
    }

    public init(
        status: HTTPResponseStatus, flags: String, details: String, body: String, location: String? = nil, rejected: String? = nil,
        overloaded: Bool = false
    ) {
        self.init(status: status, flags: flags, details: details, bytes: Array(body.utf8), location: location, rejected: rejected)
        self.overloaded = overloaded
    }

    public static let noRoute = LocalReply(status: .notFound, flags: "NR", details: "route_not_found", body: "")

    public static let noHealthyUpstream = LocalReply(
        status: .serviceUnavailable, flags: "UH", details: "no_healthy_upstream", body: "no healthy upstream"
    )

    public static let clusterNotFound = LocalReply(
        status: .serviceUnavailable, flags: "NC", details: "cluster_not_found", body: "cluster not found"
    )

    /// A route to a cluster no config declares (an undeclared host, port or subset), named in the
    /// details: `cluster_not_found{outbound|9080|v9|reviews.default.svc.cluster.local}`.
    public static func clusterNotFound(_ name: String) -> LocalReply {
        LocalReply(status: .serviceUnavailable, flags: "NC", details: "cluster_not_found{\(name)}", body: "cluster not found: \(name)")
    }

    public static let connectionFailure = LocalReply(
        status: .serviceUnavailable,
        flags: "UF",
        details: "upstream_reset_before_response_started{connection_failure}",
        body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    )

    /// A cluster's `connectionPool` limit was reached (Envoy's circuit breaker): answered at once,
    /// with `x-envoy-overloaded: true`.
    public static let overflow = LocalReply(
        status: .serviceUnavailable,
        flags: "UO",
        details: "upstream_reset_before_response_started{overflow}",
        body: "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        overloaded: true
    )

    /// A TLS origination that failed: the handshake, or the server's identity (SAN mismatch).
    public static func upstreamTLSFailure(_ error: UpstreamTLSError) -> LocalReply {
        LocalReply(
            status: .serviceUnavailable, flags: "UF",
            details: "upstream_reset_before_response_started{connection_failure,\(error.details)}",
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure, \(error.description)"
        )
    }

    /// The route's `timeout` passed before the upstream's response head (Envoy's words and flag).
    public static let upstreamTimeout = LocalReply(
        status: .gatewayTimeout, flags: "UT", details: "upstream_response_timeout", body: "upstream request timeout"
    )

    /// A retry attempt's `perTryTimeout` passed, and no retry was left (Envoy's words and flag).
    public static let upstreamPerTryTimeout = LocalReply(
        status: .gatewayTimeout, flags: "UT", details: "upstream_per_try_timeout", body: "upstream request timeout"
    )

    public static let connectionTermination = LocalReply(
        status: .serviceUnavailable,
        flags: "UC",
        details: "upstream_reset_before_response_started{connection_termination}",
        body: "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    )

    public static let missingHost = LocalReply(
        status: .badRequest, flags: "DPE", details: "missing_host_header", body: "Bad Request: missing host header",
        rejected: "missing_host"
    )

    /// What the HTTP/1.1 parser refused.
    public static func badRequest(_ reason: String) -> LocalReply {
        LocalReply(
            status: .badRequest, flags: "DPE", details: "http1.codec_error{\(reason)}", body: "Bad Request: \(reason)",
            rejected: "codec_error"
        )
    }

    /// A request head the proxy refuses after parsing (``RequestHeadCheck``): 400 unless `status` says otherwise.
    static func refused(_ reason: String, details: String, _ message: String, status: HTTPResponseStatus = .badRequest) -> LocalReply {
        LocalReply(status: status, flags: "DPE", details: details, body: "\(status.reasonPhrase): \(message)", rejected: reason)
    }

    /// No complete request head within `requestHeadersTimeout` (Envoy's `request_headers_timeout`).
    public static let requestHeadersTimeout = LocalReply(
        status: .requestTimeout, flags: "-", details: "request_header_timeout", body: "request timeout",
        rejected: "request_headers_timeout"
    )

    /// The upstream's response could not be read unambiguously (Envoy's `UPE`): never passed on.
    static func upstreamProtocolError(_ reason: String) -> LocalReply {
        LocalReply(
            status: .badGateway, flags: "UPE", details: "upstream_reset_before_response_started{protocol_error}",
            body: "upstream protocol error: \(reason)"
        )
    }

    /// A request on a TLS connection for a host the connection's certificate (SNI server) does not
    /// serve: RFC 9110 §15.5.20 says 421, so the browser opens a new connection (Istio answers 404).
    /// RequestAuthentication refused the request's token (Envoy's jwt_authn): 401 with the reason.
    static func jwtRejected(_ failure: JWTFailure) -> LocalReply {
        var reply = LocalReply(status: .unauthorized, flags: "-", details: failure.details, body: failure.message)
        reply.authenticate = "Bearer realm=\"meshgate\", error=\"invalid_token\""
        return reply
    }

    /// An AuthorizationPolicy refused the request (Envoy's RBAC filter): 403 and its body.
    static func accessDenied(details: String) -> LocalReply {
        LocalReply(status: .forbidden, flags: "RBAC", details: details, body: "RBAC: access denied")
    }

    public static let misdirected = LocalReply(
        status: .misdirectedRequest, flags: "-", details: "misdirected_request",
        body: "Misdirected Request: this connection's TLS server does not serve that host"
    )

    /// `tls.httpsRedirect` on an HTTP server.
    public static func httpsRedirect(to location: String) -> LocalReply {
        LocalReply(status: .movedPermanently, flags: "-", details: "https_redirect", body: "", location: location)
    }

    public static let headersTooLarge = LocalReply(
        status: .requestHeaderFieldsTooLarge,
        flags: "DPE",
        details: "http1.headers_too_large",
        body: "Request Header Fields Too Large: at most 100 headers and 60 KiB",
        rejected: "headers_too_large"
    )

    /// The response head; `close` adds `connection: close`.
    func head(version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(6)
        headers.add(name: "content-length", value: String(self.body.count))
        if let grpcStatus = self.grpcStatus {
            headers.add(name: "content-type", value: "application/grpc")
            headers.add(name: "grpc-status", value: String(grpcStatus))
            if let message = self.grpcMessage { headers.add(name: "grpc-message", value: message) }
        } else if !self.body.isEmpty {
            headers.add(name: "content-type", value: "text/plain")
        }
        headers.add(name: "x-meshgate-response-flags", value: self.flags)
        headers.add(name: "x-meshgate-details", value: self.details)
        headers.add(name: "server", value: "meshgate")
        if let location = self.location {
            headers.add(name: "location", value: location)
        }
        for (name, value) in self.extraHeaders {
            if name.lowercased() == "content-type" { headers.replaceOrAdd(name: name, value: value) } else { headers.add(name: name, value: value) }
        }
        if let authenticate = self.authenticate {
            headers.add(name: "www-authenticate", value: authenticate)
        }
        if self.overloaded {
            headers.add(name: "x-envoy-overloaded", value: "true")
        }
        if close {
            headers.add(name: "connection", value: "close")
        }
        return HTTPResponseHead(version: version, status: self.status, headers: headers)
    }
}

/// A refusal travels as the failure of a check (``RequestHeadCheck``).
extension LocalReply: Error {}
