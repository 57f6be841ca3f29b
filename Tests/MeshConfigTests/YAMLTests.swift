import Testing

@testable import MeshConfig

/// YAML syntax, documents and the shapes of values.
@Suite struct YAMLTests {
    @Test func syntaxErrorIsReportedWithItsLine() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: broken
            spec:
              selector: {istio: ingressgateway
              servers: []
            """)
        #expect(result.configuration == nil)
        #expect(result.errors.count == 1)
        let error = result.errors[0]
        #expect(error.location?.file == "conf/test.yaml")
        #expect(error.location?.line == 7)
        #expect(error.message.hasPrefix("YAML syntax error:"))
    }

    @Test func badIndentationIsASyntaxError() {
        let result = load("""
            apiVersion: v1
            kind: Service
             metadata: x
            """)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.location?.line == 3)
        #expect(result.errors.first?.message.contains("YAML syntax error") == true)
    }

    /// Documents before a syntax error are still read and checked.
    @Test func documentsBeforeASyntaxErrorAreStillChecked() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: gw
            spec:
              servers: 3
            ---
            key: [unclosed
            """)
        #expect(result.find(.error, "conf/test.yaml:6:", "Gateway/gw.spec.servers", "expected a list, got an integer (3)").count == 1)
        #expect(result.find(.error, "conf/test.yaml:8:", "YAML syntax error").count == 1, "\(result.lines)")
    }

    @Test func emptyDocumentsAndCommentOnlyFilesAreFine() {
        let result = load("""
            # nothing here
            ---
            ---

            """)
        #expect(result.diagnostics.isEmpty)
        #expect(result.configuration != nil)
        #expect(load("").diagnostics.isEmpty)
    }

    @Test func aDocumentThatIsNotAMapIsAnError() {
        let result = load("- a\n- b\n")
        #expect(result.find(.error, "conf/test.yaml:1:", "expected a resource", "got a list").count == 1)
    }

    @Test func duplicateKeysAreErrors() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: we
            spec:
              address: 10.0.0.1
              address: 10.0.0.2
            """)
        #expect(result.lines.contains("conf/test.yaml:7: error: WorkloadEntry/we.spec.address: duplicate key 'address' (first at line 6)"))
    }

    @Test func mergeKeysAndAliasesAreExpanded() throws {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: a
            spec: &base
              address: 10.0.0.1
              labels: {app: x}
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: b
            spec:
              <<: *base
              address: 10.0.0.2
            """)
        #expect(result.errors.isEmpty, "\(result.lines)")
    }

    /// An alias bomb is refused instead of expanding a billion nodes.
    @Test func aliasBombIsRefused() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            yaml += "a\(level): &a\(level) [\(refs)]\n"
        }
        let result = load(yaml)
        #expect(result.find(.error, "expands to more than").count == 1)
    }

    /// Deep nesting is refused before the composer recurses into it.
    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
        let result = load("spec: \(deep)\n")
        #expect(result.find(.error, "conf/test.yaml:1:", "nests deeper than").count == 1)
        let blocks = (0..<5_000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        #expect(load(blocks).find(.error, "nests deeper than").count == 1)
    }

    @Test func typesAreChecked() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata:
              name: gw
            spec:
              selector: [istio]
              servers:
              - port:
                  number: "80"
                  name: http
                  protocol: HTTP
                hosts: "*"
            """)
        #expect(result.lines.contains("conf/test.yaml:6: error: Gateway/gw.spec.selector: expected a map, got a list"))
        #expect(result.lines.contains("conf/test.yaml:9: error: Gateway/gw.spec.servers[0].port.number: expected an integer, got a string (\"80\")"))
        #expect(result.lines.contains("conf/test.yaml:12: error: Gateway/gw.spec.servers[0].hosts: expected a list, got a string (\"*\")"))
    }

    @Test func durations() throws {
        #expect(try DurationParser.parse("30s").get() == .seconds(30))
        #expect(try DurationParser.parse("1m").get() == .seconds(60))
        #expect(try DurationParser.parse("500ms").get() == .milliseconds(500))
        #expect(try DurationParser.parse("1h").get() == .seconds(3600))
        #expect(try DurationParser.parse("1.5s").get() == .milliseconds(1500))
        #expect(try DurationParser.parse("1h30m").get() == .seconds(5400))
        #expect(try DurationParser.parse("250us").get() == .microseconds(250))
        #expect(try DurationParser.parse("0").get() == .zero)
        for bad in ["", "30", "s", "-1s", "1x", "1.s5", "99999999999999999999h", "3000000h"] {
            #expect(throws: DurationParser.Problem.self, "\(bad)") { try DurationParser.parse(bad).get() }
        }
    }

    @Test func integers() {
        #expect(Field.parseInteger("80") == 80)
        #expect(Field.parseInteger("+80") == 80)
        #expect(Field.parseInteger("-5") == -5)
        #expect(Field.parseInteger("0x50") == 80)
        #expect(Field.parseInteger("1_000") == 1000)
        #expect(Field.parseInteger("99999999999999999999999") == nil)
        #expect(Field.parseInteger("1:30") == nil)
    }
}
