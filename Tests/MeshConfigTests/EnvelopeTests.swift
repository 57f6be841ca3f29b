import Testing

@testable import MeshConfig

/// apiVersion, kind and metadata: what is read, what is skipped, what is refused.
@Suite struct EnvelopeTests {
    static func workloadEntry(apiVersion: String, kind: String = "WorkloadEntry", name: String = "we") -> String {
        """
        apiVersion: \(apiVersion)
        kind: \(kind)
        metadata:
          name: \(name)
        spec:
          address: 10.0.0.1
        """
    }

    @Test(arguments: ["networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1"])
    func everyIstioNetworkingVersionIsRead(apiVersion: String) throws {
        let result = load("""
            apiVersion: \(apiVersion)
            kind: Gateway
            metadata:
              name: gw
              namespace: edge
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 80, name: http, protocol: HTTP}
                hosts: ["*"]
            """)
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let gateway = try #require(result.configuration?.gateways.first)
        #expect(gateway.qualifiedName == "edge/gw")
        #expect(gateway.meta.location == SourceLocation(file: "conf/test.yaml", line: 1))
    }

    @Test func unknownVersionOfNetworkingIsAnError() {
        let result = load(Self.workloadEntry(apiVersion: "networking.istio.io/v2"))
        #expect(result.configuration == nil)
        #expect(result.lines == [
            "conf/test.yaml:1: error: WorkloadEntry/we.apiVersion: unknown apiVersion networking.istio.io/v2; Meshgate reads networking.istio.io/v1alpha3, v1beta1 and v1"
        ])
    }

    @Test func misspelledKindIsAnErrorWithASuggestion() {
        let result = load(Self.workloadEntry(apiVersion: "networking.istio.io/v1", kind: "VirtualSevice"))
        #expect(result.lines == [
            "conf/test.yaml:2: error: VirtualSevice/we.kind: unknown kind VirtualSevice in networking.istio.io/v1 (did you mean VirtualService?)"
        ])
    }

    /// Istio kinds Meshgate does not run still have their field names checked (SkippedKindSchemas).
    @Test(arguments: [
        ("networking.istio.io/v1", "Sidecar"),
    ])
    func istioKindsMeshgateDoesNotRunAreSkippedWithOneInfo(apiVersion: String, kind: String) {
        let result = load("""
            apiVersion: \(apiVersion)
            kind: \(kind)
            metadata:
              name: thing
            spec:
              selector: {matchLabels: {app: a}}
            """)
        let expected = kind == "Sidecar"
            ? ["conf/test.yaml:1: info: Sidecar/thing: skipped: Meshgate does not run Sidecar",
               "conf/test.yaml:6: error: Sidecar/thing.spec.selector: unknown field 'selector'"]
            : ["conf/test.yaml:1: info: \(kind)/thing: skipped: Meshgate does not run \(kind)"]
        #expect(result.lines == expected)
    }

    @Test(arguments: [("apps/v1", "Deployment"), ("v1", "ServiceAccount"), ("v1", "ConfigMap")])
    func kindsMeshgateDoesNotRunAreSkippedWithOneInfo(apiVersion: String, kind: String) {
        let result = load("""
            apiVersion: \(apiVersion)
            kind: \(kind)
            metadata:
              name: thing
            spec:
              whatever: [1, 2]
            data:
              anything: goes
            """)
        #expect(result.lines == ["conf/test.yaml:1: info: \(kind)/thing: skipped: Meshgate does not run \(kind)"])
        #expect(result.configuration != nil)
    }

    @Test func missingApiVersionKindOrNameAreErrors() {
        let result = load("""
            kind: Gateway
            metadata: {name: a}
            ---
            apiVersion: networking.istio.io/v1
            metadata: {name: b}
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              namespace: x
            spec:
              address: 10.0.0.1
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            spec:
              address: 10.0.0.1
            """)
        #expect(result.lines == [
            "conf/test.yaml:1: error: Gateway/a.apiVersion: required field is missing",
            "conf/test.yaml:4: error: kind: required field is missing",
            "conf/test.yaml:9: error: WorkloadEntry.metadata.name: required field is missing",
            "conf/test.yaml:14: error: WorkloadEntry.metadata: required field is missing",
        ])
    }

    @Test func missingSpecIsAnError() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: vs}
            """)
        #expect(result.lines == ["conf/test.yaml:1: error: VirtualService/vs.spec: required field is missing"])
    }

    @Test func namespaceDefaultsToDefault() throws {
        let result = load(Self.workloadEntry(apiVersion: "networking.istio.io/v1beta1"))
        // A WorkloadEntry alone is fine; it only becomes an endpoint when a service selects it.
        #expect(result.errors.isEmpty)
        let result2 = load(serviceYAML("reviews"))
        let service = try #require(result2.configuration?.services.first)
        #expect(service.meta.namespace == "default")
        #expect(service.fqdn == "reviews.default.svc.cluster.local")
    }

    @Test func duplicateResourcesAreErrors() {
        let result = load([
            ("conf/a.yaml", Self.workloadEntry(apiVersion: "networking.istio.io/v1")),
            ("conf/b.yaml", "---\n" + Self.workloadEntry(apiVersion: "networking.istio.io/v1beta1")),
        ])
        #expect(result.lines == [
            "conf/b.yaml:2: error: WorkloadEntry/we: duplicate WorkloadEntry default/we (first declared at conf/a.yaml:1)"
        ])
    }

    /// The same name in another namespace or of another kind is no duplicate.
    @Test func sameNameInAnotherNamespaceIsFine() {
        let result = load(
            Self.workloadEntry(apiVersion: "networking.istio.io/v1") + "\n---\n"
                + Self.workloadEntry(apiVersion: "networking.istio.io/v1").replacingOccurrences(of: "name: we", with: "name: we\n  namespace: other")
        )
        #expect(result.errors.isEmpty, "\(result.lines)")
    }

    @Test func unknownTopLevelAndMetadataFieldsAreErrors() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: we
              namepsace: prod
              labels: {a: b}
            spec:
              address: 10.0.0.1
            specs: {}
            status: {}
            """)
        #expect(result.lines == [
            "conf/test.yaml:5: error: WorkloadEntry/we.metadata.namepsace: unknown field 'namepsace' (did you mean 'namespace'?)",
            "conf/test.yaml:9: error: WorkloadEntry/we.specs: unknown field 'specs' (did you mean 'spec'?)",
        ])
    }

    @Test func kubernetesListItemsAreRead() throws {
        let result = load("""
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: a}
              spec:
                ports: [{port: 80, name: http}]
            - apiVersion: apps/v1
              kind: Deployment
              metadata: {name: a-v1}
            """)
        #expect(result.errors.isEmpty)
        #expect(result.configuration?.services.map(\.fqdn) == ["a.default.svc.cluster.local"])
        #expect(result.find(.info, "conf/test.yaml:9:", "Deployment/a-v1").count == 1)
    }

    /// Diagnostics come sorted by file, then line, whatever order the checks found them in.
    @Test func diagnosticsAreSortedByFileThenLine() {
        let result = load([
            ("conf/b.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"),
            ("conf/a.yaml", "x: [\n"),
        ])
        #expect(result.diagnostics.map { $0.location?.file } == ["conf/a.yaml", "conf/b.yaml"])
    }
}
