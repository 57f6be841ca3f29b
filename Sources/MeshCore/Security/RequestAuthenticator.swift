import Foundation
import JWTKit
import MeshConfig
import NIOHTTP1

/// This instance's RequestAuthentication rules at run time: where tokens are looked for, and the
/// provider (issuer) each verified token belongs to.
public final class RequestAuthenticator: Sendable {
    let providers: [JWTProvider]
    private let byIssuer: [String: JWTProvider]
    /// Header names the rules write (`outputPayloadToHeader`, `outputClaimToHeaders`): never taken
    /// from the client.
    let outputHeaders: [String]

    init(_ providers: [JWTProvider]) {
        self.providers = providers
        self.byIssuer = Dictionary(providers.map { ($0.rule.issuer, $0) }, uniquingKeysWith: { first, _ in first })
        self.outputHeaders = Array(Set(providers.flatMap { provider in
            (provider.rule.outputPayloadToHeader.map { [$0] } ?? []) + provider.rule.outputClaimToHeaders.map(\.header)
        })).sorted()
    }

    /// Compiles the rules of `config` that apply to this instance; a JWKS that does not parse is an
    /// error at its rule's line.
    static func compile(_ config: MeshConfiguration, log: MeshLog?) -> (RequestAuthenticator?, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        var providers: [JWTProvider] = []
        for resource in config.localRequestAuthentications {
            for (index, rule) in resource.jwtRules.enumerated() {
                let path = "\(resource.meta.pathPrefix).spec.jwtRules[\(index)]"
                if let text = rule.jwks {
                    do {
                        providers.append(JWTProvider(rule: rule, keySource: JWKSSource(JWKSKeys(jwks: try JWKSSource.parse(text), generation: 1))))
                    } catch {
                        diagnostics.append(Diagnostic(.error, at: rule.location, path: "\(path).jwks", "the JWKS does not parse: \(error)"))
                    }
                } else if let uri = rule.jwksURI {
                    let source = JWKSRegistry.shared.source(uri: uri, timeout: rule.timeout, refresh: config.settings.jwksRefreshInterval, log: log)
                    providers.append(JWTProvider(rule: rule, keySource: source))
                }
            }
        }
        return (providers.isEmpty ? nil : RequestAuthenticator(providers), diagnostics)
    }

    /// A token the request carries, and where (the header to remove when it is not forwarded).
    struct Located {
        let token: String
        let header: String?
    }

    /// The first token in any rule's locations (headers, then query parameters, then cookies).
    func locate(_ headers: HTTPHeaders, query: Substring?) -> Located? {
        for provider in self.providers {
            for location in provider.rule.effectiveHeaders {
                guard let value = headers.first(name: location.name), value.hasPrefix(location.prefix) else { continue }
                let token = value.dropFirst(location.prefix.count).trimmingCharactersInSpaces()
                if !token.isEmpty { return Located(token: token, header: location.name) }
            }
        }
        if let query {
            for provider in self.providers {
                for name in provider.rule.effectiveParams {
                    if let token = Self.parameter(name, in: query) { return Located(token: token, header: nil) }
                }
            }
        }
        if let cookies = headers.first(name: "cookie") {
            for provider in self.providers {
                for name in provider.rule.fromCookies {
                    if let token = Self.cookie(name, in: cookies) { return Located(token: token, header: nil) }
                }
            }
        }
        return nil
    }

    /// The provider for a token's (not yet verified) issuer.
    func provider(issuer: String) -> JWTProvider? { self.byIssuer[issuer] }

    static func parameter(_ name: String, in query: Substring) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name, !parts[1].isEmpty { return String(parts[1]) }
        }
        return nil
    }

    static func cookie(_ name: String, in header: String) -> String? {
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharactersInSpaces() == name { return parts[1].trimmingCharactersInSpaces() }
        }
        return nil
    }
}

/// A request's verified token: who it proves, and what the upstream is told.
final class VerifiedJWT {
    let auth: RequestAuth
    let rule: JWTRule
    let token: String
    /// The header the token came in (removed upstream unless `forwardOriginalToken`).
    let header: String?

    init(auth: RequestAuth, rule: JWTRule, located: RequestAuthenticator.Located) {
        self.auth = auth
        self.rule = rule
        self.token = located.token
        self.header = located.header
    }

    /// `outputPayloadToHeader` (the payload, base64url as in the token), `outputClaimToHeaders`
    /// (a claim's value: a string as is, a number or boolean as written), and the token removed
    /// unless `forwardOriginalToken`.
    func apply(to headers: inout HTTPHeaders) {
        if !self.rule.forwardOriginalToken, let header = self.header { headers.remove(name: header) }
        if let name = self.rule.outputPayloadToHeader {
            let parts = self.token.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 3 { headers.replaceOrAdd(name: name, value: String(parts[1])) }
        }
        for output in self.rule.outputClaimToHeaders {
            let path = output.claim.split(separator: ".").map(String.init)
            if let value = CompiledCondition.claim(path, in: self.auth.claims)?.matchable.first {
                headers.replaceOrAdd(name: output.header, value: value)
            }
        }
    }
}
