import Crypto
import JWTKit
import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// RequestAuthentication's pieces without sockets: claim checks (clock passed in), where tokens
/// are found, what the upstream is told, and a provider verifying real ES256 tokens with jwt-kit.
@Suite struct JWTTests {
    static let rule = JWTRule(issuer: "https://issuer.example", audiences: ["bookinfo"], jwks: "{}")

    static func claims(_ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
        ["iss": .string("https://issuer.example"), "sub": .string("alice"), "aud": .string("bookinfo"), "exp": .number(2000)]
            .merging(extra) { $1 }
    }

    @Test func claimChecksFollowEnvoy() throws {
        let good = try JWTClaimsCheck.check(Self.claims(["azp": .string("web")]), rule: Self.rule, now: 1000).get()
        #expect(good.principal == "https://issuer.example/alice")
        #expect(good.audiences == ["bookinfo"] && good.presenter == "web")
        #expect(JWTClaimsCheck.check(Self.claims(), rule: Self.rule, now: 2059) .map(\.principal) == .success("https://issuer.example/alice"))
        #expect(JWTClaimsCheck.check(Self.claims(), rule: Self.rule, now: 2061).map(\.principal) == .failure(.expired))
        #expect(JWTClaimsCheck.check(Self.claims(["nbf": .number(1100)]), rule: Self.rule, now: 1000).map(\.principal) == .failure(.notYetValid))
        #expect(JWTClaimsCheck.check(Self.claims(["aud": .array([.string("x"), .string("y")])]), rule: Self.rule, now: 1000).map(\.principal) == .failure(.audience))
        #expect(JWTClaimsCheck.check(Self.claims(["iss": .string("other")]), rule: Self.rule, now: 1000).map(\.principal) == .failure(.issuerNotConfigured))
        #expect(JWTFailure.expired.details == "jwt_authn_access_denied{Jwt_is_expired}")
    }

    @Test func tokensAreFoundWhereTheRulesSay() {
        let defaults = RequestAuthenticator([JWTProvider(rule: Self.rule, keySource: JWKSSource())])
        #expect(defaults.locate(HTTPHeaders([("Authorization", "Bearer abc.def.ghi")]), query: nil)?.token == "abc.def.ghi")
        #expect(defaults.locate(HTTPHeaders([("Authorization", "Basic xyz")]), query: nil) == nil)
        #expect(defaults.locate(HTTPHeaders(), query: "a=1&access_token=t.o.k")?.token == "t.o.k")
        var custom = Self.rule
        custom.fromHeaders = [.init(name: "x-jwt", prefix: "")]
        custom.fromCookies = ["session"]
        let configured = RequestAuthenticator([JWTProvider(rule: custom, keySource: JWKSSource())])
        #expect(configured.locate(HTTPHeaders([("x-jwt", "a.b.c")]), query: nil)?.header == "x-jwt")
        #expect(configured.locate(HTTPHeaders([("cookie", "theme=dark; session=s.e.t")]), query: nil)?.token == "s.e.t")
        // With locations configured, Istio's defaults are not read.
        #expect(configured.locate(HTTPHeaders([("Authorization", "Bearer a.b.c")]), query: "access_token=x") == nil)
    }

    @Test func theUpstreamGetsThePayloadAndClaimsAndNotTheToken() {
        var rule = Self.rule
        rule.outputPayloadToHeader = "x-jwt-payload"
        rule.outputClaimToHeaders = [.init(header: "x-sub", claim: "sub"), .init(header: "x-level", claim: "realm.level")]
        let auth = RequestAuth(principal: "p", audiences: [], presenter: nil, claims: Self.claims(["realm": .object(["level": .number(3)])]))
        let jwt = VerifiedJWT(auth: auth, rule: rule, located: .init(token: "aGVhZA.cGF5bG9hZA.c2ln", header: "authorization"))
        var headers = HTTPHeaders([("authorization", "Bearer aGVhZA.cGF5bG9hZA.c2ln"), ("x-sub", "spoofed")])
        jwt.apply(to: &headers)
        #expect(headers["authorization"].isEmpty)
        #expect(headers["x-jwt-payload"] == ["cGF5bG9hZA"])
        #expect(headers["x-sub"] == ["alice"] && headers["x-level"] == ["3"])
    }

    /// A provider with an ES256 key: a good token, a cached second look, a bad signature, an
    /// unknown kid, `alg: none`.
    @Test func aProviderVerifiesWithJWTKitAndCachesTheVerdict() async throws {
        let key = try ES256PrivateKey(backing: P256.Signing.PrivateKey())
        let parameters = try #require(key.parameters)
        let jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"\#(parameters.x)","y":"\#(parameters.y)"}]}"#
        let provider = JWTProvider(rule: Self.rule, keySource: JWKSSource(JWKSKeys(jwks: try JWKSSource.parse(jwks), generation: 1)))
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: key, kid: "k1")
        let token = try await signer.sign(ClaimsPayload(claims: Self.claims()), kid: "k1")
        let parsed = try DefaultJWTParser().parse(Array(token.utf8), as: ClaimsPayload.self)

        #expect(provider.cached(token, now: 1000) == nil)
        let verified = await provider.verify(token, header: parsed.header, claims: parsed.payload.claims, now: 1000)
        #expect(verified.map(\.principal) == .success("https://issuer.example/alice"))
        #expect(provider.cached(token, now: 1000)?.map(\.principal) == .success("https://issuer.example/alice"))
        // A cached token still expires.
        #expect(provider.cached(token, now: 5000)?.map(\.principal) == .failure(.expired))

        let parts = token.split(separator: ".")
        let forged = "\(parts[0]).\(parts[1]).\(String(parts[2].reversed()))"
        #expect(await provider.verify(forged, header: parsed.header, claims: parsed.payload.claims, now: 1000).map(\.principal) == .failure(.signature))
        var otherKid = parsed.header
        otherKid.kid = "k2"
        #expect(await provider.verify(token + "x", header: otherKid, claims: parsed.payload.claims, now: 1000).map(\.principal) == .failure(.unknownKey))
        var none = parsed.header
        none.alg = "none"
        #expect(await provider.verify("\(parts[0]).\(parts[1]).", header: none, claims: parsed.payload.claims, now: 1000).map(\.principal) == .failure(.badAlgorithm))
    }

    @Test func aJWKSWithAMalformedKeyIsRefused() {
        #expect(throws: (any Error).self) { try JWKSSource.parse(#"{"keys":[{"kty":"RSA","kid":"a"}]}"#) }
        #expect(throws: (any Error).self) { try JWKSSource.parse("not json") }
    }
}
