/// Telemetry policies that can never apply: Istio keeps the oldest policy of each scope and ignores
/// the others, so a second mesh-wide or namespace-wide policy, or a second one selecting this
/// instance, is a warning (file order stands in for creation time).
enum TelemetryChecks {
    static func check(_ policies: [TelemetryPolicy], settings: MeshSettings, sink: DiagnosticSink) {
        var firstOfScope: [String: TelemetryPolicy] = [:]
        var firstSelectingThis: TelemetryPolicy?
        for policy in policies {
            let key: String
            switch policy.scope {
            case .mesh:
                key = "mesh"
            case .namespace(let namespace):
                key = "namespace \(namespace)"
            case .workload:
                guard policy.selects(namespace: settings.namespace, labels: settings.labels) else { continue }
                if let first = firstSelectingThis {
                    Self.ignored(policy, firstIs: first, scope: "selecting this instance", sink: sink)
                } else {
                    firstSelectingThis = policy
                }
                continue
            }
            if let first = firstOfScope[key] {
                Self.ignored(policy, firstIs: first, scope: key == "mesh" ? "mesh-wide" : "for \(key)", sink: sink)
            } else {
                firstOfScope[key] = policy
            }
        }
    }

    private static func ignored(_ policy: TelemetryPolicy, firstIs first: TelemetryPolicy, scope: String, sink: DiagnosticSink) {
        let place = first.meta.location.map { " (at \($0))" } ?? ""
        sink.warning(
            at: policy.meta.location, path: policy.meta.pathPrefix,
            "ignored: Telemetry \(first.meta.namespace)/\(first.meta.name)\(place) is already the policy \(scope); only the first applies"
        )
    }
}
