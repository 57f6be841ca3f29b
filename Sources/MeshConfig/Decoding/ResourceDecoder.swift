/// Decodes the documents of the resource files: reads each envelope (apiVersion, kind, metadata),
/// hands the spec to the decoder of its kind, skips what Meshgate does not run, and reports
/// duplicates. One per load.
struct ResourceDecoder {
    static let networkingGroup = "networking.istio.io"
    static let networkingVersions = ["v1alpha3", "v1beta1", "v1"]
    /// Valid networking kinds that Meshgate does not run (yet): skipped with an info line.
    static let skippedNetworkingKinds: Set = ["Sidecar", "EnvoyFilter", "WorkloadGroup", "ProxyConfig"]
    static let decodedKinds = ["Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry"]

    static let envelope = Schema(["apiVersion", "kind", "metadata", "spec"], ignored: ["status"])
    static let listEnvelope = Schema(["apiVersion", "kind", "items"], ignored: ["metadata"])
    static let metadata = Schema(
        ["name", "namespace"],
        ignored: [
            "labels", "annotations", "uid", "resourceVersion", "generation", "creationTimestamp",
            "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "ownerReferences",
            "finalizers", "generateName", "selfLink",
        ]
    )

    let sink: DiagnosticSink
    private(set) var declarations = Declarations()
    /// `Kind namespace/name` → where it was first declared.
    private var seen: [String: SourceLocation] = [:]

    init(sink: DiagnosticSink) {
        self.sink = sink
    }

    mutating func decode(document: RawNode, file: String) {
        let context = DecodeContext(file: file, sink: self.sink)
        self.decode(Field(node: document, path: "", line: document.line, context: context))
    }

    private mutating func decode(_ document: Field) {
        if document.node.isNull { return }  // an empty document
        guard case .mapping(let entries) = document.node.value else {
            document.error("expected a resource (a map with apiVersion, kind, metadata and spec), got \(document.node.kindDescription)")
            return
        }
        let apiVersion = Self.scalar(entries, "apiVersion")
        let kind = Self.scalar(entries, "kind")
        // Every path about this resource starts `Kind/name`.
        let name = Self.scalar(Self.entries(entries, "metadata"), "name")
        let path = kind.map { kind in name.map { "\(kind)/\($0)" } ?? kind } ?? ""
        let resource = Field(node: document.node, path: path, line: document.line, context: document.context)
        guard let apiVersion, let kind else {
            _ = resource.map(Self.envelope).map { envelope in
                _ = envelope.required("apiVersion")?.string()
                _ = envelope.required("kind")?.string()
            }
            return
        }
        let (group, version) = Self.split(apiVersion)
        switch (group, kind) {
        case (Self.networkingGroup, _):
            guard Self.networkingVersions.contains(version) else {
                self.unknownVersion(resource, apiVersion, reads: "networking.istio.io/v1alpha3, v1beta1 and v1")
                return
            }
            if Self.skippedNetworkingKinds.contains(kind) {
                self.skip(resource, kind: kind)
            } else if Self.decodedKinds.contains(kind) {
                self.decodeResource(resource, kind: kind)
            } else if let envelope = resource.map(Self.envelope) {
                let known = Self.decodedKinds + Self.skippedNetworkingKinds
                let hint = closestName(to: kind, among: known).map { " (did you mean \($0)?)" } ?? ""
                self.sink.error(at: envelope.place(of: "kind"), "unknown kind \(kind) in \(apiVersion)\(hint)")
            }
        case (TelemetryDecoder.group, _):
            guard TelemetryDecoder.versions.contains(version) else {
                self.unknownVersion(resource, apiVersion, reads: "telemetry.istio.io/v1alpha1 and v1")
                return
            }
            if kind == "Telemetry" {
                self.decodeResource(resource, kind: kind)
            } else if let envelope = resource.map(Self.envelope) {
                self.sink.error(at: envelope.place(of: "kind"), "unknown kind \(kind) in \(apiVersion) (did you mean Telemetry?)")
            }
        case (PeerAuthenticationDecoder.group, _):
            guard PeerAuthenticationDecoder.versions.contains(version) else {
                self.unknownVersion(resource, apiVersion, reads: "security.istio.io/v1beta1 and v1")
                return
            }
            if ["PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"].contains(kind) {
                self.decodeResource(resource, kind: kind)
            } else if let envelope = resource.map(Self.envelope) {
                self.sink.error(at: envelope.place(of: "kind"), "unknown kind \(kind) in \(apiVersion)")
            }
        case ("", "Service") where version == "v1":
            self.decodeResource(resource, kind: kind)
        case ("", "List") where version == "v1":
            for item in resource.map(Self.listEnvelope)?["items"]?.list() ?? [] {
                self.decode(item)
            }
        default:
            self.sink.info(at: resource.place, "skipped: Meshgate does not run \(kind)")
        }
    }

    /// A kind Meshgate does not run: its field names are still checked when Istio's schema is known
    /// (``SkippedKindSchemas``), then one info line.
    private func skip(_ resource: Field, kind: String) {
        if let shape = SkippedKindSchemas.spec(of: kind), let spec = resource.map(Self.envelope)?["spec"] {
            FieldShape.check(spec, against: shape)
        }
        self.sink.info(at: resource.place, "skipped: Meshgate does not run \(kind)")
        if kind == "WorkloadGroup", let probe = resource.map(Self.envelope)?["spec"]?.entries()?.first(where: { $0.key == "probe" }) {
            // Said apart: a user may expect unhealthy endpoints to be taken out.
            self.sink.warning(
                at: resource.context.location(probe.line), path: resource.childPath("spec.probe"),
                "WorkloadGroup probes are not run: Istio's agent runs them beside the workload and reports to istiod, which Meshgate does not have; use outlierDetection to take failing endpoints out"
            )
        }
    }

    private func unknownVersion(_ resource: Field, _ apiVersion: String, reads versions: String) {
        guard let envelope = resource.map(Self.envelope) else { return }
        self.sink.error(at: envelope.place(of: "apiVersion"), "unknown apiVersion \(apiVersion); Meshgate reads \(versions)")
    }

    private static func entries(_ entries: [RawEntry], _ key: String) -> [RawEntry] {
        guard case .mapping(let inner)? = entries.first(where: { $0.key == key })?.value.value else { return [] }
        return inner
    }

    private static func scalar(_ entries: [RawEntry], _ key: String) -> String? {
        guard case .scalar(let text, let kind)? = entries.first(where: { $0.key == key })?.value.value,
              kind != .null
        else { return nil }
        return text
    }

    private mutating func decodeResource(_ resource: Field, kind: String) {
        guard let envelope = resource.map(Self.envelope) else { return }
        let metadata = envelope.required("metadata")?.map(Self.metadata)
        var name = metadata?.required("name")?.string()
        let namespace = metadata?.string("namespace") ?? "default"
        if name?.isEmpty == true, let metadata {
            self.sink.error(at: metadata.place(of: "name"), "the name must not be empty")
            name = nil
        }
        if let name {
            let key = "\(kind) \(namespace)/\(name)"
            if let first = self.seen[key] {
                self.sink.error(at: resource.place, "duplicate \(kind) \(namespace)/\(name) (first declared at \(first))")
            } else {
                self.seen[key] = resource.location
            }
        }
        let meta = ResourceMeta(kind: kind, name: name ?? "<unnamed>", namespace: namespace, location: resource.location)
        guard let spec = envelope.required("spec") else { return }
        switch kind {
        case "Gateway":
            GatewayDecoder.decode(meta: meta, spec: spec).map { self.declarations.gateways.append($0) }
        case "VirtualService":
            VirtualServiceDecoder.decode(meta: meta, spec: spec).map { self.declarations.virtualServices.append($0) }
        case "DestinationRule":
            DestinationRuleDecoder.decode(meta: meta, spec: spec).map { self.declarations.destinationRules.append($0) }
        case "ServiceEntry":
            ServiceEntryDecoder.decode(meta: meta, spec: spec).map { self.declarations.services.append($0) }
        case "WorkloadEntry":
            WorkloadEntryDecoder.decode(meta: meta, spec: spec).map { self.declarations.workloads.append($0) }
        case "Telemetry":
            TelemetryDecoder.decode(meta: meta, spec: spec).map { self.declarations.telemetry.append($0) }
        case "PeerAuthentication":
            PeerAuthenticationDecoder.decode(meta: meta, spec: spec).map { self.declarations.peerAuthentications.append($0) }
        case "RequestAuthentication":
            RequestAuthenticationDecoder.decode(meta: meta, spec: spec).map { self.declarations.requestAuthentications.append($0) }
        case "AuthorizationPolicy":
            let annotations = metadata?.stringMap("annotations") ?? [:]
            AuthorizationPolicyDecoder.decode(meta: meta, spec: spec, annotations: annotations).map {
                self.declarations.authorizationPolicies.append($0)
            }
        default:
            KubernetesServiceDecoder.decode(meta: meta, spec: spec).map { self.declarations.services.append($0) }
        }
    }

    /// `group/version` → (group, version); a core `v1` has the empty group.
    static func split(_ apiVersion: String) -> (group: String, version: String) {
        guard let slash = apiVersion.lastIndex(of: "/") else { return ("", apiVersion) }
        return (String(apiVersion[..<slash]), String(apiVersion[apiVersion.index(after: slash)...]))
    }
}
