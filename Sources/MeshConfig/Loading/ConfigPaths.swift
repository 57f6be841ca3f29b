/// File paths written in the config, resolved against the config directory: the directory that holds
/// `meshgate.yaml` (or was loaded), else the directory of the file that names the path. Pure string
/// work: nothing here touches the file system.
enum ConfigPaths {
    /// `path` as written when absolute, else joined onto `directory`; `.` and empty components are dropped.
    static func resolve(_ path: String, against directory: String) -> String {
        self.normalize(path.hasPrefix("/") ? path : "\(directory)/\(path)")
    }

    /// The directory part of a file path (`.` for a bare file name).
    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }

    static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let joined = parts.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// Resolves every Gateway server's TLS file paths and `credentialName`, and `credentialsDir`
    /// itself. `configDirectory` is nil when no `meshgate.yaml` was loaded and no directory was given:
    /// then each Gateway's paths are taken from its own file's directory, and `credentialsDir` from
    /// the first resource file's.
    static func resolveTLS(in declarations: inout Declarations, configDirectory: String?, firstFile: String?) {
        let credentialsDir = declarations.settings.credentialsDir
        let settingsBase = configDirectory ?? firstFile.map(self.directory(of:)) ?? "."
        declarations.settings.credentialsDir = self.resolve(credentialsDir, against: settingsBase)
        declarations.settings.caDir = declarations.settings.caDir.map { self.resolve($0, against: settingsBase) }
        declarations.settings.certDir = declarations.settings.certDir.map { self.resolve($0, against: settingsBase) }
        for index in declarations.destinationRules.indices {
            let rule = declarations.destinationRules[index].rule
            let base = configDirectory ?? rule.meta.location.map { self.directory(of: $0.file) } ?? "."
            declarations.destinationRules[index].rule.trafficPolicy = rule.trafficPolicy.map { self.resolve($0, base: base) }
            for subset in rule.subsets.indices {
                declarations.destinationRules[index].rule.subsets[subset].trafficPolicy =
                    rule.subsets[subset].trafficPolicy.map { self.resolve($0, base: base) }
            }
        }
        for index in declarations.gateways.indices {
            let gateway = declarations.gateways[index].gateway
            let base = configDirectory ?? gateway.meta.location.map { self.directory(of: $0.file) } ?? "."
            for (serverIndex, server) in gateway.servers.enumerated() {
                guard let tls = server.tls else { continue }
                declarations.gateways[index].gateway.servers[serverIndex].tls = self.resolve(
                    tls, base: base, credentialsDir: self.resolve(credentialsDir, against: base)
                )
            }
        }
    }

    /// A DestinationRule's client certificate, key and CA files, at every port level.
    private static func resolve(_ policy: TrafficPolicy, base: String) -> TrafficPolicy {
        var policy = policy
        if var tls = policy.tls {
            tls.clientCertificatePath = tls.clientCertificatePath.map { self.resolve($0, against: base) }
            tls.privateKeyPath = tls.privateKeyPath.map { self.resolve($0, against: base) }
            tls.caCertificatesPath = tls.caCertificatesPath.map { self.resolve($0, against: base) }
            policy.tls = tls
        }
        policy.portLevel = policy.portLevel.mapValues { self.resolve($0, base: base) }
        return policy
    }

    /// `credentialName: NAME` → `CREDENTIALS-DIR/NAME/tls.crt`, `tls.key`, and `ca.crt` when client
    /// certificates are verified and neither `caCertificates` nor `caCertCredentialName: CA` (→
    /// `CREDENTIALS-DIR/CA/ca.crt`) names a CA of its own.
    private static func resolve(_ tls: ServerTLSSettings, base: String, credentialsDir: String) -> ServerTLSSettings {
        var tls = tls
        tls.certificatePath = tls.certificatePath.map { self.resolve($0, against: base) }
        tls.privateKeyPath = tls.privateKeyPath.map { self.resolve($0, against: base) }
        tls.caCertificatesPath = tls.caCertificatesPath.map { self.resolve($0, against: base) }
        if let name = tls.caCertCredentialName, tls.caCertificatesPath == nil, tls.mode == .mutual || tls.mode == .optionalMutual {
            tls.caCertificatesPath = "\(self.normalize("\(credentialsDir)/\(name)"))/ca.crt"
        }
        if let name = tls.credentialName {
            let credential = self.normalize("\(credentialsDir)/\(name)")
            tls.certificatePath = "\(credential)/tls.crt"
            tls.privateKeyPath = "\(credential)/tls.key"
            if tls.caCertificatesPath == nil, tls.mode == .mutual || tls.mode == .optionalMutual {
                tls.caCertificatesPath = "\(credential)/ca.crt"
            }
        }
        return tls
    }
}
