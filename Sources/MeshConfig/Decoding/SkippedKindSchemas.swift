/// Kinds Meshgate does not run yet (Sidecar) are still
/// read for their field names, per Istio's API (istio/api as of Istio 1.28): a misspelt field is an
/// error with a suggestion, as in every other kind, and the resource is then skipped with one info
/// line. Values are not checked beyond their shape (map or list).
indirect enum FieldShape: Sendable {
    /// A value of any shape (string, number, bool, or a map with free keys such as labels).
    case value
    case map([String: FieldShape])
    case list(FieldShape)

    /// Reports every field name `shape` does not know, below `field`.
    static func check(_ field: Field, against shape: FieldShape) {
        switch shape {
        case .value:
            return
        case .list(let item):
            for element in field.list() ?? [] { self.check(element, against: item) }
        case .map(let fields):
            guard let map = field.map(Schema(Set(fields.keys))) else { return }
            for (key, child) in fields {
                if let value = map[key] { self.check(value, against: child) }
            }
        }
    }
}

enum SkippedKindSchemas {
    static let selector = FieldShape.map(["matchLabels": .value])
    static let workloadSelector = FieldShape.map(["labels": .value])
    static let policyTargetReference = FieldShape.map(["group": .value, "kind": .value, "name": .value, "namespace": .value])
    static let portSelector = FieldShape.map(["number": .value])
    static let port = FieldShape.map(["number": .value, "protocol": .value, "name": .value, "targetPort": .value])

    static let serverTLS = FieldShape.map(Dictionary(uniqueKeysWithValues: ServerTLSDecoder.schema.fields.union(ServerTLSDecoder.schema.unsupported).map {
        ($0, $0 == "tlsCertificates" ? FieldShape.list(.map(["serverCertificate": .value, "privateKey": .value, "caCertificates": .value])) : .value)
    }))
    static let connectionPool = FieldShape.map(["tcp": .value, "http": .value])

    static let sidecar = FieldShape.map([
        "workloadSelector": workloadSelector,
        "ingress": .list(.map([
            "port": port, "bind": .value, "captureMode": .value, "defaultEndpoint": .value, "tls": serverTLS,
            "connectionPool": connectionPool,
        ])),
        "egress": .list(.map(["port": port, "bind": .value, "captureMode": .value, "hosts": .value])),
        "outboundTrafficPolicy": .map([
            "mode": .value, "egressProxy": .map(["host": .value, "subset": .value, "port": portSelector]),
        ]),
        "inboundConnectionPool": connectionPool,
    ])

    /// The spec shape of a skipped kind whose fields are checked; nil for the others (EnvoyFilter,
    /// WorkloadGroup, ProxyConfig: skipped unread).
    static func spec(of kind: String) -> FieldShape? {
        switch kind {
        case "Sidecar": return self.sidecar
        default: return nil
        }
    }
}
