import Foundation
import JWTKit
import MeshConfig
import NIOConcurrencyHelpers

/// Every claim of a token, as jwt-kit decodes it; the claim checks are ``JWTClaimsCheck``'s (the
/// clock is passed in there), so this payload's own `verify` checks nothing.
struct ClaimsPayload: JWTPayload {
    let claims: [String: JSONValue]

    init(claims: [String: JSONValue]) {
        self.claims = claims
    }

    init(from decoder: any Decoder) throws {
        self.claims = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.claims)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// One issuer's rule at run time: its keys (jwt-kit's key collection, rebuilt when the JWKS
/// changes), and the verdicts on tokens already seen, so a token's signature is checked once.
///
/// The cache is bounded (``cacheLimit`` tokens; when full it starts over) and keyed by the whole
/// token; an entry is good until the token's `exp` and for keys of the same JWKS generation.
final class JWTProvider: Sendable {
    static let cacheLimit = 4096
    static let allowedAlgorithms: Set = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]

    let rule: JWTRule
    private let keySource: JWKSSource
    private let state = NIOLockedValueBox(State())

    private struct State {
        var cache: [String: Cached] = [:]
        var collection: (generation: Int, keys: JWTKeyCollection, kids: Set<String>)?
    }

    private struct Cached {
        let result: Result<RequestAuth, JWTFailure>
        let expiry: Double?
        let generation: Int
    }

    init(rule: JWTRule, keySource: JWKSSource) {
        self.rule = rule
        self.keySource = keySource
    }

    /// The verdict on `token` when it is already known (nil: it must be verified, asynchronously).
    func cached(_ token: String, now: Double) -> Result<RequestAuth, JWTFailure>? {
        let generation = self.keySource.current?.generation
        return self.state.withLockedValue { state in
            guard let entry = state.cache[token], entry.generation == generation else { return nil }
            if let expiry = entry.expiry, expiry < now { return .failure(.expired) }
            return entry.result
        }
    }

    /// Verifies the signature with jwt-kit, then the claims; remembers the verdict.
    func verify(_ token: String, header: JWTHeader, claims: [String: JSONValue], now: Double) async -> Result<RequestAuth, JWTFailure> {
        guard let keys = self.keySource.current else { return .failure(.keysUnavailable) }
        guard let alg = header.alg, Self.allowedAlgorithms.contains(alg) else { return self.remember(token, .failure(.badAlgorithm), nil, keys.generation) }
        let collection = await self.collection(for: keys)
        if let kid = header.kid, !collection.kids.contains(kid) { return self.remember(token, .failure(.unknownKey), nil, keys.generation) }
        do {
            _ = try await collection.keys.verify(token, as: ClaimsPayload.self, iteratingKeys: header.kid == nil)
        } catch {
            return self.remember(token, .failure(.signature), nil, keys.generation)
        }
        return self.remember(token, JWTClaimsCheck.check(claims, rule: self.rule, now: now), JWTClaimsCheck.expiry(claims), keys.generation)
    }

    private func remember(_ token: String, _ result: Result<RequestAuth, JWTFailure>, _ expiry: Double?, _ generation: Int) -> Result<RequestAuth, JWTFailure> {
        self.state.withLockedValue { state in
            if state.cache.count >= Self.cacheLimit { state.cache.removeAll(keepingCapacity: true) }
            state.cache[token] = Cached(result: result, expiry: expiry, generation: generation)
        }
        return result
    }

    /// jwt-kit's key collection for this JWKS generation (built once per generation).
    private func collection(for keys: JWKSKeys) async -> (generation: Int, keys: JWTKeyCollection, kids: Set<String>) {
        if let existing = self.state.withLockedValue({ $0.collection }), existing.generation == keys.generation { return existing }
        let collection = JWTKeyCollection()
        var kids: Set<String> = []
        for (index, key) in keys.jwks.keys.enumerated() {
            var key = key
            // A key without a `kid` is still used (for tokens without one), under a name of ours.
            if key.keyIdentifier == nil { key.keyIdentifier = JWKIdentifier(string: "meshgate-unnamed-\(index)") }
            if (try? await collection.add(jwk: key)) != nil, let kid = key.keyIdentifier?.string { kids.insert(kid) }
        }
        let built = (keys.generation, collection, kids)
        self.state.withLockedValue { $0.collection = built }
        return built
    }
}

/// A JWKS as the providers use it, with a generation that changes when the keys do.
struct JWKSKeys: Sendable {
    let jwks: JWKS
    let generation: Int
}

/// Where a provider's keys come from: inline (fixed) or a fetched URI (``JWKSRegistry``).
final class JWKSSource: Sendable {
    private let keys = NIOLockedValueBox<JWKSKeys?>(nil)

    init(_ keys: JWKSKeys? = nil) {
        self.keys.withLockedValue { $0 = keys }
    }

    var current: JWKSKeys? { self.keys.withLockedValue { $0 } }

    func update(_ jwks: JWKS) {
        self.keys.withLockedValue { $0 = JWKSKeys(jwks: jwks, generation: ($0?.generation ?? 0) + 1) }
    }

    /// Parses a JWKS document; every key must be one jwt-kit can use.
    static func parse(_ text: String) throws -> JWKS {
        let jwks = try JSONDecoder().decode(JWKS.self, from: Data(text.utf8))
        for (index, key) in jwks.keys.enumerated() {
            switch key.keyType {
            case .rsa where key.modulus == nil || key.exponent == nil:
                throw JWKSError("key \(index): an RSA key needs n and e")
            case .ecdsa where key.x == nil || key.y == nil || key.curve == nil:
                throw JWKSError("key \(index): an EC key needs crv, x and y")
            case .octetKeyPair where key.x == nil || key.curve == nil:
                throw JWKSError("key \(index): an OKP key needs crv and x")
            default: continue
            }
        }
        return jwks
    }
}

struct JWKSError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
