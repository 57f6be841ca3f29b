/// Who the peer of a mesh connection is, as Istio's metadata exchange tells it: the node metadata of
/// the workload at the other end (the Struct under `x-envoy-peer-metadata`) plus its node id
/// (`x-envoy-peer-metadata-id`).
///
/// The keys Istio's telemetry reads are typed fields; every other key of the node metadata
/// (`PLATFORM_METADATA`, `APP_CONTAINERS`, `INSTANCE_IPS`, ...) is kept as is in ``otherFields``, so
/// converting a Struct to a ``PeerMetadata`` and back gives the same Struct.
public struct PeerMetadata: Sendable, Hashable {
    /// The node id, sent beside the metadata (`x-envoy-peer-metadata-id`), e.g.
    /// `sidecar~10.0.0.5~reviews-v1.default~default.svc.cluster.local`.
    public var id: String
    /// `NAME`: the instance (pod) name.
    public var name: String
    /// `NAMESPACE`.
    public var namespace: String
    /// `WORKLOAD_NAME`: the workload (deployment) name, e.g. `reviews-v1`.
    public var workloadName: String
    /// `OWNER`: the owning resource, e.g. `kubernetes://apis/apps/v1/namespaces/default/deployments/reviews-v1`.
    public var owner: String
    /// `LABELS`: `app`, `version`, `service.istio.io/canonical-name`, `service.istio.io/canonical-revision`, ...
    public var labels: [String: String]
    /// `CLUSTER_ID`, e.g. `Kubernetes`.
    public var clusterID: String
    /// `MESH_ID`, e.g. `cluster.local`.
    public var meshID: String
    /// `SERVICE_ACCOUNT`.
    public var serviceAccount: String
    /// `ISTIO_VERSION`.
    public var istioVersion: String
    /// Every other key of the node metadata, unchanged (also known keys whose value is not a string).
    public var otherFields: ProtobufStruct

    public init(
        id: String = "", name: String = "", namespace: String = "", workloadName: String = "", owner: String = "",
        labels: [String: String] = [:], clusterID: String = "", meshID: String = "", serviceAccount: String = "",
        istioVersion: String = "", otherFields: ProtobufStruct = ProtobufStruct()
    ) {
        self.id = id
        self.name = name
        self.namespace = namespace
        self.workloadName = workloadName
        self.owner = owner
        self.labels = labels
        self.clusterID = clusterID
        self.meshID = meshID
        self.serviceAccount = serviceAccount
        self.istioVersion = istioVersion
        self.otherFields = otherFields
    }

    // MARK: - Derived, as Istio's stats filter derives them

    public static let canonicalNameLabel = "service.istio.io/canonical-name"
    public static let canonicalRevisionLabel = "service.istio.io/canonical-revision"

    /// `app`, else `app.kubernetes.io/name`.
    public var app: String? { self.labels["app"] ?? self.labels["app.kubernetes.io/name"] }
    /// `version`, else `app.kubernetes.io/version`.
    public var version: String? { self.labels["version"] ?? self.labels["app.kubernetes.io/version"] }
    /// The canonical service: its label, else ``app``, else the workload name.
    public var canonicalName: String { self.labels[Self.canonicalNameLabel] ?? self.app ?? self.workloadName }
    /// The canonical revision: its label, else ``version``, else `latest`.
    public var canonicalRevision: String { self.labels[Self.canonicalRevisionLabel] ?? self.version ?? "latest" }

    /// `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`, when both are known. The principal
    /// proven by mTLS comes from the peer's certificate; this is what the peer claims.
    public func principal(trustDomain: String = "cluster.local") -> String? {
        guard !self.namespace.isEmpty, !self.serviceAccount.isEmpty else { return nil }
        return "spiffe://\(trustDomain)/ns/\(self.namespace)/sa/\(self.serviceAccount)"
    }

    // MARK: - Node metadata Struct

    /// The node metadata Struct keys of the typed fields.
    private static var stringKeys: [(key: String, path: WritableKeyPath<PeerMetadata, String>)] {
        [
        ("NAME", \.name), ("NAMESPACE", \.namespace), ("WORKLOAD_NAME", \.workloadName), ("OWNER", \.owner),
        ("CLUSTER_ID", \.clusterID), ("MESH_ID", \.meshID), ("SERVICE_ACCOUNT", \.serviceAccount),
        ("ISTIO_VERSION", \.istioVersion),
        ]
    }
    private static let labelsKey = "LABELS"

    /// Reads a node metadata Struct. Missing keys are empty; a known key with a value of another
    /// type, and label values that are not strings, stay in ``otherFields`` and ``labels`` leaves them out.
    public init(nodeMetadata: ProtobufStruct, id: String = "") {
        self.init(id: id)
        var rest = nodeMetadata
        for (key, path) in Self.stringKeys {
            if let text = nodeMetadata[key]?.stringValue {
                self[keyPath: path] = text
                rest[key] = nil
            }
        }
        if let labels = nodeMetadata[Self.labelsKey]?.structValue,
           labels.fields.values.allSatisfy({ $0.stringValue != nil })
        {
            self.labels = labels.fields.compactMapValues(\.stringValue)
            rest[Self.labelsKey] = nil
        }
        self.otherFields = rest
    }

    /// The node metadata Struct: ``otherFields`` plus every non-empty typed field.
    public var nodeMetadata: ProtobufStruct {
        var result = self.otherFields
        for (key, path) in Self.stringKeys where !self[keyPath: path].isEmpty {
            result[key] = .string(self[keyPath: path])
        }
        if !self.labels.isEmpty {
            result[Self.labelsKey] = .structure(ProtobufStruct(self.labels.mapValues { .string($0) }))
        }
        return result
    }
}
