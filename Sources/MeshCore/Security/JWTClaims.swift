import MeshConfig

/// Why a token is refused: Envoy's jwt_authn status texts, which users search for.
enum JWTFailure: Error, Equatable, Sendable {
    case malformed
    case badAlgorithm
    case issuerNotConfigured
    case unknownKey
    case signature
    case expired
    case notYetValid
    case audience
    case keysUnavailable

    var message: String {
        switch self {
        case .malformed: return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
        case .badAlgorithm: return "Jwt header [alg] is not supported"
        case .issuerNotConfigured: return "Jwt issuer is not configured"
        case .unknownKey: return "Jwks doesn't have key to match kid or alg from Jwt"
        case .signature: return "Jwt verification fails"
        case .expired: return "Jwt is expired"
        case .notYetValid: return "Jwt not yet valid"
        case .audience: return "Audiences in Jwt are not allowed"
        case .keysUnavailable: return "Jwks remote fetch is failed"
        }
    }

    /// Envoy's response-code details: `jwt_authn_access_denied{Jwt_is_expired}`.
    var details: String { "jwt_authn_access_denied{\(self.message.replacingSpaces())}" }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(self.map { $0 == " " ? "_" : $0 }) }
}

/// The checks on a token's claims once its signature holds, pure (the clock is passed in): issuer,
/// audiences, `exp` and `nbf` with Envoy's 60 s of clock skew.
enum JWTClaimsCheck {
    static let clockSkewSeconds: Double = 60

    static func check(_ claims: [String: JSONValue], rule: JWTRule, now: Double) -> Result<RequestAuth, JWTFailure> {
        guard case .string(let issuer)? = claims["iss"], issuer == rule.issuer else { return .failure(.issuerNotConfigured) }
        if case .number(let exp)? = claims["exp"], exp + Self.clockSkewSeconds < now { return .failure(.expired) }
        if case .number(let nbf)? = claims["nbf"], nbf - Self.clockSkewSeconds > now { return .failure(.notYetValid) }
        let audiences = claims["aud"]?.matchable ?? []
        if !rule.audiences.isEmpty, !audiences.contains(where: rule.audiences.contains) { return .failure(.audience) }
        var subject = ""
        if case .string(let sub)? = claims["sub"] { subject = sub }
        var presenter: String?
        if case .string(let azp)? = claims["azp"] { presenter = azp }
        return .success(RequestAuth(principal: "\(issuer)/\(subject)", audiences: audiences, presenter: presenter, claims: claims))
    }

    /// When a verified token stops being good (`exp` plus the skew); nil: never.
    static func expiry(_ claims: [String: JSONValue]) -> Double? {
        guard case .number(let exp)? = claims["exp"] else { return nil }
        return exp + Self.clockSkewSeconds
    }
}

extension JSONValue: Codable {
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let object): try container.encode(object)
        }
    }
}
