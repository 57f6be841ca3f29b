/// `kind: RequestAuthentication` → ``RequestAuthentication``: each JWT rule needs an issuer and its
/// keys (inline `jwks` or a `jwksUri`); header names and URIs are checked here, the JWKS itself when
/// the snapshot is compiled.
enum RequestAuthenticationDecoder {
    static let spec = Schema(["selector", "targetRef", "targetRefs", "jwtRules"])
    static let rule = Schema(
        [
            "issuer", "audiences", "jwksUri", "jwks", "fromHeaders", "fromParams", "fromCookies", "outputPayloadToHeader",
            "forwardOriginalToken", "outputClaimToHeaders", "timeout",
        ],
        unsupported: ["spaceDelimitedClaims"]
    )
    static let header = Schema(["name", "prefix"])
    static let claimToHeader = Schema(["header", "claim"])

    static func decode(meta: ResourceMeta, spec field: Field) -> RequestAuthentication? {
        guard let spec = field.map(Self.spec) else { return nil }
        let selector = spec.map("selector", AuthorizationPolicyDecoder.selector).map { $0.stringMap("matchLabels") ?? [:] }
        let targets = AuthorizationPolicyDecoder.targetGateways(spec)
        var issuers: [String: Int] = [:]
        let rules = (spec.maps("jwtRules", Self.rule) ?? []).compactMap { map -> JWTRule? in
            guard let rule = self.rule(map) else { return nil }
            if let first = issuers[rule.issuer] {
                map["issuer"]?.error("issuer \(rule.issuer) is already configured at line \(first)")
                return nil
            }
            issuers[rule.issuer] = map.field.line
            return rule
        }
        return RequestAuthentication(meta: meta, selector: selector, targetGateways: targets, jwtRules: rules)
    }

    private static func rule(_ map: MapReader) -> JWTRule? {
        guard let issuer = map.required("issuer")?.string() else { return nil }
        var rule = JWTRule(issuer: issuer, location: map.location)
        rule.audiences = map["audiences"]?.strings()?.map(\.value) ?? []
        rule.jwks = map.string("jwks")
        if let field = map["jwksUri"], let uri = field.string() {
            if uri.hasPrefix("http://") || uri.hasPrefix("https://") || uri.hasPrefix("file://") {
                rule.jwksURI = uri
            } else {
                field.error("jwksUri must be an http://, https:// or file:// URI")
            }
        }
        if rule.jwks != nil, rule.jwksURI != nil {
            map.field.error("set either jwks or jwksUri, not both")
        } else if rule.jwks == nil, rule.jwksURI == nil, map["jwksUri"] == nil {
            map.field.error("jwks or jwksUri is required (OpenID discovery from the issuer is not supported)")
        }
        rule.fromHeaders = (map.maps("fromHeaders", Self.header) ?? []).compactMap { header in
            guard let name = header.required("name")?.string() else { return nil }
            guard HeaderName.isValid(name) else {
                header["name"]?.error("'\(name)' is not a valid header name")
                return nil
            }
            return JWTRule.HeaderLocation(name: name.lowercased(), prefix: header.string("prefix") ?? "")
        }
        rule.fromParams = map["fromParams"]?.strings()?.map(\.value) ?? []
        rule.fromCookies = map["fromCookies"]?.strings()?.map(\.value) ?? []
        rule.forwardOriginalToken = map.bool("forwardOriginalToken") ?? false
        if let field = map["outputPayloadToHeader"], let name = field.string() {
            if HeaderName.isValid(name) { rule.outputPayloadToHeader = name.lowercased() } else { field.error("'\(name)' is not a valid header name") }
        }
        rule.outputClaimToHeaders = (map.maps("outputClaimToHeaders", Self.claimToHeader) ?? []).compactMap { entry in
            guard let header = entry.required("header")?.string(), let claim = entry.required("claim")?.string() else { return nil }
            guard HeaderName.isValid(header) else {
                entry["header"]?.error("'\(header)' is not a valid header name")
                return nil
            }
            return JWTRule.ClaimToHeader(header: header.lowercased(), claim: claim)
        }
        if let field = map["timeout"], let timeout = field.duration() {
            if timeout <= .zero { field.error("the timeout must be longer than 0") } else { rule.timeout = timeout }
        }
        return rule
    }
}

/// RFC 9110 field names: tokens.
enum HeaderName {
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
            default: return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
        }
    }
}
