/// A Gateway server's `tls` block → ``ServerTLSSettings`` (paths as written; ``ConfigPaths`` resolves
/// them once the config directory and `credentialsDir` are known), with every rule that one server
/// can be checked by. Certificate files are not read here: MeshCore checks them when it compiles.
enum ServerTLSDecoder {
    static let schema = Schema(
        [
            "httpsRedirect", "mode", "serverCertificate", "privateKey", "caCertificates", "credentialName",
            "caCertCredentialName", "subjectAltNames", "minProtocolVersion", "maxProtocolVersion", "cipherSuites",
        ],
        unsupported: ["caCrl", "credentialNames", "tlsCertificates", "verifyCertificateSpki", "verifyCertificateHash"]
    )

    /// The fields that configure a TLS handshake (everything but `httpsRedirect`), in schema order.
    static let handshakeFields = [
        "mode", "serverCertificate", "privateKey", "caCertificates", "credentialName", "caCertCredentialName", "subjectAltNames",
        "minProtocolVersion", "maxProtocolVersion", "cipherSuites",
    ]

    static let modes: KeyValuePairs<String, ServerTLSSettings.Mode> = [
        "SIMPLE": .simple, "MUTUAL": .mutual, "OPTIONAL_MUTUAL": .optionalMutual, "PASSTHROUGH": .passthrough,
        "ISTIO_MUTUAL": .istioMutual, "AUTO_PASSTHROUGH": .autoPassthrough,
    ]

    static let versions: KeyValuePairs<String, ServerTLSSettings.ProtocolVersion> = [
        "TLS_AUTO": .auto, "TLSV1_0": .v1_0, "TLSV1_1": .v1_1, "TLSV1_2": .v1_2, "TLSV1_3": .v1_3,
    ]

    /// The server's TLS settings (nil for a plain server) and its `httpsRedirect`.
    static func decode(_ field: Field?, protocol proto: ServerProtocol) -> (tls: ServerTLSSettings?, httpsRedirect: Bool) {
        guard let field, let tls = field.map(Self.schema) else { return (nil, false) }
        let httpsRedirect = tls.bool("httpsRedirect") ?? false
        guard proto == .https || proto == .tls else {
            // Istio: "server cannot have TLS settings for plain text HTTP ports".
            if let first = Self.handshakeFields.first(where: { tls[$0] != nil }) {
                tls.context.sink.error(
                    at: tls.place(of: first),
                    "a plain-text \(proto.rawValue) server can only have httpsRedirect in its tls block (to serve TLS, use protocol HTTPS or TLS)"
                )
            }
            if httpsRedirect, !proto.isHTTP {
                tls.context.sink.warning(at: tls.place(of: "httpsRedirect"), "httpsRedirect only applies to HTTP servers; ignored")
            }
            return (nil, httpsRedirect)
        }
        return (self.settings(tls), httpsRedirect)
    }

    private static func settings(_ tls: MapReader) -> ServerTLSSettings? {
        let sink = tls.context.sink
        let certificate = self.path(tls, "serverCertificate")
        let privateKey = self.path(tls, "privateKey")
        let ca = self.path(tls, "caCertificates")
        let credential = self.credentialName(tls, "credentialName")
        let caCredential = self.credentialName(tls, "caCertCredentialName")
        let hasCertificates = tls["serverCertificate"] != nil || tls["privateKey"] != nil || tls["credentialName"] != nil
        var valid = true
        var mode: ServerTLSSettings.Mode?
        if let field = tls["mode"] {
            mode = field.oneOf(Self.modes)
            valid = mode != nil
        } else if hasCertificates {
            mode = .simple
        } else {
            // Istio's TLSmode enum starts with PASSTHROUGH, so that is what an unset mode means.
            sink.warning(
                at: tls.place(of: "mode"),
                "no mode and no certificates: PASSTHROUGH (Istio's default) routes by SNI without terminating; say mode: PASSTHROUGH, or give certificates to terminate TLS"
            )
            mode = .passthrough
        }
        if let mode, !self.check(tls, mode: mode) { valid = false }
        let minimum = tls["minProtocolVersion"].flatMap(self.version)
        let maximum = tls["maxProtocolVersion"].flatMap(self.version)
        if let minimum, let maximum, minimum != .auto, maximum != .auto, minimum > maximum {
            sink.error(
                at: tls.place(of: "maxProtocolVersion"),
                "maxProtocolVersion \(maximum.rawValue) is below minProtocolVersion \(minimum.rawValue)"
            )
            valid = false
        }
        let subjectAltNames = tls["subjectAltNames"].map { self.nonEmptyStrings($0, what: "subject alt name") } ?? []
        let cipherSuites = tls["cipherSuites"].map(self.cipherSuites) ?? []
        guard valid, let mode else { return nil }
        return ServerTLSSettings(
            mode: mode, certificatePath: certificate, privateKeyPath: privateKey, caCertificatesPath: ca,
            credentialName: credential, caCertCredentialName: caCredential, subjectAltNames: subjectAltNames, minProtocolVersion: minimum,
            maxProtocolVersion: maximum, cipherSuites: cipherSuites, location: tls.location
        )
    }

    /// What each mode needs and what it leaves unused.
    private static func check(_ tls: MapReader, mode: ServerTLSSettings.Mode) -> Bool {
        let sink = tls.context.sink
        switch mode {
        case .simple, .mutual, .optionalMutual:
            if mode == .simple {
                for key in ["caCertificates", "caCertCredentialName", "subjectAltNames"] where tls[key] != nil {
                    sink.warning(
                        at: tls.place(of: key),
                        "SIMPLE TLS does not ask for client certificates, so \(key) is not used (use MUTUAL or OPTIONAL_MUTUAL)"
                    )
                }
            }
            return self.checkCertificates(tls, mode: mode)
        case .passthrough:
            for key in Self.handshakeFields.dropFirst() where tls[key] != nil {
                sink.warning(at: tls.place(of: key), "PASSTHROUGH does not terminate TLS, so \(key) is not used")
            }
        case .istioMutual, .autoPassthrough:
            sink.warning(at: tls.place(of: "mode"), "mode \(mode.rawValue) is not supported yet (it comes with the mesh); this server is not served")
        }
        return true
    }

    /// A terminating mode needs a certificate and key: from files or from a credential, not both;
    /// MUTUAL and OPTIONAL_MUTUAL also need a CA to verify client certificates against.
    private static func checkCertificates(_ tls: MapReader, mode: ServerTLSSettings.Mode) -> Bool {
        let sink = tls.context.sink
        let files = ["serverCertificate", "privateKey"].filter { tls[$0] != nil }
        if tls["credentialName"] != nil {
            guard files.isEmpty else {
                sink.error(
                    at: tls.place(of: "credentialName"),
                    "set credentialName or \(files.joined(separator: " and ")), not both: the credential holds tls.crt and tls.key"
                )
                return false
            }
        } else if files.isEmpty {
            sink.error(at: tls.place, "\(mode.rawValue) TLS needs serverCertificate and privateKey, or credentialName")
            return false
        } else if files.count == 1 {
            let missing = files[0] == "serverCertificate" ? "privateKey" : "serverCertificate"
            sink.error(at: tls.place(of: missing), "\(mode.rawValue) TLS needs \(missing) too, beside \(files[0])")
            return false
        }
        if mode != .simple, ["credentialName", "caCertificates", "caCertCredentialName"].allSatisfy({ tls[$0] == nil }) {
            sink.error(
                at: tls.place(of: "caCertificates"),
                "\(mode.rawValue) TLS verifies client certificates, so it needs caCertificates (or a caCertCredentialName or credentialName, whose ca.crt is used)"
            )
            return false
        }
        return true
    }

    /// A file path: a non-empty string.
    private static func path(_ tls: MapReader, _ key: String) -> String? {
        guard let field = tls[key], let text = field.string() else { return nil }
        if text.isEmpty {
            field.error("empty path")
            return nil
        }
        return text
    }

    /// A credential (`credentialName`, `caCertCredentialName`) is a directory below `credentialsDir`: one plain name.
    private static func credentialName(_ tls: MapReader, _ key: String) -> String? {
        guard let field = tls[key], let name = field.string() else { return nil }
        if name.isEmpty || name == "." || name == ".." || name.contains("/") {
            field.error("invalid \(key) \"\(name)\": it names a directory in credentialsDir, so it must be one plain name")
            return nil
        }
        return name
    }

    private static func version(_ field: Field) -> ServerTLSSettings.ProtocolVersion? {
        guard let text = field.string() else { return nil }
        if let match = Self.versions.first(where: { $0.key == text }) { return match.value }
        let allowed = Self.versions.map(\.key)
        let hint = closestName(to: text, among: allowed).map { " (did you mean \($0)?)" } ?? ""
        field.error("unknown TLS version \"\(text)\"\(hint); expected one of \(allowed.joined(separator: ", "))")
        return nil
    }

    /// A list of non-empty strings; duplicates are reported as warnings and left out.
    /// The TLS 1.2 cipher suites Envoy (BoringSSL) accepts by name, the list Istio documents for
    /// `cipherSuites`. An unknown name is an error here: BoringSSL would refuse the whole list.
    static let knownCipherSuites: [String] = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
        "ECDHE-PSK-AES128-CBC-SHA", "ECDHE-PSK-AES256-CBC-SHA", "ECDHE-PSK-CHACHA20-POLY1305",
        "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "PSK-AES128-CBC-SHA", "PSK-AES256-CBC-SHA",
        "DES-CBC3-SHA",
    ]

    private static func cipherSuites(_ field: Field) -> [String] {
        let names = self.nonEmptyStrings(field, what: "cipher suite")
        var known: [String] = []
        for (value, item) in field.strings() ?? [] where names.contains(value) && !known.contains(value) {
            if self.knownCipherSuites.contains(value) {
                known.append(value)
            } else {
                let hint = closestName(to: value, among: self.knownCipherSuites).map { " (did you mean \($0)?)" } ?? ""
                item.error("unknown cipher suite \(value)\(hint)")
            }
        }
        return known
    }

    private static func nonEmptyStrings(_ field: Field, what: String) -> [String] {
        var result: [String] = []
        for (value, item) in field.strings() ?? [] {
            if value.isEmpty {
                item.error("empty \(what)")
            } else if result.contains(value) {
                item.warning("\(what) \(value) is listed twice")
            } else {
                result.append(value)
            }
        }
        return result
    }
}
