/// `kind: PeerAuthentication` (security.istio.io v1beta1 and v1) → ``PeerAuthentication``.
enum PeerAuthenticationDecoder {
    static let group = "security.istio.io"
    static let versions = ["v1beta1", "v1"]

    static let spec = Schema(["selector", "mtls", "portLevelMtls"])
    static let selector = Schema(["matchLabels"])
    static let mtls = Schema(["mode"])
    static let modes: KeyValuePairs<String, MTLSMode> = [
        "UNSET": .unset, "DISABLE": .disable, "PERMISSIVE": .permissive, "STRICT": .strict,
    ]

    static func decode(meta: ResourceMeta, spec field: Field) -> PeerAuthentication? {
        guard let spec = field.map(Self.spec) else { return nil }
        let selector = spec.map("selector", Self.selector).map { $0.stringMap("matchLabels") ?? [:] }
        let mode = spec.map("mtls", Self.mtls)?["mode"]?.oneOf(Self.modes) ?? .unset
        var portLevel: [Int: MTLSMode] = [:]
        if let ports = spec["portLevelMtls"], let entries = ports.entries() {
            if (selector ?? [:]).isEmpty {
                ports.warning("portLevelMtls applies only to a policy with a selector (as in Istio); ignored")
            }
            for entry in entries {
                let item = Field(node: entry.value, path: ports.childPath(entry.key), line: entry.line, context: ports.context)
                guard let port = Int(entry.key), (1...65535).contains(port) else {
                    item.error("'\(entry.key)' is not a port (1..65535)")
                    continue
                }
                if let portMode = item.map(Self.mtls)?["mode"]?.oneOf(Self.modes), !(selector ?? [:]).isEmpty {
                    portLevel[port] = portMode
                }
            }
        }
        return PeerAuthentication(meta: meta, selector: selector, mode: mode, portLevel: portLevel)
    }
}
