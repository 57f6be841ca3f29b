import Testing

@testable import MeshConfig

/// meshgate.yaml → MeshSettings.
@Suite struct SettingsTests {
    @Test func missingSettingsFileMeansDefaults() throws {
        let result = load([])
        #expect(result.diagnostics.isEmpty)
        let settings = try #require(result.configuration?.settings)
        #expect(settings == MeshSettings())
        #expect(settings.labels == ["istio": "ingressgateway"])
        #expect(settings.namespace == "istio-system")
        #expect(settings.bindAddress == "0.0.0.0")
        #expect(settings.readinessPort == 15021)
        #expect(settings.adminPort == 15000)
        #expect(settings.drainTimeout == .seconds(30))
        #expect(settings.eventLoops == 0)
        #expect(settings.tcpIdleTimeout == .seconds(3600))
        #expect(settings.httpIdleTimeout == .seconds(3600))
    }

    @Test func everyKeyIsRead() throws {
        let result = load("""
            labels:
              istio: egressgateway
              zone: a
            namespace: edge
            bindAddress: 127.0.0.1
            readinessPort: 16021
            adminPort: 16000
            drainTimeout: 500ms
            eventLoops: 4
            tcpIdleTimeout: 1m
            httpIdleTimeout: 1h
            """, file: "conf/meshgate.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let settings = try #require(result.configuration?.settings)
        #expect(settings.labels == ["istio": "egressgateway", "zone": "a"])
        #expect(settings.namespace == "edge")
        #expect(settings.bindAddress == "127.0.0.1")
        #expect(settings.readinessPort == 16021)
        #expect(settings.adminPort == 16000)
        #expect(settings.drainTimeout == .milliseconds(500))
        #expect(settings.eventLoops == 4)
        #expect(settings.tcpIdleTimeout == .seconds(60))
        #expect(settings.httpIdleTimeout == .seconds(3600))
    }

    @Test func unknownKeyIsAWarningAndWrongTypesAndRangesAreErrors() {
        let result = load("""
            readinesPort: 1
            adminPort: 70000
            readinessPort: "15021"
            drainTimeout: 30
            eventLoops: many
            labels: [a]
            tcpIdleTimeout: soon
            """, file: "conf/meshgate.yaml")
        #expect(result.configuration == nil)
        #expect(result.lines == [
            "conf/meshgate.yaml:1: warning: readinesPort: unknown field 'readinesPort' (did you mean 'readinessPort'?)",
            "conf/meshgate.yaml:2: error: adminPort: 70000 is out of range 1..65535",
            "conf/meshgate.yaml:3: error: readinessPort: expected an integer, got a string (\"15021\")",
            "conf/meshgate.yaml:4: error: drainTimeout: expected a duration such as 30s or 500ms, got an integer (30)",
            "conf/meshgate.yaml:5: error: eventLoops: expected an integer, got a string (\"many\")",
            "conf/meshgate.yaml:6: error: labels: expected a map, got a list",
            "conf/meshgate.yaml:7: error: tcpIdleTimeout: invalid duration \"soon\": expected a number followed by a unit (ns, us, ms, s, m, h)",
        ])
    }

    @Test func portZeroIsOutOfRange() {
        let result = load("adminPort: 0\n", file: "meshgate.yaml")
        #expect(result.lines == ["meshgate.yaml:1: error: adminPort: 0 is out of range 1..65535"])
    }

    @Test func settingsFileMustBeAMap() {
        let result = load("- a\n", file: "conf/meshgate.yaml")
        #expect(result.lines == ["conf/meshgate.yaml:1: error: expected a map, got a list"])
    }

    /// meshgate.yaml is not read as Istio YAML, and Istio YAML beside it is.
    @Test func settingsAndResourcesLoadTogether() throws {
        let result = load([("conf/meshgate.yaml", "namespace: edge\n"), ("conf/reviews.yaml", serviceYAML("reviews"))])
        #expect(result.errors.isEmpty)
        #expect(result.configuration?.settings.namespace == "edge")
        #expect(result.configuration?.services.count == 1)
    }
}
