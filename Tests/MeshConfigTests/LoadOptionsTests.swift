import Testing

@testable import MeshConfig

/// How strict a load is: `validate --strict`, a reload that needs its meshgate.yaml.
@Suite struct LoadOptionsTests {
    @Test func aReloadWithoutItsMeshgateYAMLIsAnErrorNotADefault() throws {
        try DirectoryTests().withDirectory(["conf/gw.yaml": TLSConfigTests.gateway(protocol: "HTTP", port: 8080, tls: nil)]) { root in
            // At start-up a missing meshgate.yaml means every default.
            #expect(ConfigLoader.load(directory: "\(root)/conf").configuration != nil)
            let reload = ConfigLoader.load(directory: "\(root)/conf", options: LoadOptions(requireSettingsFile: true))
            #expect(reload.configuration == nil)
            #expect(reload.errors.map(\.description) == [
                "error: \(root)/conf/meshgate.yaml: missing: the running config was loaded with one, and without it every setting would silently fall back to its default; this load is refused"
            ])
        }
    }

    @Test func strictMakesOnlyDanglingReferencesErrors() {
        let yaml = """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews.example.com]
              gateways: [nosuch]
              http:
              - route:
                - {destination: {host: nosuch.example.com}, weight: 1}
                - {destination: {host: other.example.com}, weight: 3}
            """
        let lenient = load(yaml)
        #expect(lenient.errors.isEmpty, "\(lenient.lines)")
        #expect(lenient.configuration != nil)
        let strict = load([("conf/test.yaml", yaml)], options: LoadOptions(strict: true))
        #expect(strict.errors.count == 3, "\(strict.lines)")
        #expect(strict.warnings.map(\.message) == [
            "weights sum to 4, not 100; they are taken as relative, as Istio does (each destination gets its weight/4 of the traffic)"
        ])
    }
}
