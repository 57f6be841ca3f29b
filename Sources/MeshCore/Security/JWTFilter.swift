import Foundation
import JWTKit
import MeshConfig
import NIOCore
import NIOHTTP1

/// RequestAuthentication on HTTP requests (Envoy's jwt_authn, as Istio configures it): a request
/// without a token passes with no request principal; one with a token must carry a valid one from
/// a configured issuer, or gets 401 and never reaches the upstream. A token seen before is decided
/// from the provider's cache on the event loop; a new one is verified by jwt-kit off the loop while
/// the request waits.
struct JWTFilter: HTTPFilter {
    /// Tokens longer than this are refused unparsed (a request head is bounded anyway).
    static let maxTokenBytes = 64 * 1024

    func requestHeaders(_ request: FilterRequest, _ exchange: HTTPExchange, _ environment: HTTPProxyEnvironment) -> FilterVerdict {
        guard let authenticator = request.snapshot.authentication, environment.enforcesAuthorization(request.snapshot),
              let located = authenticator.locate(request.head.headers, query: request.routing.query)
        else { return .continue }
        let now = Double(WallClock.nowMicros()) / 1_000_000
        // A token seen before: decided without decoding it again.
        for provider in authenticator.providers {
            if let known = provider.cached(located.token, now: now) { return Self.verdict(known, provider, located, exchange) }
        }
        guard located.token.utf8.count <= Self.maxTokenBytes,
              let parsed = try? DefaultJWTParser().parse(Array(located.token.utf8), as: ClaimsPayload.self)
        else { return .reply(.jwtRejected(.malformed)) }
        guard case .string(let issuer)? = parsed.payload.claims["iss"], let provider = authenticator.provider(issuer: issuer) else {
            return .reply(.jwtRejected(.issuerNotConfigured))
        }
        let header = parsed.header
        let claims = parsed.payload.claims
        return .suspend { eventLoop, resume in
            let promise = eventLoop.makePromise(of: Result<RequestAuth, JWTFailure>.self)
            promise.completeWithTask { await provider.verify(located.token, header: header, claims: claims, now: now) }
            promise.futureResult.assumeIsolated().whenComplete { outcome in
                switch outcome {
                case .success(let result): resume(Self.verdict(result, provider, located, exchange))
                case .failure: resume(.reply(.jwtRejected(.signature)))
                }
            }
        }
    }

    static func verdict(
        _ result: Result<RequestAuth, JWTFailure>, _ provider: JWTProvider, _ located: RequestAuthenticator.Located, _ exchange: HTTPExchange
    ) -> FilterVerdict {
        switch result {
        case .success(let auth):
            exchange.jwt = VerifiedJWT(auth: auth, rule: provider.rule, located: located)
            return .continue
        case .failure(let failure):
            return .reply(.jwtRejected(failure))
        }
    }

    /// The output headers: a client's own values for them are removed; a verified token's are set.
    func upstreamRequest(
        _ upstream: inout UpstreamRequest, _ route: CompiledHTTPRoute, _ request: FilterRequest, _ exchange: HTTPExchange,
        _ environment: HTTPProxyEnvironment
    ) {
        guard let authenticator = request.snapshot.authentication, environment.enforcesAuthorization(request.snapshot) else { return }
        for name in authenticator.outputHeaders { upstream.headers.remove(name: name) }
        exchange.jwt?.apply(to: &upstream.headers)
    }
}
